//! The live parts of logs and events over HTTP: the event feed resumes from `Last-Event-ID`
//! with exactly what was missed, and a tail or a feed never shows another organization's
//! lines or events.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use infrapilot_core::ids::{AgentId, OrgId};
use infrapilot_proto::v1::{LogBatch, LogRecord};
use serde_json::json;
use tower::ServiceExt as _;

use super::cross_tenant::signup;
use super::http_tests_support::{bootstrap, call, login, read_for};
use crate::config::Edition;
use crate::testing::{self, Kind};
use crate::{AppState, app};

/// Opens an event stream and returns its body, to be read as it goes.
async fn open(state: &AppState, token: &str, uri: &str, last_event_id: Option<&str>) -> Body {
    let mut req = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let res = app(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    res.into_body()
}

/// The SSE messages in `bytes`: (id, data) of each `event` message.
fn messages(bytes: &[u8]) -> Vec<(String, serde_json::Value)> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter_map(|block| {
            let mut id = String::new();
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                }
                if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).ok();
                }
            }
            data.map(|d| (id, d))
        })
        .collect()
}

async fn ship(
    state: &AppState,
    org: OrgId,
    agent: AgentId,
    stream: &str,
    kind: &str,
    seq: u64,
    line: String,
) {
    let batch = LogBatch {
        stream: stream.into(),
        kind: kind.into(),
        container_name: if kind == "container" {
            "web".into()
        } else {
            String::new()
        },
        records: vec![LogRecord {
            seq,
            time_unix_nanos: crate::util::now_micros() * 1000,
            source: if kind == "container" {
                "stdout"
            } else {
                "event"
            }
            .into(),
            line: line.into_bytes(),
        }],
        ..Default::default()
    };
    assert_eq!(
        crate::logs::ingest(state, org, agent, batch).await.unwrap(),
        seq
    );
}

fn crash(name: &str, code: i64) -> String {
    json!({
        "action": "die", "container_id": name, "container_name": name, "image": "busybox",
        "exit_code": code, "time_unix_nanos": crate::util::now_micros() * 1000,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_feed_resumes_where_it_left_off_and_nothing_crosses_organizations() {
    let state = testing::app_state(Kind::Sqlite, Edition::Saas).await;
    let (a_token, a_org) = bootstrap(&state).await;
    let a_org: OrgId = a_org.parse().unwrap();
    let b_org: OrgId = signup(&state, "bob@example.com", "Beta")
        .await
        .org
        .parse()
        .unwrap();
    let b_token = login(&state, "bob@example.com").await;
    let a_agent = testing::insert_agent(&state, a_org, "alpha-host").await;
    let b_agent = testing::insert_agent(&state, b_org, "beta-host").await;

    // A's feed and A's tail, open while both organizations' agents ship.
    let feed = open(
        &state,
        &a_token,
        "/api/v1/events/stream?type=container.die",
        None,
    )
    .await;
    let tail = open(&state, &a_token, "/api/v1/logs/tail", None).await;
    let b_tail = open(&state, &b_token, "/api/v1/logs/tail", None).await;
    ship(
        &state,
        b_org,
        b_agent,
        "docker:events",
        "docker_events",
        1,
        crash("beta-db", 1),
    )
    .await;
    ship(
        &state,
        a_org,
        a_agent,
        "docker:events",
        "docker_events",
        1,
        crash("alpha-web", 2),
    )
    .await;
    ship(
        &state,
        b_org,
        b_agent,
        "container:b",
        "container",
        1,
        "beta secret line".into(),
    )
    .await;
    ship(
        &state,
        a_org,
        a_agent,
        "container:a",
        "container",
        1,
        "alpha line".into(),
    )
    .await;

    let seen = messages(&read_for(feed, Duration::from_millis(2500)).await);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].1["container_name"], "alpha-web");
    let last_id = seen[0].0.clone();
    let lines = messages(&read_for(tail, Duration::from_millis(500)).await);
    assert_eq!(
        lines
            .iter()
            .map(|l| l.1["line"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alpha line"]
    );
    let b_lines = messages(&read_for(b_tail, Duration::from_millis(500)).await);
    assert_eq!(b_lines.len(), 1, "{b_lines:?}");
    assert_eq!(b_lines[0].1["line"], "beta secret line");

    // Disconnected, A misses two crashes; reconnecting with the last id gets exactly those.
    ship(
        &state,
        a_org,
        a_agent,
        "docker:events",
        "docker_events",
        2,
        crash("alpha-web", 3),
    )
    .await;
    ship(
        &state,
        a_org,
        a_agent,
        "docker:events",
        "docker_events",
        3,
        crash("alpha-api", 4),
    )
    .await;
    ship(
        &state,
        b_org,
        b_agent,
        "docker:events",
        "docker_events",
        2,
        crash("beta-db", 5),
    )
    .await;
    let feed = open(
        &state,
        &a_token,
        "/api/v1/events/stream?type=container.die",
        Some(&last_id),
    )
    .await;
    let resumed = messages(&read_for(feed, Duration::from_millis(2500)).await);
    let codes: Vec<i64> = resumed
        .iter()
        .map(|m| m.1["details"]["exit_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [3, 4], "{resumed:?}");

    // The same through the query parameter, and a bad id is refused naming it.
    let r = call(
        &state,
        "GET",
        "/api/v1/events/stream?last_event_id=garbage",
        Some(&a_token),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "last_event_id");

    // Counts per type, and B's events never in A's lists.
    let r = call(
        &state,
        "GET",
        "/api/v1/events/counts?period=day",
        Some(&a_token),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["by_type"]["container.die"], 3, "{r:?}");
    let r = call(
        &state,
        "GET",
        "/api/v1/events?limit=200",
        Some(&a_token),
        None,
        None,
    )
    .await;
    assert!(!r.body.to_string().contains("beta"), "{r:?}");
    let r = call(
        &state,
        "GET",
        "/api/v1/logs?q=secret",
        Some(&a_token),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["items"], json!([]), "{r:?}");
}

#[tokio::test]
async fn retention_deletes_what_fell_out_and_settings_are_validated_and_audited() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    let (token, org) = bootstrap(&state).await;
    let org: OrgId = org.parse().unwrap();
    let agent = testing::insert_agent(&state, org, "host").await;
    ship(
        &state,
        org,
        agent,
        "container:a",
        "container",
        1,
        "kept".into(),
    )
    .await;
    let r = call(
        &state,
        "PUT",
        "/api/v1/logs/settings",
        Some(&token),
        None,
        Some(json!({"retention_days": 0})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "retention_days");
    let r = call(
        &state,
        "PUT",
        "/api/v1/logs/settings",
        Some(&token),
        None,
        Some(json!({"retention_days": 2})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // A day later nothing is old enough; three days later the line is.
    let day = 86_400_000_000;
    let now = crate::util::now_micros();
    assert_eq!(
        crate::logs::apply_retention(&state, now + day)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        crate::logs::apply_retention(&state, now + 3 * day)
            .await
            .unwrap(),
        1
    );
    let r = call(&state, "GET", "/api/v1/logs", Some(&token), None, None).await;
    assert_eq!(r.body["items"], json!([]));
    let r = call(
        &state,
        "GET",
        "/api/v1/logs/usage?days=1",
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!(r.body["total_lines"], 1, "usage stays: it was stored today");
    let audit = call(&state, "GET", "/api/v1/audit", Some(&token), None, None).await;
    assert!(audit.body.to_string().contains("logs.settings.update"));
}

/// Reads `body` until the `line` messages read so far satisfy `done` (or `within` passes);
/// answers their texts.
async fn tail_until(
    body: &mut Body,
    within: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    use http_body_util::BodyExt as _;
    let deadline = tokio::time::Instant::now() + within;
    let mut bytes = Vec::new();
    loop {
        let lines: Vec<String> = messages(&bytes)
            .into_iter()
            .filter_map(|(_, data)| data["line"].as_str().map(str::to_owned))
            .collect();
        if done(&lines) {
            return lines;
        }
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
            }
            _ => return lines,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_on_one_replica_shows_the_lines_another_stored_in_order() {
    let database = testing::database(Kind::Postgres).await;
    let a = testing::app_state_on(&database, Edition::Saas).await;
    let b = testing::app_state_on(&database, Edition::Saas).await;
    assert_ne!(a.hub().replica(), b.hub().replica());
    tokio::spawn(crate::agents::listen_for_relays(b.clone()));
    let (token, org) = bootstrap(&a).await;
    let org: OrgId = org.parse().unwrap();
    let agent = testing::insert_agent(&a, org, "edge").await;
    let other_org: OrgId = signup(&a, "bob@example.com", "Beta")
        .await
        .org
        .parse()
        .unwrap();
    let other_agent = testing::insert_agent(&a, other_org, "beta-edge").await;

    // The agent ships to replica A; the user tails on replica B.
    let mut tail = open(&b, &token, "/api/v1/logs/tail?container=web", None).await;
    // B listens from some moment on: A ships until B's tail shows a line.
    let ship_web =
        |seq: u64, line: String| ship(&a, org, agent, "container:web", "container", seq, line);
    let mut seq = 0;
    let mut first_seen = None;
    while first_seen.is_none() && seq < 40 {
        seq += 1;
        ship_web(seq, format!("warm-up {seq}")).await;
        let within = Duration::from_millis(500);
        let seen = tail_until(&mut tail, within, |l| !l.is_empty()).await;
        first_seen = seen.first().cloned();
    }
    assert!(
        first_seen.is_some(),
        "replica B's tail never showed a line A stored"
    );

    // From then on every line arrives, in order, and another organization's never does.
    ship(
        &a,
        other_org,
        other_agent,
        "container:web",
        "container",
        1,
        "beta secret".into(),
    )
    .await;
    let mut expected = Vec::new();
    for _ in 0..5 {
        seq += 1;
        let line = format!("line {seq}");
        ship_web(seq, line.clone()).await;
        expected.push(line);
    }
    let last = expected[4].clone();
    let seen = tail_until(&mut tail, Duration::from_secs(20), |l| {
        l.last() == Some(&last)
    })
    .await;
    let after: Vec<&String> = seen
        .iter()
        .skip_while(|l| l.starts_with("warm-up"))
        .collect();
    assert_eq!(
        after,
        expected.iter().collect::<Vec<_>>(),
        "all seen: {seen:?}"
    );
}

/// The CSV export writes every hostile line as inert text: no cell starts a formula (OWASP's
/// characters, TAB, CR, LF, full-width forms) and no control byte reaches the file.
#[tokio::test]
async fn the_csv_export_neutralises_formulas_and_terminal_escapes() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    let (token, org) = bootstrap(&state).await;
    let org: OrgId = org.parse().unwrap();
    let agent = testing::insert_agent(&state, org, "host").await;
    let hostile = [
        "=HYPERLINK(\"http://x\")",
        "+1",
        "-1",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "＝1+1",
        "\u{1b}]0;pwned\u{7}\u{1b}[31mred",
    ];
    for (seq, line) in hostile.iter().enumerate() {
        let seq = u64::try_from(seq).unwrap() + 1;
        ship(
            &state,
            org,
            agent,
            "container:a",
            "container",
            seq,
            (*line).to_owned(),
        )
        .await;
    }
    let r = call(
        &state,
        "GET",
        "/api/v1/logs/export?format=csv",
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let text = r.body.as_str().unwrap().to_owned();
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{text:?}"
    );
    let cells: Vec<&str> = text
        .lines()
        .filter_map(|row| row.rsplit_once(",\"").map(|(_, cell)| cell))
        .collect();
    assert_eq!(cells.len(), hostile.len(), "{text}");
    for cell in cells {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r', '＝']),
            "{cell:?} starts a formula"
        );
    }
}
