//! Central logs end to end: a real container writes numbered lines; the real agent collects
//! them from the real Docker engine into its disk buffer and ships them over mTLS; the
//! server goes away and the agent restarts while lines keep coming. Every line must be
//! stored exactly once, in order, on SQLite and on PostgreSQL.

use std::time::Duration;

use axum::http::StatusCode;
use infrapilot_agent_lib::logs::{LogBuffer, LogConfig, Selection};
use infrapilot_agent_lib::testing::{TestDocker, wait_until};
use infrapilot_agent_lib::{Agent, AgentConfig, BackoffConfig, CancellationToken, StateDir};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::e2e_tests::{Env, enrolled, env, start_endpoint};
use crate::testing::Kind;

/// Runs the agent with Docker and log collection of this test's containers only.
fn run_agent(
    dir: &StateDir,
    docker: &TestDocker,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let mut config = AgentConfig::new(dir.path());
    config.heartbeat_override = Some(Duration::from_millis(500));
    config.backoff = BackoffConfig {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(500),
    };
    let (key, value) = docker.label();
    let mut logs = LogConfig::new(dir.path().join("logs"));
    logs.selection = Selection::Label {
        key: key.to_owned(),
        value: Some(value.to_owned()),
    };
    config.logs = Some(logs);
    let cancel = CancellationToken::new();
    let agent = Agent::new(config);
    let token = cancel.clone();
    let task = tokio::spawn(async move {
        let stopped = agent.run(token).await;
        assert!(stopped.is_ok(), "{stopped:?}");
    });
    (cancel, task)
}

/// The number in the newest stored `line N` of `container` (0 when none).
async fn newest_line(env: &Env, container: &str) -> u64 {
    let r = env
        .api(
            "GET",
            &format!("/api/v1/logs?container={container}&limit=1"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["items"][0]["line"]
        .as_str()
        .and_then(|l| l.strip_prefix("line "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Every stored line of `container`, oldest first, page by page.
async fn all_lines(env: &Env, container: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut uri = format!("/api/v1/logs?container={container}&order=oldest&limit=200");
        if !cursor.is_empty() {
            uri.push_str(&format!("&cursor={cursor}"));
        }
        let r = env.api("GET", &uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        lines.extend(r.body["items"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return lines,
        }
    }
}

async fn wait_for_line(env: &Env, container: &str, at_least: u64) {
    let reached = wait_until(Duration::from_secs(30), || async {
        newest_line(env, container).await >= at_least
    })
    .await;
    assert!(
        reached,
        "line {at_least} never arrived (newest: {})",
        newest_line(env, container).await
    );
}

async fn stop_endpoint(env: &mut Env) {
    env.stop.send(true).unwrap();
    let server = std::mem::replace(&mut env.server, tokio::spawn(async {}));
    let _ = server.await;
}

async fn every_line_arrives_exactly_once(kind: Kind) {
    let mut env = env(kind).await;
    let docker = TestDocker::new("central-logs").await.expect("Docker");
    let token = env.token(json!({"name": "logs"})).await;
    let (dir, id) = enrolled(&env, &token, &[]).await;
    let (cancel, task) = run_agent(&dir, &docker);
    env.wait_status(&id, "online").await;
    // Let the event collector subscribe before the container starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let script =
        "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo \"line $i\"; sleep 0.01; done";
    let container = docker
        .run("writer", &["sh", "-c", script], Default::default())
        .await
        .expect("the writer starts");
    let name = container.name.clone();
    wait_for_line(&env, &name, 50).await;

    // A live tail sees new lines as they are stored.
    let tail = env
        .api("GET", &format!("/api/v1/logs/tail?container={name}"), None)
        .await;
    assert_eq!(tail.status, StatusCode::OK, "{tail:?}");
    let text = tail.body.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("event: line") && text.contains("line "),
        "{text}"
    );

    // The server goes away; the writer goes on; the agent restarts with lines unshipped.
    stop_endpoint(&mut env).await;
    let before_outage = newest_line(&env, &name).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cancel.cancel();
    task.await.unwrap();
    // The agent stopped with lines in its buffer that the server never acknowledged.
    let buffer = LogBuffer::open(dir.path().join("logs"), Default::default()).unwrap();
    let unacked: u64 = buffer.streams().iter().map(|s| s.unacked).sum();
    assert!(unacked > 0, "{:?}", buffer.streams());
    drop(buffer);
    let (cancel, task) = run_agent(&dir, &docker);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        newest_line(&env, &name).await,
        before_outage,
        "nothing is stored while the server is away"
    );
    let listener = TcpListener::bind(("127.0.0.1", env.port)).await.unwrap();
    let (stop, server) = start_endpoint(&env.state, listener).await;
    env.stop = stop;
    env.server = server;
    env.wait_status(&id, "online").await;
    wait_for_line(&env, &name, before_outage + 200).await;

    // The writer stops; its last line is the count every stored line must add up to.
    let stopped = std::process::Command::new("docker")
        .args(["stop", "-t", "5", &container.id])
        .output()
        .expect("docker stop");
    assert!(stopped.status.success(), "{stopped:?}");
    let last = std::process::Command::new("docker")
        .args(["logs", "--tail", "1", &container.id])
        .output()
        .expect("docker logs");
    let last = String::from_utf8_lossy(&last.stdout).into_owned();
    let last: u64 = last
        .trim()
        .strip_prefix("line ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the writer's last line: {last:?}"));
    wait_for_line(&env, &name, last).await;
    let lines = all_lines(&env, &name).await;
    let texts: Vec<&str> = lines.iter().map(|l| l["line"].as_str().unwrap()).collect();
    let expected: Vec<String> = (1..=last).map(|i| format!("line {i}")).collect();
    assert_eq!(texts.len(), expected.len(), "every line exactly once");
    assert!(texts.iter().zip(&expected).all(|(a, b)| a == b), "in order");
    let seqs: Vec<i64> = lines.iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "one stream, contiguous sequence numbers"
    );
    assert!(lines.iter().all(|l| l["agent_id"] == id.as_str()
        && l["source"] == "stdout"
        && l["container_id"] == container.id.as_str()));

    // The stream's acknowledged seq is its last line, nothing was dropped.
    let streams = env
        .api("GET", &format!("/api/v1/logs/streams?agent_id={id}"), None)
        .await;
    let stream = streams
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["container_name"] == name.as_str())
        .cloned();
    let stream = stream.unwrap_or_else(|| panic!("{streams:?}"));
    assert_eq!(stream["acked_seq"].as_i64(), seqs.last().copied());
    assert_eq!(stream["dropped"], 0);

    // The writer's start and its clean exit are in the event inventory; the outage too.
    let found = wait_until(Duration::from_secs(15), || async {
        let r = env
            .api(
                "GET",
                &format!("/api/v1/events?container={name}&type=container.die"),
                None,
            )
            .await;
        r.body["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    assert!(found, "the writer's exit was never recorded");
    let r = env
        .api(
            "GET",
            &format!("/api/v1/events?container={name}&order=oldest"),
            None,
        )
        .await;
    let kinds: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"container.start"), "{kinds:?}");
    let die = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "container.die")
        .unwrap();
    assert_eq!(die["details"]["exit_code"], 0, "{die}");
    assert_eq!(die["summary"], format!("{name} exited with code 0"));
    let r = env
        .api(
            "GET",
            &format!("/api/v1/events?agent_id={id}&type=agent.offline,agent.online"),
            None,
        )
        .await;
    assert!(r.body["items"].as_array().unwrap().len() >= 3, "{r:?}");

    // The export holds the same lines.
    let r = env
        .api(
            "GET",
            &format!("/api/v1/logs/export?container={name}&format=ndjson"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let exported = r.body.as_str().map_or(1, |t| t.lines().count());
    assert_eq!(
        exported as u64,
        last,
        "{:?} {}",
        r.content_type,
        r.body
            .as_str()
            .unwrap_or_default()
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );

    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_exactly_once_sqlite() {
    every_line_arrives_exactly_once(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_exactly_once_postgres() {
    every_line_arrives_exactly_once(Kind::Postgres).await;
}
