//! Alerts end to end: rules and channels through the API, evaluation at chosen times, real
//! receivers (a local HTTP server checking webhook signatures and Slack payloads, a real SMTP
//! server), a real crash-looping container.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use infrapilot_core::ids::OrgId;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::channels::verify;
use super::engine::{deliver_due, evaluate_org};
use crate::AppState;
use crate::api::http_tests_support::{Reply, bootstrap, call};
use crate::config::Edition;
use crate::store::{Actor, OrgScope};
use crate::testing::{self, Kind};

/// The receivers of these tests run on this machine: open loopback to outbound calls.
const LOOPBACK: &[(&str, &str)] = &[("INFRAPILOT_OUTBOUND_ALLOW", "127.0.0.0/8")];

/// What a receiver got: each request's headers and JSON body.
type Received = Arc<Mutex<Vec<(HeaderMap, Value, Vec<u8>)>>>;

/// An HTTP receiver on `listener` that keeps every POST.
fn receiver(listener: TcpListener) -> Received {
    let received: Received = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                kept.lock().unwrap().push((headers, json, body.to_vec()));
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    received
}

async fn api(
    state: &AppState,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Reply {
    call(state, method, path, Some(token), None, body).await
}

const SECRET: &str = "a webhook secret of some length";

async fn offline_rule_fires_once_retries_its_delivery_and_resolves(kind: Kind) {
    let state =
        testing::app_state_with(&testing::database(kind).await, Edition::Community, LOOPBACK).await;
    let (token, org) = bootstrap(&state).await;
    let org: OrgId = org.parse().unwrap();
    let agent = testing::insert_agent(&state, org, "edge-1").await;
    // The receiver's port, not listening yet: the first attempt fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = api(
        &state,
        &token,
        "POST",
        "/api/v1/alert-channels",
        Some(json!({
            "name": "ops hook",
            "config": {"type": "webhook", "url": format!("http://127.0.0.1:{port}/hook"),
                       "headers": {"X-Team": "ops"}, "secret": SECRET},
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let channel = r.body["id"].as_str().unwrap().to_owned();
    assert!(
        !r.body.to_string().contains(SECRET),
        "the secret is never returned: {r:?}"
    );
    assert_eq!(r.body["config"]["secret"], json!({"set": true}));
    assert_eq!(
        r.body["config"]["headers"],
        json!({"X-Team": {"set": true}}),
        "header values are secrets too"
    );
    // A change that sends the header back as null keeps its value (the delivery below still
    // carries it); pointed elsewhere, the stored value is not sent along.
    let url = format!("http://127.0.0.1:{port}/hook");
    let change = |url: &str| {
        json!({"name": "ops hook", "config": {"type": "webhook", "url": url,
               "headers": {"X-Team": null}}})
    };
    let path = format!("/api/v1/alert-channels/{channel}");
    let r = api(
        &state,
        &token,
        "PUT",
        &path,
        Some(change("http://10.9.8.7/elsewhere")),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(
        r.body["errors"][0]["field"], "config.headers.X-Team",
        "{r:?}"
    );
    let r = api(&state, &token, "PUT", &path, Some(change(&url))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    // Bad rules are refused naming the field.
    let r = api(&state, &token, "POST", "/api/v1/alert-rules", Some(json!({
        "rule": {"name": "x", "kind": "agent_offline", "after_secs": 0, "severity": "critical", "enabled": true},
    })))
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "rule.after_secs");
    // A delay a connected agent's heartbeats would not outlast is refused, naming it and the
    // bound; the bound itself is accepted (and removed again).
    let heartbeat = u32::try_from(state.config().heartbeat.as_secs()).unwrap();
    let minimum = infrapilot_core::alerts::min_agent_offline_secs(heartbeat);
    for (after_secs, accepted) in [(1, false), (minimum - 1, false), (minimum, true)] {
        let r = api(
            &state,
            &token,
            "POST",
            "/api/v1/alert-rules",
            Some(json!({
                "rule": {"name": "x", "kind": "agent_offline", "after_secs": after_secs,
                         "severity": "critical", "enabled": true},
            })),
        )
        .await;
        if accepted {
            assert_eq!(r.status, StatusCode::CREATED, "{after_secs}: {r:?}");
            let id = r.body["rule"]["id"].as_str().unwrap().to_owned();
            let r = api(
                &state,
                &token,
                "DELETE",
                &format!("/api/v1/alert-rules/{id}"),
                None,
            )
            .await;
            assert!(r.status.is_success(), "{r:?}");
        } else {
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{after_secs}: {r:?}"
            );
            assert_eq!(r.body["errors"][0]["field"], "rule.after_secs", "{r:?}");
            let reason = r.body["errors"][0]["reason"].as_str().unwrap();
            assert!(
                reason.contains(&format!("at least {minimum} seconds")),
                "{reason}"
            );
        }
    }
    let r = api(&state, &token, "POST", "/api/v1/alert-rules", Some(json!({
        "rule": {"name": "x", "kind": "agent_offline", "after_secs": 60, "severity": "loud", "enabled": true},
    })))
    .await;
    assert_eq!(r.body["errors"][0]["field"], "rule.severity", "{r:?}");
    let r = api(&state, &token, "POST", "/api/v1/alert-rules", Some(json!({
        "rule": {"name": "x", "kind": "agent_offline", "after_secs": 60, "severity": "critical", "enabled": true},
        "channels": [uuid::Uuid::new_v4()],
    })))
    .await;
    assert_eq!(r.body["errors"][0]["field"], "channels[0]", "{r:?}");

    let r = api(
        &state,
        &token,
        "POST",
        "/api/v1/alert-rules",
        Some(json!({
            "rule": {"name": "edge down", "kind": "agent_offline", "after_secs": 60,
                     "severity": "critical", "cooldown_secs": 3600, "enabled": true,
                     "notify_on_resolve": true},
            "channels": [channel],
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");

    let t0 = crate::util::now_micros();
    let s = 1_000_000;
    assert_eq!(
        evaluate_org(&state, org, t0).await.unwrap().fired,
        0,
        "just seen"
    );
    let out = evaluate_org(&state, org, t0 + 120 * s).await.unwrap();
    assert_eq!(out.fired, 1);
    assert_eq!(
        evaluate_org(&state, org, t0 + 130 * s).await.unwrap().fired,
        0,
        "once"
    );

    // The receiver is down: the delivery fails, says why, and waits for its retry.
    assert_eq!(deliver_due(&state, org, t0 + 120 * s).await.unwrap(), 0);
    let alerts = api(&state, &token, "GET", "/api/v1/alerts?status=firing", None).await;
    let alert = &alerts.body["items"][0];
    assert_eq!(alert["severity"], "critical", "{alerts:?}");
    let delivery = &alert["deliveries"][0];
    assert_eq!(
        (delivery["status"].as_str(), delivery["attempts"].as_i64()),
        (Some("pending"), Some(1)),
        "{alert}"
    );
    assert!(
        delivery["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("connect"),
        "{delivery}"
    );
    assert!(delivery["next_attempt_at"].is_string());

    let received = receiver(TcpListener::bind(("127.0.0.1", port)).await.unwrap());
    assert_eq!(
        deliver_due(&state, org, t0 + 125 * s).await.unwrap(),
        0,
        "not due yet"
    );
    assert_eq!(deliver_due(&state, org, t0 + 131 * s).await.unwrap(), 1);
    {
        let got = received.lock().unwrap();
        assert_eq!(got.len(), 1);
        let (headers, body, raw) = &got[0];
        assert_eq!(body["status"], "firing", "{body}");
        assert_eq!(body["rule"], "edge down");
        assert_eq!(headers["x-team"], "ops");
        let ts = headers["x-infrapilot-timestamp"].to_str().unwrap();
        let sig = headers["x-infrapilot-signature"].to_str().unwrap();
        let now = t0 / s + 131;
        assert!(verify(
            SECRET.as_bytes(),
            ts,
            sig,
            raw,
            ts.parse().unwrap(),
            300
        ));
        assert!(!verify(
            b"another secret entirely!",
            ts,
            sig,
            raw,
            ts.parse().unwrap(),
            300
        ));
        let _ = now;
    }
    let alerts = api(&state, &token, "GET", "/api/v1/alerts", None).await;
    assert_eq!(
        alerts.body["items"][0]["deliveries"][0]["status"], "sent",
        "{alerts:?}"
    );

    // The agent is heard from again: the alert resolves and the resolution is sent.
    let scope = OrgScope::new(
        org,
        Actor::System,
        infrapilot_core::rbac::Effective::Org(infrapilot_core::rbac::OrgRole::Viewer),
    );
    let mut tx = state.store().org(&scope).await.unwrap();
    tx.record_heartbeat(agent, &json!({}), t0 + 140 * s)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        evaluate_org(&state, org, t0 + 141 * s)
            .await
            .unwrap()
            .resolved,
        1
    );
    assert_eq!(deliver_due(&state, org, t0 + 141 * s).await.unwrap(), 1);
    assert_eq!(received.lock().unwrap()[1].1["status"], "resolved");
    let alerts = api(
        &state,
        &token,
        "GET",
        "/api/v1/alerts?status=resolved",
        None,
    )
    .await;
    assert_eq!(
        alerts.body["items"].as_array().unwrap().len(),
        1,
        "{alerts:?}"
    );
    let events = api(
        &state,
        &token,
        "GET",
        "/api/v1/events?type=alert.firing,alert.resolved",
        None,
    )
    .await;
    assert_eq!(
        events.body["items"].as_array().unwrap().len(),
        2,
        "{events:?}"
    );
    // Silent again within the hour of cooldown: no new alert; after it, a new one.
    assert_eq!(
        evaluate_org(&state, org, t0 + 300 * s).await.unwrap().fired,
        0,
        "cooldown"
    );
    assert_eq!(
        evaluate_org(&state, org, t0 + 3800 * s)
            .await
            .unwrap()
            .fired,
        1,
        "after the cooldown"
    );

    // A test send reports the remote's verdict; a channel whose remote refuses says so verbatim.
    let r = api(
        &state,
        &token,
        "POST",
        &format!("/api/v1/alert-channels/{channel}/test"),
        None,
    )
    .await;
    assert_eq!(r.body["ok"], true, "{r:?}");
    let r = api(
        &state,
        &token,
        "PUT",
        &format!("/api/v1/alert-channels/{channel}"),
        Some(json!({
            "name": "ops hook",
            "config": {"type": "webhook", "url": format!("http://127.0.0.1:{port}/nowhere")},
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        r.body["config"]["secret"],
        json!({"set": true}),
        "kept when left out"
    );
    let r = api(
        &state,
        &token,
        "POST",
        &format!("/api/v1/alert-channels/{channel}/test"),
        None,
    )
    .await;
    assert_eq!(r.body["ok"], false, "{r:?}");
    assert!(r.body["error"].as_str().unwrap().contains("404"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_rule_fires_once_retries_its_delivery_and_resolves_sqlite() {
    offline_rule_fires_once_retries_its_delivery_and_resolves(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_rule_fires_once_retries_its_delivery_and_resolves_postgres() {
    offline_rule_fires_once_retries_its_delivery_and_resolves(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_evaluating_at_once_fire_and_deliver_once() {
    let database = testing::database(Kind::Postgres).await;
    let a = testing::app_state_with(&database, Edition::Community, LOOPBACK).await;
    let b = testing::app_state_with(&database, Edition::Community, LOOPBACK).await;
    let (token, org) = bootstrap(&a).await;
    let org: OrgId = org.parse().unwrap();
    testing::insert_agent(&a, org, "edge-1").await;
    testing::insert_agent(&a, org, "edge-2").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = receiver(listener);
    let r = api(&a, &token, "POST", "/api/v1/alert-channels", Some(json!({
        "name": "hook", "config": {"type": "webhook", "url": format!("http://127.0.0.1:{port}/hook")},
    })))
    .await;
    let channel = r.body["id"].as_str().unwrap().to_owned();
    let r = api(&a, &token, "POST", "/api/v1/alert-rules", Some(json!({
        "rule": {"name": "down", "kind": "agent_offline", "after_secs": 60, "severity": "warning", "enabled": true},
        "channels": [channel],
    })))
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let later = crate::util::now_micros() + 600_000_000;
    let (x, y) = tokio::join!(evaluate_org(&a, org, later), evaluate_org(&b, org, later));
    assert_eq!(
        x.unwrap().fired + y.unwrap().fired,
        2,
        "each agent's alert fired once"
    );
    let (x, y) = tokio::join!(deliver_due(&a, org, later), deliver_due(&b, org, later));
    assert_eq!(x.unwrap() + y.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        received.lock().unwrap().len(),
        2,
        "each alert delivered once"
    );
}

/// A real SMTP server (aiosmtpd) on a free port, writing every message it receives into
/// `dir`; killed when dropped.
struct SmtpServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = r#"
import sys, time, pathlib, itertools
try:
    from aiosmtpd.controller import Controller
except ImportError:
    sys.exit("aiosmtpd is missing: python3 -m pip install aiosmtpd (cargo xtask provision installs it)")
out = pathlib.Path(sys.argv[2]); n = itertools.count()
class Keep:
    async def handle_DATA(self, server, session, envelope):
        (out / f"{next(n)}.eml").write_bytes(envelope.original_content or envelope.content)
        return "250 OK"
c = Controller(Keep(), hostname="127.0.0.1", port=int(sys.argv[1])); c.start()
while True: time.sleep(3600)
"#;
        let child = std::process::Command::new("python3")
            .args([
                "-c",
                script,
                &port.to_string(),
                &dir.path().to_string_lossy(),
            ])
            .spawn()
            .expect("python3 runs");
        let server = SmtpServer { child, port, dir };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the SMTP server did not start (is aiosmtpd installed? cargo xtask provision)");
    }

    fn messages(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        out.sort();
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_container_fires_the_restart_loop_rule_by_mail_and_slack_then_resolves() {
    use infrapilot_agent_lib::logs::{LogConfig, LogPipeline, Selection};
    use infrapilot_agent_lib::testing::{RunOptions, TestDocker, wait_until};

    let state = testing::app_state_with(
        &testing::database(Kind::Sqlite).await,
        Edition::Community,
        LOOPBACK,
    )
    .await;
    let (token, org) = bootstrap(&state).await;
    let org: OrgId = org.parse().unwrap();
    let docker = TestDocker::new("restart-loop").await.expect("Docker");
    let agent = testing::insert_agent(&state, org, "crash-host").await;
    let dir = tempfile::tempdir().unwrap();
    let (key, value) = docker.label();
    let mut logs = LogConfig::new(dir.path().join("logs"));
    logs.selection = Selection::Label {
        key: key.to_owned(),
        value: Some(value.to_owned()),
    };
    let logs = LogPipeline::open(logs).unwrap();
    tokio::spawn(crate::agents::builtin::serve_with(
        state.clone(),
        org,
        agent,
        "/var/run/docker.sock".into(),
        crate::agents::builtin::BuiltinOptions {
            proxy: None,
            logs: Some(logs),
        },
    ));
    let smtp = SmtpServer::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slack_port = listener.local_addr().unwrap().port();
    let slack = receiver(listener);
    let r = api(
        &state,
        &token,
        "POST",
        "/api/v1/alert-channels",
        Some(json!({
            "name": "mail", "config": {"type": "smtp", "host": "127.0.0.1", "port": smtp.port,
                "security": "none", "from": "infrapilot@example.com", "to": ["ops@example.com"]},
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let mail = r.body["id"].as_str().unwrap().to_owned();
    let r = api(&state, &token, "POST", "/api/v1/alert-channels", Some(json!({
        "name": "slack", "config": {"type": "slack", "webhook_url": format!("http://127.0.0.1:{slack_port}/hook")},
    })))
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(
        r.body["config"]["webhook_url"],
        json!({"set": true}),
        "{r:?}"
    );
    let slack_channel = r.body["id"].as_str().unwrap().to_owned();
    let name = docker.name("crasher");
    let r = api(
        &state,
        &token,
        "POST",
        "/api/v1/alert-rules",
        Some(json!({
            "rule": {"name": "crash loop", "kind": "restart_loop", "restarts": 3, "window_secs": 20,
                     "scope": {"containers": [name]}, "severity": "critical", "enabled": true,
                     "notify_on_resolve": true},
            "channels": [mail, slack_channel],
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    // Let the agent's event collector subscribe, then crash in a loop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let container = docker
        .run(
            "crasher",
            &["sh", "-c", "sleep 1; exit 3"],
            RunOptions {
                restart: Some("always".to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let tick = || async {
        let now = crate::util::now_micros();
        evaluate_org(&state, org, now).await.unwrap();
        deliver_due(&state, org, now).await.unwrap();
    };
    let fired = wait_until(Duration::from_secs(60), || async {
        tick().await;
        !slack.lock().unwrap().is_empty() && !smtp.messages().is_empty()
    })
    .await;
    let alerts = api(&state, &token, "GET", "/api/v1/alerts", None).await;
    assert!(fired, "the restart loop was not notified: {alerts:?}");
    {
        let got = slack.lock().unwrap();
        let payload = &got[0].1;
        assert_eq!(payload["attachments"][0]["color"], "#d50200", "{payload}");
        assert!(payload.to_string().contains("crash loop"), "{payload}");
        assert!(payload.to_string().contains(&name), "{payload}");
    }
    let mails = smtp.messages();
    assert!(
        mails[0].contains("crash loop") && mails[0].contains(&name),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("To: ops@example.com"), "{}", mails[0]);
    assert_eq!(
        alerts.body["items"].as_array().unwrap().len(),
        1,
        "one alert: {alerts:?}"
    );
    let deliveries = alerts.body["items"][0]["deliveries"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        deliveries.iter().all(|d| d["status"] == "sent"),
        "{deliveries:?}"
    );

    // The loop ends: after a quiet window the alert resolves, and both channels hear of it.
    let stopped = std::process::Command::new("docker")
        .args(["update", "--restart=no", &container.id])
        .output()
        .unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
    let _ = std::process::Command::new("docker")
        .args(["stop", "-t", "1", &container.id])
        .output();
    let resolved = wait_until(Duration::from_secs(60), || async {
        tick().await;
        slack.lock().unwrap().len() >= 2 && smtp.messages().len() >= 2
    })
    .await;
    let alerts = api(&state, &token, "GET", "/api/v1/alerts", None).await;
    assert!(resolved, "{alerts:?}");
    assert_eq!(alerts.body["items"][0]["status"], "resolved", "{alerts:?}");
    assert_eq!(
        alerts.body["items"].as_array().unwrap().len(),
        1,
        "{alerts:?}"
    );
    assert!(
        smtp.messages().iter().any(|m| m.contains("RESOLVED")),
        "{:?}",
        smtp.messages()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_container_fires_the_cpu_and_memory_rules_from_heartbeat_samples() {
    use infrapilot_agent_lib::testing::{TestDocker, wait_until};

    let state = testing::app_state_with(
        &testing::database(Kind::Sqlite).await,
        Edition::Community,
        LOOPBACK,
    )
    .await;
    let (token, org) = bootstrap(&state).await;
    let org: OrgId = org.parse().unwrap();
    let docker = TestDocker::new("busy").await.expect("Docker");
    let agent = testing::insert_agent(&state, org, "busy-host").await;
    tokio::spawn(crate::agents::builtin::serve(
        state.clone(),
        org,
        agent,
        "/var/run/docker.sock".into(),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = receiver(listener);
    let r = api(&state, &token, "POST", "/api/v1/alert-channels", Some(json!({
        "name": "hook", "config": {"type": "webhook", "url": format!("http://127.0.0.1:{port}/hook")},
    })))
    .await;
    let channel = r.body["id"].as_str().unwrap().to_owned();
    let name = docker.name("spinner");
    for rule in [
        json!({"name": "hot cpu", "kind": "cpu_above", "percent": 30.0, "samples": 2,
               "scope": {"containers": [name]}, "severity": "warning", "enabled": true}),
        json!({"name": "any memory", "kind": "memory_above", "threshold": {"bytes": 1}, "samples": 1,
               "scope": {"containers": [name]}, "severity": "info", "enabled": true}),
    ] {
        let r = api(
            &state,
            &token,
            "POST",
            "/api/v1/alert-rules",
            Some(json!({"rule": rule, "channels": [channel]})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    docker
        .run(
            "spinner",
            &["sh", "-c", "while true; do :; done"],
            Default::default(),
        )
        .await
        .unwrap();
    let both = wait_until(Duration::from_secs(45), || async {
        let now = crate::util::now_micros();
        evaluate_org(&state, org, now).await.unwrap();
        deliver_due(&state, org, now).await.unwrap();
        received.lock().unwrap().len() >= 2
    })
    .await;
    let alerts = api(&state, &token, "GET", "/api/v1/alerts", None).await;
    let agents = api(&state, &token, "GET", "/api/v1/agents", None).await;
    assert!(both, "{alerts:?} {agents:?}");
    let mut rules: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body, _)| body["rule"].as_str().unwrap().to_owned())
        .collect();
    rules.sort();
    assert_eq!(rules, ["any memory", "hot cpu"], "{alerts:?}");
    let hot = alerts.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule_name"] == "hot cpu")
        .unwrap();
    assert!(hot["details"]["value"].as_f64().unwrap() > 30.0, "{hot}");
    assert!(hot["subject"].as_str().unwrap().contains(&name), "{hot}");
}
