//! The transport-agnostic session over in-process channels, with the test playing the server.

// Test helpers fail the test by panicking, like the assertions in the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use infrapilot_agent_lib::command::{HandlerFuture, Replies};
use infrapilot_agent_lib::{
    AgentError, AgentInfo, BuiltinCommands, CommandHandler, EndReason, HostProbe, SessionContext,
    SessionEnd, run_session,
};
use infrapilot_proto::v1::command::Kind;
use infrapilot_proto::v1::{
    AgentMessage, Cancel, Command, Goodbye, Inspect, Ping, ServerMessage, Welcome, agent_message,
    command_reply, server_message,
};
use tokio::sync::{Barrier, Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

/// The built-in commands, plus test behaviours selected by the ping payload: `sleep` never
/// finishes (and records when its work is dropped), `barrier` waits until 100 commands run at
/// once, `slow` takes one second.
struct TestHandler {
    builtin: BuiltinCommands,
    started: Notify,
    dropped: AtomicBool,
    barrier: Barrier,
    calls: AtomicUsize,
}

struct DropFlag<'a>(&'a AtomicBool);

impl Drop for DropFlag<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl CommandHandler for TestHandler {
    fn handle<'a>(&'a self, kind: &'a Kind, replies: &'a Replies) -> HandlerFuture<'a> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match kind {
                Kind::Ping(p) if p.payload == b"sleep" => {
                    let _flag = DropFlag(&self.dropped);
                    self.started.notify_one();
                    std::future::pending().await
                }
                Kind::Ping(p) if p.payload.starts_with(b"barrier") => {
                    self.barrier.wait().await;
                    Ok(p.payload.clone())
                }
                Kind::Ping(p) if p.payload == b"slow" => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok(b"finished".to_vec())
                }
                _ => self.builtin.handle(kind, replies).await,
            }
        })
    }
}

struct Harness {
    to_agent: mpsc::Sender<Result<ServerMessage, String>>,
    from_agent: mpsc::Receiver<AgentMessage>,
    session: JoinHandle<Result<SessionEnd, AgentError>>,
    handler: Arc<TestHandler>,
    ctx: SessionContext,
}

fn context(handler: Arc<TestHandler>) -> SessionContext {
    let info = AgentInfo {
        agent_version: "9.9.9".into(),
        hostname: "test-host".into(),
    };
    let mut ctx = SessionContext::new(info, Arc::new(HostProbe::without_docker()), handler);
    ctx.applied_revision = 7;
    ctx.heartbeat_interval = Duration::from_secs(3600);
    ctx
}

fn start_with(adjust: impl FnOnce(&mut SessionContext)) -> Harness {
    let probe = Arc::new(HostProbe::without_docker());
    let info = AgentInfo {
        agent_version: "9.9.9".into(),
        hostname: "test-host".into(),
    };
    let handler = Arc::new(TestHandler {
        builtin: BuiltinCommands::new(info, probe),
        started: Notify::new(),
        dropped: AtomicBool::new(false),
        barrier: Barrier::new(100),
        calls: AtomicUsize::new(0),
    });
    let mut ctx = context(handler.clone());
    adjust(&mut ctx);
    let (to_agent, rx) = mpsc::channel(1024);
    let (outgoing, from_agent) = mpsc::channel(1024);
    let session_ctx = ctx.clone();
    let session =
        tokio::spawn(
            async move { run_session(ReceiverStream::new(rx), outgoing, &session_ctx).await },
        );
    Harness {
        to_agent,
        from_agent,
        session,
        handler,
        ctx,
    }
}

fn start() -> Harness {
    start_with(|_| {})
}

fn message(body: server_message::Body) -> Result<ServerMessage, String> {
    Ok(ServerMessage { body: Some(body) })
}

fn welcome(heartbeat_interval_secs: u32) -> server_message::Body {
    server_message::Body::Welcome(Welcome {
        protocol_version: infrapilot_proto::PROTOCOL_VERSION,
        agent_id: "agent-1".into(),
        heartbeat_interval_secs,
    })
}

fn ping(request_id: &str, payload: &[u8], deadline_unix_ms: i64) -> server_message::Body {
    server_message::Body::Command(Command {
        request_id: request_id.into(),
        deadline_unix_ms,
        kind: Some(Kind::Ping(Ping {
            payload: payload.to_vec(),
        })),
    })
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

impl Harness {
    async fn send(&self, body: server_message::Body) {
        self.to_agent.send(message(body)).await.unwrap();
    }

    async fn next(&mut self) -> agent_message::Body {
        tokio::time::timeout(Duration::from_secs(60), self.from_agent.recv())
            .await
            .expect("the agent sent nothing")
            .expect("the agent closed its stream")
            .body
            .unwrap()
    }

    /// The next command reply, skipping heartbeats.
    async fn reply(&mut self) -> (String, u64, command_reply::Result) {
        loop {
            if let agent_message::Body::Reply(r) = self.next().await {
                return (r.request_id, r.seq, r.result.unwrap());
            }
        }
    }

    /// Reads Hello and answers Welcome.
    async fn welcome(&mut self, heartbeat_interval_secs: u32) {
        assert!(matches!(self.next().await, agent_message::Body::Hello(_)));
        self.send(welcome(heartbeat_interval_secs)).await;
    }

    async fn end(self) -> Result<SessionEnd, AgentError> {
        tokio::time::timeout(Duration::from_secs(60), self.session)
            .await
            .expect("the session did not end")
            .unwrap()
    }
}

fn error_code(result: &command_reply::Result) -> &str {
    match result {
        command_reply::Result::Error(e) => &e.code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn hello_comes_first_and_heartbeats_follow_the_welcome_interval() {
    let mut h = start();
    let agent_message::Body::Hello(hello) = h.next().await else {
        panic!("the first message must be Hello");
    };
    assert_eq!(hello.protocol_version, infrapilot_proto::PROTOCOL_VERSION);
    assert_eq!(hello.agent_version, "9.9.9");
    assert_eq!(hello.hostname, "test-host");
    assert_eq!(hello.applied_revision, 7);
    // Nothing but Hello before Welcome.
    assert!(h.from_agent.try_recv().is_err());

    h.send(welcome(5)).await;
    let mut times = Vec::new();
    for _ in 0..4 {
        let agent_message::Body::Heartbeat(hb) = h.next().await else {
            panic!("expected a heartbeat");
        };
        let host = hb.host.unwrap();
        assert!(host.cpus >= 1 && host.memory_total_bytes > 0);
        times.push(Instant::now());
    }
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for gap in gaps {
        assert!(
            gap >= Duration::from_secs(5) && gap < Duration::from_millis(5100),
            "{gap:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_operator_override_wins_over_the_servers_interval() {
    let mut h = start_with(|ctx| ctx.heartbeat_override = Some(Duration::from_secs(2)));
    h.welcome(30).await;
    let mut times = Vec::new();
    for _ in 0..3 {
        assert!(matches!(h.next().await, agent_message::Body::Heartbeat(_)));
        times.push(Instant::now());
    }
    assert!(times[2] - times[1] < Duration::from_secs(3));
}

#[tokio::test]
async fn ping_is_answered_with_its_payload() {
    let mut h = start();
    h.welcome(0).await;
    h.send(ping("p1", b"hello", 0)).await;
    let (id, seq, result) = h.reply().await;
    assert_eq!((id.as_str(), seq), ("p1", 0));
    assert_eq!(
        result,
        command_reply::Result::Done(infrapilot_proto::v1::Done {
            payload: b"hello".to_vec()
        })
    );
}

#[tokio::test]
async fn a_hundred_concurrent_commands_are_answered_by_id() {
    let mut h = start();
    h.welcome(0).await;
    // Each command waits at a barrier for all 100: they only finish if they run at once.
    for i in 0..100 {
        h.send(ping(&format!("r{i}"), format!("barrier {i}").as_bytes(), 0))
            .await;
    }
    let mut answered = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let (id, _, result) = h.reply().await;
        let command_reply::Result::Done(done) = result else {
            panic!("{id}: {result:?}");
        };
        answered.insert(id, String::from_utf8(done.payload).unwrap());
    }
    assert_eq!(answered.len(), 100);
    for (id, payload) in answered {
        assert_eq!(payload, format!("barrier {}", &id[1..]));
    }
}

#[tokio::test]
async fn cancel_stops_a_long_command() {
    let mut h = start();
    h.welcome(0).await;
    h.send(ping("long", b"sleep", 0)).await;
    h.handler.started.notified().await;
    h.send(server_message::Body::Cancel(Cancel {
        request_id: "long".into(),
    }))
    .await;
    let (id, _, result) = h.reply().await;
    assert_eq!(id, "long");
    assert_eq!(error_code(&result), "cancelled");
    assert!(
        h.handler.dropped.load(Ordering::SeqCst),
        "the work was dropped"
    );
    // The session goes on.
    h.send(ping("after", b"x", 0)).await;
    assert_eq!(h.reply().await.0, "after");
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_stops_the_command() {
    let mut h = start();
    h.welcome(0).await;
    h.send(ping("d1", b"sleep", now_ms() + 2_000)).await;
    let (id, _, result) = h.reply().await;
    assert_eq!(id, "d1");
    assert_eq!(error_code(&result), "deadline_exceeded");
    assert!(h.handler.dropped.load(Ordering::SeqCst));

    // A deadline already past: the handler is not even called.
    let calls = h.handler.calls.load(Ordering::SeqCst);
    h.send(ping("d2", b"x", now_ms() - 1)).await;
    let (_, _, result) = h.reply().await;
    assert_eq!(error_code(&result), "deadline_exceeded");
    assert_eq!(h.handler.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test]
async fn an_unknown_command_is_unsupported() {
    let mut h = start();
    h.welcome(0).await;
    h.send(server_message::Body::Command(Command {
        request_id: "u1".into(),
        deadline_unix_ms: 0,
        kind: None,
    }))
    .await;
    let (id, _, result) = h.reply().await;
    assert_eq!(id, "u1");
    assert_eq!(error_code(&result), "unsupported");
}

#[tokio::test]
async fn inspect_describes_the_agent() {
    let mut h = start();
    h.welcome(0).await;
    h.send(server_message::Body::Command(Command {
        request_id: "i1".into(),
        deadline_unix_ms: 0,
        kind: Some(Kind::Inspect(Inspect {})),
    }))
    .await;
    let (_, _, result) = h.reply().await;
    let command_reply::Result::Done(done) = result else {
        panic!("{result:?}");
    };
    let json: serde_json::Value = serde_json::from_slice(&done.payload).unwrap();
    assert_eq!(json["agent_version"], "9.9.9");
    assert_eq!(json["hostname"], "test-host");
    assert_eq!(json["protocol_version"], infrapilot_proto::PROTOCOL_VERSION);
    assert_eq!(json["docker"]["available"], false);
    assert!(json["host"]["cpus"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn a_permanent_goodbye_ends_the_session() {
    let mut h = start();
    h.welcome(0).await;
    h.send(server_message::Body::Goodbye(Goodbye {
        reason: "agent revoked".into(),
        permanent: true,
    }))
    .await;
    let end = h.end().await.unwrap();
    assert_eq!(
        end.reason,
        EndReason::Goodbye {
            reason: "agent revoked".into(),
            permanent: true
        }
    );
    assert_eq!(end.agent_id.as_deref(), Some("agent-1"));
}

#[tokio::test]
async fn a_goodbye_instead_of_welcome_is_not_a_healthy_session() {
    let mut h = start();
    assert!(matches!(h.next().await, agent_message::Body::Hello(_)));
    h.send(server_message::Body::Goodbye(Goodbye {
        reason: "unsupported protocol version 1".into(),
        permanent: true,
    }))
    .await;
    let end = h.end().await.unwrap();
    assert!(!end.was_welcomed());
}

#[tokio::test]
async fn another_protocol_version_is_a_clear_error() {
    let mut h = start();
    assert!(matches!(h.next().await, agent_message::Body::Hello(_)));
    h.send(server_message::Body::Welcome(Welcome {
        protocol_version: 99,
        agent_id: "a".into(),
        heartbeat_interval_secs: 0,
    }))
    .await;
    let error = h.end().await.unwrap_err();
    assert!(matches!(
        error,
        AgentError::ProtocolMismatch {
            agent: 1,
            server: 99
        }
    ));
    assert!(error.to_string().contains("version 99"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_times_out_instead_of_hanging() {
    let h = start();
    // The test keeps its sender open and never answers.
    let error = h.end().await.unwrap_err();
    assert!(matches!(error, AgentError::NoWelcome { .. }), "{error:?}");
}

#[tokio::test]
async fn a_command_before_welcome_is_a_protocol_error() {
    let mut h = start();
    assert!(matches!(h.next().await, agent_message::Body::Hello(_)));
    h.send(ping("early", b"x", 0)).await;
    let error = h.end().await.unwrap_err();
    assert!(
        matches!(error, AgentError::UnexpectedMessage { got: "Command", .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_broken_stream_carries_the_transport_message() {
    let mut h = start();
    h.welcome(0).await;
    h.to_agent
        .send(Err("connection reset by peer".into()))
        .await
        .unwrap();
    let error = h.end().await.unwrap_err();
    assert!(
        error.to_string().contains("connection reset by peer"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_replies_in_flight_then_closes_the_stream() {
    let mut h = start();
    h.welcome(0).await;
    h.send(ping("s1", b"slow", 0)).await;
    // Let the command start before shutting down.
    tokio::time::sleep(Duration::from_millis(10)).await;
    h.ctx.shutdown.cancel();
    let (id, _, result) = h.reply().await;
    assert_eq!(id, "s1");
    assert_eq!(
        result,
        command_reply::Result::Done(infrapilot_proto::v1::Done {
            payload: b"finished".to_vec()
        })
    );
    // Then the agent's side of the stream ends (heartbeats may precede the end).
    while let Some(m) = h.from_agent.recv().await {
        assert!(matches!(m.body, Some(agent_message::Body::Heartbeat(_))));
    }
    assert_eq!(h.end().await.unwrap().reason, EndReason::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_commands_that_outlast_the_drain() {
    let mut h = start_with(|ctx| ctx.drain_timeout = Duration::from_secs(2));
    h.welcome(0).await;
    h.send(ping("forever", b"sleep", 0)).await;
    h.handler.started.notified().await;
    h.ctx.shutdown.cancel();
    let (id, _, result) = h.reply().await;
    assert_eq!(id, "forever");
    assert_eq!(error_code(&result), "cancelled");
    assert_eq!(h.end().await.unwrap().reason, EndReason::Shutdown);
}
