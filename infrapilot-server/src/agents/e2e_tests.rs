//! End to end: the real agent library against the real agent endpoint (TLS 1.3, mTLS), with
//! the HTTP API on the side — on SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use infrapilot_agent_lib::{
    Agent, AgentConfig, AgentEndpoint, BackoffConfig, CancellationToken, EnrollError,
    EnrollmentToken, StateDir, StopReason, enroll,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::AppState;
use crate::api::http_tests_support::{bootstrap, call};
use crate::config::Edition;
use crate::testing::{self, Kind};

/// A server (HTTP state + a running agent endpoint) and an admin session.
pub(super) struct Env {
    pub(super) state: AppState,
    pub(super) port: u16,
    pub(super) admin: String,
    pub(super) stop: watch::Sender<bool>,
    pub(super) server: tokio::task::JoinHandle<()>,
}

pub(super) async fn start_endpoint(
    state: &AppState,
    listener: TcpListener,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, mut stopped) = watch::channel(false);
    let state = state.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.changed().await;
        };
        super::serve(state, listener, shutdown)
            .await
            .expect("agent endpoint");
    });
    (stop, server)
}

pub(super) async fn env_on(state: AppState) -> Env {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, server) = start_endpoint(&state, listener).await;
    let (admin, _) = bootstrap(&state).await;
    Env {
        state,
        port,
        admin,
        stop,
        server,
    }
}

pub(super) async fn env(kind: Kind) -> Env {
    env_on(testing::app_state(kind, Edition::Community).await).await
}

impl Env {
    pub(super) fn endpoint(&self) -> AgentEndpoint {
        AgentEndpoint::parse(&format!("https://127.0.0.1:{}", self.port)).unwrap()
    }

    pub(super) async fn token(&self, body: Value) -> String {
        let r = call(
            &self.state,
            "POST",
            "/api/v1/enrollment-tokens",
            Some(&self.admin),
            None,
            Some(body),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.body["token"].as_str().unwrap().to_owned()
    }

    pub(super) async fn agent(&self, id: &str) -> Value {
        let r = call(
            &self.state,
            "GET",
            &format!("/api/v1/agents/{id}"),
            Some(&self.admin),
            None,
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.body
    }

    /// An admin's API call.
    pub(super) async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> crate::api::http_tests_support::Reply {
        call(&self.state, method, path, Some(&self.admin), None, body).await
    }

    /// Pings the agent through the API.
    pub(super) async fn ping(&self, id: &str) -> crate::api::http_tests_support::Reply {
        call(
            &self.state,
            "POST",
            &format!("/api/v1/agents/{id}/ping"),
            Some(&self.admin),
            None,
            None,
        )
        .await
    }

    pub(super) async fn wait_status(&self, id: &str, status: &str) -> Value {
        for _ in 0..200 {
            let agent = self.agent(id).await;
            if agent["status"] == status {
                return agent;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("agent {id} never became {status}: {}", self.agent(id).await);
    }
}

pub(super) fn state_dir() -> StateDir {
    StateDir::new(std::env::temp_dir().join(format!(
        "infrapilot-agent-{}",
        uuid::Uuid::new_v4().simple()
    )))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) fn run_agent(
    dir: &StateDir,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<StopReason, infrapilot_agent_lib::AgentError>>,
) {
    run_agent_with(dir, None)
}

/// [`run_agent`] with the Docker engine at `docker_socket`.
pub(super) fn run_agent_with(
    dir: &StateDir,
    docker_socket: Option<&str>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<StopReason, infrapilot_agent_lib::AgentError>>,
) {
    let mut config = AgentConfig::new(dir.path());
    config.heartbeat_override = Some(Duration::from_millis(500));
    config.backoff = BackoffConfig {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(500),
    };
    config.docker_socket = docker_socket.map(Into::into);
    let cancel = CancellationToken::new();
    let agent = Agent::new(config);
    let token = cancel.clone();
    (cancel, tokio::spawn(async move { agent.run(token).await }))
}

pub(super) async fn enrolled(env: &Env, token: &str, own: &[(&str, &str)]) -> (StateDir, String) {
    let dir = state_dir();
    let token = EnrollmentToken::parse(token).unwrap();
    let outcome = enroll(&env.endpoint(), &token, &labels(own), &dir)
        .await
        .expect("enrolls");
    (dir, outcome.agent_id)
}

async fn connected_agent_answers_commands(kind: Kind) {
    let env = env(kind).await;
    let token = env
        .token(json!({"name": "hosts", "labels": {"env": "production"}}))
        .await;
    let (dir, id) = enrolled(&env, &token, &[("env", "staging"), ("rack", "r1")]).await;
    let agent = env.agent(&id).await;
    assert_eq!(agent["status"], "offline", "enrolled but not connected");
    assert_eq!(
        agent["labels"]["env"], "production",
        "the token's labels win"
    );
    assert_eq!(agent["labels"]["rack"], "r1");

    let (cancel, running) = run_agent(&dir);
    let online = env.wait_status(&id, "online").await;
    assert!(online["connected_at"].is_string());
    // Heartbeats carry host metrics.
    for _ in 0..50 {
        if env.agent(&id).await["heartbeat"]["host"]["cpus"]
            .as_u64()
            .unwrap_or(0)
            > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let agent = env.agent(&id).await;
    assert!(
        agent["heartbeat"]["host"]["memory_total_bytes"]
            .as_u64()
            .unwrap()
            > 0,
        "{agent}"
    );

    let ping = call(
        &env.state,
        "POST",
        &format!("/api/v1/agents/{id}/ping"),
        Some(&env.admin),
        None,
        None,
    )
    .await;
    assert_eq!(ping.status, StatusCode::OK, "{ping:?}");
    assert!(ping.body["round_trip_ms"].as_f64().unwrap() > 0.0);
    let info = call(
        &env.state,
        "GET",
        &format!("/api/v1/agents/{id}/info"),
        Some(&env.admin),
        None,
        None,
    )
    .await;
    assert_eq!(info.status, StatusCode::OK, "{info:?}");
    assert_eq!(info.body["protocol_version"], 1, "{info:?}");

    // Disabling closes the stream for good, at once.
    let r = call(
        &env.state,
        "PATCH",
        &format!("/api/v1/agents/{id}"),
        Some(&env.admin),
        None,
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(r.body["status"], "disabled", "{r:?}");
    let stopped = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the agent stops")
        .unwrap();
    match stopped {
        Ok(StopReason::Goodbye { reason }) => assert!(reason.contains("disabled"), "{reason}"),
        other => panic!("expected a goodbye, got {other:?}"),
    }
    // A disabled agent's next connection is refused.
    let (_cancel2, again) = run_agent(&dir);
    let refused = tokio::time::timeout(Duration::from_secs(10), again)
        .await
        .expect("refused promptly")
        .unwrap();
    match refused {
        Ok(StopReason::Goodbye { reason }) => assert!(reason.contains("disabled"), "{reason}"),
        Err(e) => assert!(e.to_string().contains("disabled"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Offline agents answer 503 with a clear body.
    let ping = call(
        &env.state,
        "POST",
        &format!("/api/v1/agents/{id}/ping"),
        Some(&env.admin),
        None,
        None,
    )
    .await;
    assert_eq!(ping.status, StatusCode::SERVICE_UNAVAILABLE, "{ping:?}");
    assert!(ping.content_type.starts_with("application/problem+json"));
    assert!(
        ping.body["detail"].as_str().unwrap().contains("offline"),
        "{ping:?}"
    );
    cancel.cancel();
    let verify = call(
        &env.state,
        "GET",
        "/api/v1/audit/verify",
        Some(&env.admin),
        None,
        None,
    )
    .await;
    assert!(verify.body["broken"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_agent_answers_commands_sqlite() {
    connected_agent_answers_commands(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_agent_answers_commands_postgres() {
    connected_agent_answers_commands(Kind::Postgres).await;
}

fn rejected_with(result: Result<infrapilot_agent_lib::EnrollOutcome, EnrollError>, words: &str) {
    match result {
        Err(EnrollError::Rejected { message, .. }) => assert!(message.contains(words), "{message}"),
        other => panic!("expected a rejection mentioning {words:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_rejections() {
    let env = env(Kind::Sqlite).await;
    let no_labels = labels(&[]);

    // Unknown: a well-formed token this server never issued (right CA, unknown id).
    let real = EnrollmentToken::parse(&env.token(json!({"name": "a"})).await).unwrap();
    let mut unknown = real.clone();
    unknown.public_id = infrapilot_core::enrollment::TokenPublicId::from_bytes([9; 8]);
    rejected_with(
        enroll(&env.endpoint(), &unknown, &no_labels, &state_dir()).await,
        "unknown",
    );
    // A wrong secret is "unknown" too: nothing tells a guesser the id exists.
    let mut wrong_secret = real.clone();
    wrong_secret.secret = infrapilot_core::enrollment::TokenSecret::from_bytes([1; 32]);
    rejected_with(
        enroll(&env.endpoint(), &wrong_secret, &no_labels, &state_dir()).await,
        "unknown",
    );

    // Revoked.
    let text = env.token(json!({"name": "b"})).await;
    let token = EnrollmentToken::parse(&text).unwrap();
    let id = token.public_id.to_string();
    call(
        &env.state,
        "POST",
        &format!("/api/v1/enrollment-tokens/{id}/revoke"),
        Some(&env.admin),
        None,
        None,
    )
    .await;
    rejected_with(
        enroll(&env.endpoint(), &token, &no_labels, &state_dir()).await,
        "revoked",
    );

    // Exhausted.
    let token =
        EnrollmentToken::parse(&env.token(json!({"name": "c", "max_uses": 1})).await).unwrap();
    enroll(&env.endpoint(), &token, &no_labels, &state_dir())
        .await
        .expect("first use");
    rejected_with(
        enroll(&env.endpoint(), &token, &no_labels, &state_dir()).await,
        "used as often as allowed",
    );

    // Expired: a token whose expiry passed.
    let token =
        EnrollmentToken::parse(&env.token(json!({"name": "d", "expires_in_secs": 60})).await)
            .unwrap();
    expire_enrollment_token(&env.state, token.public_id).await;
    rejected_with(
        enroll(&env.endpoint(), &token, &no_labels, &state_dir()).await,
        "expired",
    );

    // Wrong CA pin: the agent refuses the server before it sends the secret.
    let token = EnrollmentToken::parse(&env.token(json!({"name": "e"})).await).unwrap();
    let mut pinned_elsewhere = token.clone();
    pinned_elsewhere.ca_fingerprint =
        infrapilot_core::enrollment::CaFingerprint::of_der(b"another CA");
    match enroll(&env.endpoint(), &pinned_elsewhere, &no_labels, &state_dir()).await {
        Err(EnrollError::CaMismatch { .. }) => {}
        other => panic!("expected a CA mismatch, got {other:?}"),
    }
    let view = call(
        &env.state,
        "GET",
        &format!("/api/v1/enrollment-tokens/{}", token.public_id),
        Some(&env.admin),
        None,
        None,
    )
    .await;
    assert_eq!(
        view.body["uses"], 0,
        "the secret never reached the server: {view:?}"
    );

    // A replayed CSR: the same key cannot enroll a second agent.
    let token = env.token(json!({"name": "f", "max_uses": 5})).await;
    let (first, second) = enroll_twice_with_one_key(&env.state, env.port, &token).await;
    assert!(first.is_ok(), "{first:?}");
    let status = second.unwrap_err();
    assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("replayed"), "{status:?}");

    // The organization's agent limit holds (two agents enrolled above).
    let r = call(
        &env.state,
        "PATCH",
        "/api/v1/organization",
        Some(&env.admin),
        None,
        Some(json!({"max_agents": 2})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let limited = EnrollmentToken::parse(&env.token(json!({"name": "g"})).await).unwrap();
    rejected_with(
        enroll(&env.endpoint(), &limited, &no_labels, &state_dir()).await,
        "limit of 2 agents",
    );

    // A protocol version the server does not speak gets a clear message, not a hang.
    let status = enroll_with_version(&env.state, env.port, &token, 99)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains("protocol version 99 is not supported"),
        "{status:?}"
    );
}

async fn one_agent_from_a_hundred_redemptions(kind: Kind) {
    let env = env(kind).await;
    let text = env.token(json!({"name": "once", "max_uses": 1})).await;
    let token = EnrollmentToken::parse(&text).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let endpoint = env.endpoint();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            enroll(&endpoint, &token, &BTreeMap::new(), &state_dir()).await
        }));
    }
    let mut ok = 0;
    let mut exhausted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(EnrollError::Rejected { message, .. }) if message.contains("used as often") => {
                exhausted += 1
            }
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!((ok, exhausted), (1, 99));
    let list = call(
        &env.state,
        "GET",
        "/api/v1/agents",
        Some(&env.admin),
        None,
        None,
    )
    .await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_from_a_hundred_redemptions_sqlite() {
    one_agent_from_a_hundred_redemptions(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_from_a_hundred_redemptions_postgres() {
    one_agent_from_a_hundred_redemptions(Kind::Postgres).await;
}

/// Ten enrollments with ten single-use tokens at once, round after round, under an agent
/// limit two above the agents already there: exactly two get in each round (the
/// organization's row lock serialises the count; PostgreSQL's READ COMMITTED alone let all
/// ten through).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enrollments_hold_the_agent_limit_postgres() {
    let env = env(Kind::Postgres).await;
    for round in 0..6 {
        let r = call(
            &env.state,
            "PATCH",
            "/api/v1/organization",
            Some(&env.admin),
            None,
            Some(json!({"max_agents": 2 * (round + 1)})),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        // Keys, requests and connections are made first, so the ten enrollments reach the
        // server together.
        let start = Arc::new(tokio::sync::Barrier::new(10));
        let mut tasks = Vec::new();
        for n in 0..10 {
            let token = env
                .token(json!({"name": format!("r{round}-{n}"), "max_uses": 1}))
                .await;
            let key = rcgen::KeyPair::generate().unwrap();
            let req = request(&token, csr(&key), 1);
            let mut client = enrollment_client(&env.state, env.port).await;
            let start = Arc::clone(&start);
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                client.enroll(req).await.map(|_| ())
            }));
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => ok += 1,
                Err(status) if status.message().contains("limit of") => {}
                Err(other) => panic!("round {round}: unexpected: {other}"),
            }
        }
        assert_eq!(ok, 2, "round {round}");
        let list = call(
            &env.state,
            "GET",
            "/api/v1/agents?limit=200",
            Some(&env.admin),
            None,
            None,
        )
        .await;
        assert_eq!(
            list.body["items"].as_array().unwrap().len(),
            2 * (round + 1),
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_expired_and_revoked_client_certificates_are_refused() {
    let env = env(Kind::Sqlite).await;
    let token = env.token(json!({"name": "certs"})).await;
    let (dir, id) = enrolled(&env, &token, &[]).await;
    // A certificate from another CA: the TLS handshake fails.
    let foreign = session_with_foreign_certificate(&env.state, env.port).await;
    assert!(
        foreign.is_err(),
        "a certificate from another CA was accepted"
    );
    // An expired certificate signed by the right CA: refused too.
    let expired = session_with_expired_certificate(&env.state, env.port, &id).await;
    assert!(expired.is_err(), "an expired certificate was accepted");
    // No certificate: the session call is refused with a clear message.
    let status = session_without_certificate(&env.state, env.port)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    // Revoked: the agent is deleted; its valid certificate no longer opens a session.
    let r = call(
        &env.state,
        "DELETE",
        &format!("/api/v1/agents/{id}"),
        Some(&env.admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let (_cancel, running) = run_agent(&dir);
    let stopped = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("refused promptly")
        .unwrap();
    let text = match stopped {
        Ok(StopReason::Goodbye { reason }) => reason,
        Err(e) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(text.contains("deleted"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_while_the_server_is_down_and_back_after_it_restarts() {
    let mut env = env(Kind::Sqlite).await;
    let token = env.token(json!({"name": "restart"})).await;
    let (dir, id) = enrolled(&env, &token, &[]).await;
    let (cancel, _running) = run_agent(&dir);
    env.wait_status(&id, "online").await;
    // The endpoint goes away: the stream ends and the agent is shown offline.
    env.stop.send(true).unwrap();
    let server = std::mem::replace(&mut env.server, tokio::spawn(async {}));
    let _ = server.await;
    env.wait_status(&id, "offline").await;
    // It comes back on the same port: the agent reconnects by itself.
    let listener = TcpListener::bind(("127.0.0.1", env.port)).await.unwrap();
    let (_stop, _server) = start_endpoint(&env.state, listener).await;
    env.wait_status(&id, "online").await;
    let ping = call(
        &env.state,
        "POST",
        &format!("/api/v1/agents/{id}/ping"),
        Some(&env.admin),
        None,
        None,
    )
    .await;
    assert_eq!(ping.status, StatusCode::OK, "{ping:?}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_one_replica_reaches_an_agent_on_another() {
    let database = testing::database(Kind::Postgres).await;
    let a = env_on(testing::app_state_on(&database, Edition::Community).await).await;
    // Replica B: the same database, its own hub, endpoint and LISTEN channel.
    let b_state = testing::app_state_on(&database, Edition::Community).await;
    assert_ne!(a.state.hub().replica(), b_state.hub().replica());
    tokio::spawn(super::listen_for_relays(a.state.clone()));
    tokio::spawn(super::listen_for_relays(b_state.clone()));
    let token = a.token(json!({"name": "replicas"})).await;
    let (dir, id) = enrolled(&a, &token, &[]).await;
    let (cancel, _running) = run_agent(&dir);
    a.wait_status(&id, "online").await;
    assert!(!b_state.hub().holds(id.parse().unwrap()));
    // Give both LISTEN connections a moment to be established.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ping = call(
        &b_state,
        "POST",
        &format!("/api/v1/agents/{id}/ping"),
        Some(&a.admin),
        None,
        None,
    )
    .await;
    assert_eq!(ping.status, StatusCode::OK, "through replica B: {ping:?}");
    let info = call(
        &b_state,
        "GET",
        &format!("/api/v1/agents/{id}/info"),
        Some(&a.admin),
        None,
        None,
    )
    .await;
    assert_eq!(info.status, StatusCode::OK, "{info:?}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_on_one_replica_runs_on_an_agent_held_by_another() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use infrapilot_agent_lib::testing::{RunOptions, TestDocker};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let docker = TestDocker::new("relayed_terminal").await.unwrap();
    let shell = docker
        .run("shell", &["sleep", "600"], RunOptions::default())
        .await
        .unwrap();
    let database = testing::database(Kind::Postgres).await;
    let a = env_on(testing::app_state_on(&database, Edition::Community).await).await;
    let b_state = testing::app_state_on(&database, Edition::Community).await;
    tokio::spawn(super::listen_for_relays(a.state.clone()));
    tokio::spawn(super::listen_for_relays(b_state.clone()));
    let token = a.token(json!({"name": "replicas"})).await;
    let (dir, id) = enrolled(&a, &token, &[]).await;
    let (cancel, _running) = run_agent_with(&dir, Some("/var/run/docker.sock"));
    a.wait_status(&id, "online").await;
    // Both replicas listen once a command relayed from B comes back.
    let ping_uri = format!("/api/v1/agents/{id}/ping");
    let ping = || call(&b_state, "POST", &ping_uri, Some(&a.admin), None, None);
    let mut answered = false;
    for _ in 0..50 {
        if ping().await.status == StatusCode::OK {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "replica B reaches the agent through A");

    // Replica B serves the WebSocket; replica A holds the agent's stream.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = crate::app(b_state.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let connect = async |what: &str| {
        let url = format!(
            "ws://{addr}/api/v1/agents/{id}/containers/{}/{what}/ws",
            shell.name
        );
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", a.admin).parse().unwrap(),
        );
        tokio_tungstenite::connect_async(request).await.unwrap().0
    };
    let mut term = connect("exec").await;
    let next = async |term: &mut tokio_tungstenite::WebSocketStream<_>| {
        tokio::time::timeout(Duration::from_secs(20), term.next())
            .await
            .expect("a frame within 20 s")
            .expect("the socket is open")
            .expect("a valid frame")
    };
    term.send(Message::Text(
        json!({"cmd": ["sh"], "tty": true}).to_string().into(),
    ))
    .await
    .unwrap();
    match next(&mut term).await {
        Message::Text(text) => assert!(text.contains("started"), "{text}"),
        other => panic!("{other:?}"),
    }
    // Input goes over, and 22,000 bytes of output come back whole and in order (a chunk is
    // cut into parts that fit a notification and put together again).
    term.send(Message::Binary(
        b"yes 0123456789 | head -n 2000; echo end-$((40+2))\n"
            .to_vec()
            .into(),
    ))
    .await
    .unwrap();
    let mut output = String::new();
    while !output.contains("end-42") {
        if let Message::Binary(bytes) = next(&mut term).await {
            assert_eq!(bytes[0], 1, "TTY output is stdout");
            output.push_str(&String::from_utf8_lossy(&bytes[1..]));
        }
    }
    let lines: Vec<&str> = output
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| *l == "0123456789")
        .collect();
    assert_eq!(lines.len(), 2000, "every line once: {} bytes", output.len());
    term.send(Message::Binary(b"exit 7\n".to_vec().into()))
        .await
        .unwrap();
    let exit = loop {
        if let Message::Text(text) = next(&mut term).await {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] == "exit" {
                break v;
            }
        }
    };
    assert_eq!(exit["exit_code"], 7, "{exit}");
    drop(term);

    // A stream that never ends on its own (stats) is cancelled on the agent's replica when
    // its client goes away.
    let mut stats = connect("stats").await;
    match next(&mut stats).await {
        Message::Text(text) => assert!(text.contains("cpu"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        a.state.relay_streams().in_flight(),
        1,
        "A serves the stream"
    );
    drop(stats);
    // Nothing is left behind: the relayed streams are gone on both replicas.
    let mut left = true;
    for _ in 0..50 {
        left = b_state.relay_streams().in_flight() + a.state.relay_streams().in_flight() > 0;
        if !left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!left, "relayed streams left behind");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_as_closed_when_its_agent_goes_away() {
    use infrapilot_agent_lib::testing::{RunOptions, TestDocker};
    use infrapilot_core::docker::DockerRequest;

    let docker = TestDocker::new("stream_agent_gone").await.unwrap();
    let idle = docker
        .run("idle", &["sleep", "600"], RunOptions::default())
        .await
        .unwrap();
    let env = env(Kind::Sqlite).await;
    let token = env.token(json!({"name": "leaving"})).await;
    let (dir, id) = enrolled(&env, &token, &[]).await;
    let (cancel, running) = run_agent_with(&dir, Some("/var/run/docker.sock"));
    env.wait_status(&id, "online").await;
    let agent: infrapilot_core::ids::AgentId = id.parse().unwrap();
    let me = call(
        &env.state,
        "GET",
        "/api/v1/auth/me",
        Some(&env.admin),
        None,
        None,
    )
    .await;
    let org: infrapilot_core::ids::OrgId = me.body["organizations"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let request: DockerRequest =
        serde_json::from_value(json!({"op": "stats", "container": idle.name, "stream": true}))
            .unwrap();
    let kind = infrapilot_proto::v1::command::Kind::Docker(infrapilot_proto::v1::Docker {
        request_json: request.to_json(),
    });
    let mut stream = env
        .state
        .hub()
        .open_stream(org, agent, kind, None)
        .await
        .unwrap();
    assert!(matches!(
        stream.next().await,
        Some(super::StreamEvent::Chunk(_))
    ));
    // The agent's connection drops without a word (the process died): its session ends,
    // and the stream with it, rather than wait for a reply that cannot come.
    running.abort();
    let _ = running.await;
    drop(cancel);
    let end = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Some(super::StreamEvent::Chunk(_)) => {}
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert_eq!(
        end,
        Some(super::StreamEvent::Failed(super::CommandError::Closed))
    );
}

// ---- Helpers that speak to the endpoint below the agent library ----

use std::sync::Arc;

use infrapilot_agent_lib::tls::{
    PinnedCaVerifier, channel, enroll_client_config, mtls_client_config,
};
use infrapilot_proto::v1::agent_service_client::AgentServiceClient;
use infrapilot_proto::v1::{AgentMessage, EnrollRequest, Hello, agent_message};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub(super) fn endpoint_at(port: u16) -> AgentEndpoint {
    AgentEndpoint::parse(&format!("https://127.0.0.1:{port}")).unwrap()
}

pub(super) fn csr(key: &rcgen::KeyPair) -> Vec<u8> {
    rcgen::CertificateParams::default()
        .serialize_request(key)
        .unwrap()
        .der()
        .to_vec()
}

async fn enrollment_client(
    state: &AppState,
    port: u16,
) -> AgentServiceClient<tonic::transport::Channel> {
    let verifier = Arc::new(PinnedCaVerifier::new(state.ca().fingerprint()));
    let config = Arc::new(enroll_client_config(verifier).unwrap());
    AgentServiceClient::new(channel(&endpoint_at(port), config).await.unwrap())
}

fn request(token: &str, csr_der: Vec<u8>, version: u32) -> EnrollRequest {
    EnrollRequest {
        token: token.to_owned(),
        csr_der,
        hostname: "replay-host".to_owned(),
        labels: Default::default(),
        agent_version: "test".to_owned(),
        protocol_version: version,
    }
}

/// Enrolls twice with one key: the second request replays the first's CSR.
async fn enroll_twice_with_one_key(
    state: &AppState,
    port: u16,
    token: &str,
) -> (Result<(), tonic::Status>, Result<(), tonic::Status>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr_der = csr(&key);
    let mut client = enrollment_client(state, port).await;
    let first = client
        .enroll(request(token, csr_der.clone(), 1))
        .await
        .map(|_| ());
    let second = client.enroll(request(token, csr_der, 1)).await.map(|_| ());
    (first, second)
}

async fn enroll_with_version(
    state: &AppState,
    port: u16,
    token: &str,
    version: u32,
) -> Result<(), tonic::Status> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut client = enrollment_client(state, port).await;
    client
        .enroll(request(token, csr(&key), version))
        .await
        .map(|_| ())
}

async fn expire_enrollment_token(state: &AppState, id: infrapilot_core::enrollment::TokenPublicId) {
    use infrapilot_core::enrollment::TokenRecord;
    use infrapilot_core::rbac::{Effective, OrgRole};

    use crate::store::{Actor, OrgScope};

    let mut g = state.store().global().await.unwrap();
    let org = g
        .token_org("enrollment_token", &id.to_string())
        .await
        .unwrap()
        .unwrap();
    g.commit().await.unwrap();
    let scope = OrgScope::new(org, Actor::System, Effective::Org(OrgRole::Viewer));
    let mut tx = state.store().org(&scope).await.unwrap();
    let stored = tx.enrollment_token(id).await.unwrap();
    let mut parts = stored.record.into_parts();
    parts.expires_at = Some(parts.created_at - 1);
    tx.update_enrollment_token(&TokenRecord::from_parts(parts).unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Opens a session with a given client identity and sends Hello; Ok if the server answered.
pub(super) async fn session_with(
    state: &AppState,
    port: u16,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(), String> {
    let ca = CertificateDer::from(state.ca().cert_der().to_vec());
    let config = Arc::new(mtls_client_config(ca, chain, key).map_err(|e| e.to_string())?);
    let channel = channel(&endpoint_at(port), config)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = AgentServiceClient::new(channel);
    let hello = AgentMessage {
        body: Some(agent_message::Body::Hello(Hello {
            protocol_version: 1,
            agent_version: "test".into(),
            hostname: "h".into(),
            applied_revision: 0,
        })),
    };
    let response = client
        .session(tokio_stream::iter(vec![hello]))
        .await
        .map_err(|s| s.to_string())?;
    let mut stream = response.into_inner();
    stream
        .message()
        .await
        .map_err(|s| s.to_string())?
        .ok_or("no answer")?;
    Ok(())
}

async fn session_with_foreign_certificate(state: &AppState, port: u16) -> Result<(), String> {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["agent".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    session_with(state, port, vec![cert.der().clone()], key).await
}

async fn session_with_expired_certificate(
    state: &AppState,
    port: u16,
    agent: &str,
) -> Result<(), String> {
    let key = rcgen::KeyPair::generate().unwrap();
    let now = crate::util::now_secs();
    let cert = super::lifecycle_tests::agent_certificate(
        state,
        &key,
        agent,
        None,
        (now - 10 * 86_400, now - 3 * 86_400),
    );
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    session_with(state, port, vec![cert], key).await
}

async fn session_without_certificate(state: &AppState, port: u16) -> Result<(), tonic::Status> {
    let mut client = enrollment_client(state, port).await;
    let hello = AgentMessage {
        body: Some(agent_message::Body::Hello(Hello::default())),
    };
    client
        .session(tokio_stream::iter(vec![hello]))
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_community_built_in_agent_registers_itself_and_answers() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    let (admin, _) = bootstrap(&state).await;
    let socket = std::path::PathBuf::from("/var/run/docker.sock");
    assert!(
        socket.exists(),
        "this test needs the machine's Docker engine at /var/run/docker.sock"
    );
    tokio::spawn(super::builtin::run(state.clone(), socket));
    let mut id = None;
    for _ in 0..100 {
        let list = call(&state, "GET", "/api/v1/agents", Some(&admin), None, None).await;
        if let Some(agent) = list.body["items"].as_array().and_then(|a| a.first())
            && agent["status"] == "online"
        {
            assert_eq!(agent["labels"]["infrapilot.builtin"], "true", "{agent}");
            id = Some(agent["id"].as_str().unwrap().to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = id.expect("the built-in agent comes online without a token");
    let ping = call(
        &state,
        "POST",
        &format!("/api/v1/agents/{id}/ping"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(ping.status, StatusCode::OK, "{ping:?}");
    let info = call(
        &state,
        "GET",
        &format!("/api/v1/agents/{id}/info"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(info.body["docker"]["available"], true, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_agent_drives_its_hosts_nginx_and_keeps_serving_after_a_restart() {
    use infrapilot_agent_lib::testing::{free_port, http};

    const NGINX: &str = "/usr/sbin/nginx";
    let env = env(Kind::Sqlite).await;
    let token = env.token(json!({"name": "edge"})).await;
    let (dir, id) = enrolled(&env, &token, &[]).await;
    let ports = (free_port(), free_port());
    let start = || {
        let proxy = infrapilot_agent_lib::nginx::ProxySetup::host(
            dir.path().join("nginx"),
            NGINX,
            ports,
            dir.path().join("desired-state.json"),
            dir.path().join("acme"),
        )
        .build()
        .unwrap();
        let mut config = AgentConfig::new(dir.path());
        config.heartbeat_override = Some(Duration::from_millis(500));
        config.docker_socket = None;
        config.proxy = Some(std::sync::Arc::new(proxy));
        let cancel = CancellationToken::new();
        let agent = Agent::new(config);
        let token = cancel.clone();
        (cancel, tokio::spawn(async move { agent.run(token).await }))
    };
    struct StopNginx(std::path::PathBuf);
    impl Drop for StopNginx {
        fn drop(&mut self) {
            let conf = self.0.join("nginx/conf/nginx.conf");
            let _ = std::process::Command::new("/usr/sbin/nginx")
                .args(["-q", "-c"])
                .arg(conf)
                .args(["-s", "stop"])
                .output();
        }
    }
    let _stop = StopNginx(dir.path().canonicalize().unwrap());
    let (cancel, running) = start();
    env.wait_status(&id, "online").await;

    // A host created through the API reaches the remote agent over mTLS and nginx serves it.
    let upstream = http::upstream("edge").await.unwrap();
    let r = env
        .api(
            "POST",
            "/api/v1/proxy-hosts",
            Some(json!({"agent_id": id, "host": {
            "domains": ["edge.test"], "upstream": format!("http://127.0.0.1:{upstream}")}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["status"], "applied", "{r:?}");
    let served = |_: ()| http::until(ports.0, "edge.test", |r| r.1 == "upstream edge");
    assert_eq!(served(()).await.unwrap().1, "upstream edge");

    // The agent stops (nginx keeps serving) and starts again with the server still there:
    // it re-applies its own state and tells the server, which stays in sync.
    cancel.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(
        http::get(ports.0, "edge.test").await.unwrap().1,
        "upstream edge"
    );
    let (cancel, running) = start();
    env.wait_status(&id, "online").await;
    let status = env
        .api("GET", &format!("/api/v1/agents/{id}/proxy"), None)
        .await;
    assert_eq!(status.body["in_sync"], true, "{status:?}");
    assert_eq!(status.body["hosts"][0]["status"], "applied", "{status:?}");
    assert_eq!(served(()).await.unwrap().1, "upstream edge");
    cancel.cancel();
    running.await.unwrap().unwrap();
}
