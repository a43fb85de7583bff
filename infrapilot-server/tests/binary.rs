//! The shipped binary over a real socket: default configuration (SQLite in a fresh data
//! directory), the setup code in the log, setup → sign-in → an enrollment token, the API
//! docs, a clean exit on SIGTERM, the one-line installer, and two replicas (two processes)
//! on one PostgreSQL database.

// Test and benchmark code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use infrapilot_agent_lib::testing::free_port;
use serde_json::{Value, json};

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn start() -> (Server, String) {
    start_with(free_port())
}

fn start_with(agent_port: u16) -> (Server, String) {
    let (server, code) = spawn_server(agent_port, &[], &[]);
    (server, code.expect("the first start logs a setup code"))
}

/// Starts the binary with a fresh data directory (SQLite unless `env` names a database) and
/// waits until both endpoints listen and every message of `ready` was logged; returns it and
/// the setup code, if it logged one.
fn spawn_server(
    agent_port: u16,
    env: &[(&str, String)],
    ready: &[&str],
) -> (Server, Option<String>) {
    let port = free_port();
    let dir =
        std::env::temp_dir().join(format!("infrapilot-bin-{}", uuid::Uuid::new_v4().simple()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_infrapilot-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INFRAPILOT_BIND", format!("127.0.0.1:{port}"))
        .env("INFRAPILOT_DATA_DIR", &dir)
        .env("INFRAPILOT_LOG_FORMAT", "json")
        .env("INFRAPILOT_AGENT_BIND", format!("127.0.0.1:{agent_port}"))
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut code = None;
    // The setup code is logged before the endpoints listen; the agent endpoint listens last.
    let mut waiting: Vec<&str> = ready.to_vec();
    waiting.push("agent endpoint listening");
    while Instant::now() < deadline && !waiting.is_empty() {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(c) = v["fields"]["setup_code"].as_str() {
            code = Some(c.to_owned());
        }
        if let Some(message) = v["fields"]["message"].as_str() {
            waiting.retain(|w| !message.contains(w));
        }
    }
    assert!(waiting.is_empty(), "the server never logged {waiting:?}");
    (server, code)
}

#[test]
fn the_binary_serves_the_api_and_stops_cleanly() {
    let (mut server, code) = start();
    let port = server.port;
    let (status, body) = http(port, "GET", "/healthz", None, None);
    assert_eq!(status, 200, "{body}");
    let (status, _) = http(
        port,
        "POST",
        "/api/v1/setup",
        None,
        Some(json!({
            "setup_code": code, "email": "admin@example.com", "name": "Admin",
            "password": "a long passphrase here", "organization_name": "Acme",
        })),
    );
    assert_eq!(status, 201);
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({
            "email": "admin@example.com", "password": "a long passphrase here",
        })),
    );
    assert_eq!(status, 200, "{body}");
    let login: Value = serde_json::from_str(&body).unwrap();
    let token = login["session"]["access_token"].as_str().unwrap();
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/enrollment-tokens",
        Some(token),
        Some(json!({"name": "hosts"})),
    );
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert!(
        created["install_command"]
            .as_str()
            .unwrap()
            .contains(&format!("http://127.0.0.1:{port}/install.sh"))
    );
    let (status, body) = http(port, "GET", "/api/openapi.json", None, None);
    assert_eq!(status, 200);
    assert!(
        body.contains("\"openapi\":\"3.1"),
        "{}",
        &body[..80.min(body.len())]
    );
    let (status, body) = http(port, "GET", "/api/docs/", None, None);
    assert_eq!(status, 200);
    assert!(
        body.contains("swagger"),
        "the vendored Swagger UI is served"
    );

    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn setup_and_login(port: u16, code: &str) -> String {
    let (status, _) = http(
        port,
        "POST",
        "/api/v1/setup",
        None,
        Some(json!({
            "setup_code": code, "email": "admin@example.com", "name": "Admin",
            "password": "a long passphrase here", "organization_name": "Acme",
        })),
    );
    assert_eq!(status, 201);
    let (_, body) = http(
        port,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({
            "email": "admin@example.com", "password": "a long passphrase here",
        })),
    );
    let login: Value = serde_json::from_str(&body).unwrap();
    login["session"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates an enrollment token through the API; returns the answer (token, install command).
fn create_enrollment_token(port: u16, token: &str, name: &str) -> Value {
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/enrollment-tokens",
        Some(token),
        Some(json!({ "name": name })),
    );
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The one-line installer, for real: the script from `/install.sh` downloads the agent binary
/// from the server, checks its SHA-256, enrolls; the installed agent then comes online.
#[test]
fn the_installer_installs_enrolls_and_the_agent_comes_online() {
    let server_binary = std::path::Path::new(env!("CARGO_BIN_EXE_infrapilot-server"));
    let agentd = server_binary.with_file_name("infrapilot-agentd");
    assert!(
        agentd.exists(),
        "{} is missing: build it with `cargo build -p infrapilot-agentd` (cargo xtask test does)",
        agentd.display()
    );
    let (server, code) = start_with(free_port());
    let port = server.port;
    let token = setup_and_login(port, &code);
    let created = create_enrollment_token(port, &token, "hosts");
    let enroll_token = created["token"].as_str().unwrap();

    let (status, script) = http(port, "GET", "/install.sh", None, None);
    assert_eq!(status, 200, "{script}");
    let dir = std::env::temp_dir().join(format!(
        "infrapilot-install-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let script_path = dir.join("install.sh");
    std::fs::write(&script_path, &script).unwrap();
    let state_dir = dir.join("state");
    let output = Command::new("sh")
        .arg(&script_path)
        .env("INFRAPILOT_ENROLL_TOKEN", enroll_token)
        .env("INFRAPILOT_PREFIX", dir.join("prefix"))
        .env("INFRAPILOT_STATE_DIR", &state_dir)
        .env("INFRAPILOT_LABELS", "env=test,team=ops")
        .env("INFRAPILOT_NO_START", "1")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the installer failed:\n{log}");
    assert!(log.contains("enrolled"), "{log}");
    let installed = dir.join("prefix/bin/infrapilot-agentd");
    assert!(installed.exists());

    let mut agent = Command::new(&installed)
        .args(["run", "--state-dir"])
        .arg(&state_dir)
        .stdout(std::fs::File::create(dir.join("agent.log")).unwrap())
        .stderr(std::fs::File::create(dir.join("agent.err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut listed = Value::Null;
    while Instant::now() < deadline {
        let (_, body) = http(port, "GET", "/api/v1/agents", Some(&token), None);
        listed = serde_json::from_str(&body).unwrap();
        if listed["items"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["status"] == "online" && x["labels"]["team"] == "ops")
        }) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // SIGTERM: the agent says goodbye, drains and exits 0; the server sees it go offline.
    let pid = rustix::process::Pid::from_child(&agent);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = agent.kill();
            let _ = agent.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "the agent did not exit cleanly on SIGTERM within 20 s: {status:?}\n{}",
        std::fs::read_to_string(dir.join("agent.err")).unwrap_or_default()
    );
    let mut offline = false;
    for _ in 0..50 {
        let (_, body) = http(port, "GET", "/api/v1/agents", Some(&token), None);
        let now: Value = serde_json::from_str(&body).unwrap();
        offline = now["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["labels"]["team"] == "ops")
            .all(|x| x["status"] != "online");
        if offline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(offline, "the server still shows the stopped agent online");
    let online = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["status"] == "online" && x["labels"]["team"] == "ops")
        .cloned();
    let online = online.unwrap_or_else(|| {
        panic!(
            "the installed agent never came online: {listed}\nagent log:\n{}{}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("agent.err")).unwrap_or_default()
        )
    });
    assert_eq!(online["labels"]["env"], "test", "{online}");
    assert!(online["certificate_expires_at"].is_string(), "{online}");
}

/// Two server processes on one PostgreSQL database, as replicas run: an agent connected to
/// replica A answers a ping issued through replica B's API (relayed over LISTEN/NOTIFY), and
/// disabling it through B closes its stream on A at its next heartbeat.
#[test]
fn two_replicas_one_database_commands_and_revocation_cross_over() {
    use std::collections::BTreeMap;

    use base64::Engine as _;
    use infrapilot_agent_lib::{
        Agent, AgentConfig, AgentEndpoint, BackoffConfig, CancellationToken, EnrollmentToken,
        StateDir, StopReason, enroll,
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(infrapilot_server::testing::postgres_config());
    let secret: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| *u.as_bytes())
        .collect();
    let shared = [
        ("DATABASE_URL", database.url.clone()),
        (
            "DATABASE_MIGRATION_URL",
            database.migration_url.clone().unwrap(),
        ),
        (
            "INFRAPILOT_SECRET_KEY",
            base64::engine::general_purpose::STANDARD.encode(secret),
        ),
        ("INFRAPILOT_HEARTBEAT_SECS", "1".to_owned()),
        // No built-in agent: the only agent is the one this test runs.
        (
            "INFRAPILOT_DOCKER_SOCKET",
            "/nonexistent/docker.sock".to_owned(),
        ),
    ];
    let agent_port_a = free_port();
    // Each replica listens for relayed commands on its own channel before the test relays one.
    let relaying = ["listening for relayed agent commands"];
    let (a, code) = spawn_server(agent_port_a, &shared, &relaying);
    let token = setup_and_login(a.port, &code.expect("the first replica logs a setup code"));
    let (b, _) = spawn_server(free_port(), &shared, &relaying);

    let created = create_enrollment_token(b.port, &token, "replicas");
    let enroll_token = EnrollmentToken::parse(created["token"].as_str().unwrap()).unwrap();
    let dir = StateDir::new(std::env::temp_dir().join(format!(
        "infrapilot-replica-agent-{}",
        uuid::Uuid::new_v4().simple()
    )));
    let endpoint = AgentEndpoint::parse(&format!("https://127.0.0.1:{agent_port_a}")).unwrap();
    let id = runtime
        .block_on(enroll(&endpoint, &enroll_token, &BTreeMap::new(), &dir))
        .expect("enrolls with replica A")
        .agent_id;
    let mut config = AgentConfig::new(dir.path());
    config.docker_socket = None;
    config.backoff = BackoffConfig {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(500),
    };
    let cancel = CancellationToken::new();
    let running = runtime.spawn({
        let cancel = cancel.clone();
        async move { Agent::new(config).run(cancel).await }
    });

    // B sees it online: the database is shared, the stream is on A.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut agent = Value::Null;
    while Instant::now() < deadline && agent["status"] != "online" {
        std::thread::sleep(Duration::from_millis(100));
        let (_, body) = http(
            b.port,
            "GET",
            &format!("/api/v1/agents/{id}"),
            Some(&token),
            None,
        );
        agent = serde_json::from_str(&body).unwrap();
    }
    assert_eq!(agent["status"], "online", "{agent}");

    // A command issued through B reaches the agent on A.
    let (status, body) = http(
        b.port,
        "POST",
        &format!("/api/v1/agents/{id}/ping"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "ping through replica B: {body}");
    let ping: Value = serde_json::from_str(&body).unwrap();
    assert!(ping["round_trip_ms"].as_f64().unwrap() > 0.0, "{ping}");
    let (status, body) = http(
        b.port,
        "GET",
        &format!("/api/v1/agents/{id}/info"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "info through replica B: {body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["protocol_version"], 1, "{info}");

    // Disabled through B: A closes the stream at the agent's next heartbeat (every second)
    // with a permanent goodbye, and the agent stops reconnecting.
    let (status, body) = http(
        b.port,
        "PATCH",
        &format!("/api/v1/agents/{id}"),
        Some(&token),
        Some(json!({"disabled": true})),
    );
    assert_eq!(status, 200, "{body}");
    let stopped = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(15), running).await })
        .expect("replica A did not close the disabled agent's stream")
        .unwrap();
    match stopped {
        Ok(StopReason::Goodbye { reason }) => {
            assert!(reason.contains("disabled or deleted"), "{reason}")
        }
        other => panic!("expected a permanent goodbye from replica A, got {other:?}"),
    }
    for port in [a.port, b.port] {
        let (status, body) = http(
            port,
            "POST",
            &format!("/api/v1/agents/{id}/ping"),
            Some(&token),
            None,
        );
        assert_eq!(status, 503, "{body}");
    }
    cancel.cancel();
}

/// The pids of nginx's master (from its pid file) and of its workers (its children).
fn nginx_pids(pid_file: &std::path::Path) -> (u32, Vec<u32>) {
    let master: u32 = std::fs::read_to_string(pid_file)
        .expect("nginx's pid file")
        .trim()
        .parse()
        .unwrap();
    let mut workers: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                })
                == Some(master)
        })
        .collect();
    workers.sort_unstable();
    (master, workers)
}

/// An HTTP upstream on loopback, answering every request with `body`, for the rest of the
/// test process; its port.
fn upstream(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut socket in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf);
            let _ = write!(
                socket,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// Stops the host's nginx whose main config is `.0` when dropped.
struct StopNginx(std::path::PathBuf);

impl Drop for StopNginx {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/nginx")
            .args(["-q", "-c"])
            .arg(&self.0)
            .args(["-s", "stop"])
            .output();
    }
}

/// `GET /` through nginx with `Host: host`; the status code and the body.
fn through_nginx(port: u16, host: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("nginx listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The control plane goes away: the proxy keeps serving from the agent's own state. It comes
/// back: the agent reconnects and reconciles without reloading nginx, since nothing changed.
#[test]
fn proxies_keep_serving_while_the_server_is_down_and_a_restart_does_not_reload_nginx() {
    assert!(
        std::path::Path::new("/usr/sbin/nginx").exists()
            && std::path::Path::new("/var/run/docker.sock").exists(),
        "this test needs nginx (cargo xtask provision) and a Docker engine for the built-in agent"
    );
    // An upstream that outlives every server process of the test.
    let upstream_port = upstream("upstream");
    let data = std::env::temp_dir().join(format!(
        "infrapilot-outage-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let http_port = free_port();
    let master: [u8; 32] = rand::random();
    let env = [
        ("INFRAPILOT_DATA_DIR", data.to_string_lossy().into_owned()),
        ("INFRAPILOT_NGINX_HTTP_PORT", http_port.to_string()),
        ("INFRAPILOT_NGINX_HTTPS_PORT", free_port().to_string()),
        (
            "INFRAPILOT_SECRET_KEY",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, master),
        ),
    ];
    let nginx_conf = data.join("nginx/conf/nginx.conf");
    let _stop_nginx = StopNginx(nginx_conf);

    let agent_port = free_port();
    let (server, code) = spawn_server(agent_port, &env, &["manages the host's nginx"]);
    let port = server.port;
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/setup",
        None,
        Some(json!({
            "setup_code": code.expect("a setup code"), "email": "admin@example.com",
            "name": "Admin", "password": "a long passphrase here", "organization_name": "Acme",
        })),
    );
    assert_eq!(status, 201, "{body}");
    let login = |port| {
        let (_, body) = http(
            port,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "admin@example.com", "password": "a long passphrase here"})),
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        v["session"]["access_token"].as_str().unwrap().to_owned()
    };
    let token = login(port);
    let online_agent = |port: u16, token: &str| {
        for _ in 0..150 {
            let (_, body) = http(port, "GET", "/api/v1/agents", Some(token), None);
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if let Some(a) = v["items"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["status"] == "online"))
            {
                return a["id"].as_str().unwrap().to_owned();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the built-in agent did not come online");
    };
    let agent = online_agent(port, &token);
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/proxy-hosts",
        Some(&token),
        Some(json!({
            "agent_id": agent,
            "host": {"domains": ["app.test"], "upstream": format!("http://127.0.0.1:{upstream_port}")},
        })),
    );
    assert_eq!(status, 201, "{body}");
    let host: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(host["status"], "applied", "{host}");
    assert_eq!(
        through_nginx(http_port, "app.test"),
        (200, "upstream".to_owned())
    );
    let pid_file = data.join("nginx/nginx.pid");
    let before = nginx_pids(&pid_file);

    // The control plane dies (no graceful shutdown).
    drop(server);
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        assert_eq!(
            through_nginx(http_port, "app.test"),
            (200, "upstream".to_owned()),
            "the proxy serves with the control plane down"
        );
    }

    // It comes back: the agent reports the revision it applied, so nothing is pushed, and
    // nginx is neither restarted nor reloaded (same master, same workers).
    let (server, _) = spawn_server(agent_port, &env, &["manages the host's nginx"]);
    let token = login(server.port);
    assert_eq!(online_agent(server.port, &token), agent);
    let (_, body) = http(
        server.port,
        "GET",
        &format!("/api/v1/agents/{agent}/proxy"),
        Some(&token),
        None,
    );
    let sync: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sync["in_sync"], true, "{sync}");
    assert_eq!(sync["hosts"][0]["status"], "applied", "{sync}");
    assert_eq!(nginx_pids(&pid_file), before, "nginx was not reloaded");
    assert_eq!(
        through_nginx(http_port, "app.test"),
        (200, "upstream".to_owned())
    );
}

/// The issuer and serial of the certificate nginx serves for `name` on `port` (`openssl
/// s_client`); empty when nothing answers.
fn served_certificate(port: u16, name: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {name} </dev/null 2>/dev/null \
             | openssl x509 -noout -issuer -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An agent process (`infrapilot-agentd run`), killed when dropped.
struct AgentProcess(Child);

impl AgentProcess {
    fn start(
        agentd: &std::path::Path,
        state_dir: &std::path::Path,
        env: &[(&str, String)],
    ) -> Self {
        let child = Command::new(agentd)
            .args(["run", "--state-dir"])
            .arg(state_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(state_dir.join("agent.err")).unwrap())
            .spawn()
            .unwrap();
        Self(child)
    }

    /// SIGTERM, and waits for the exit.
    fn stop(mut self) {
        let pid = rustix::process::Pid::from_child(&self.0);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        for _ in 0..200 {
            if self.0.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the agent did not stop within 20 s");
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The control plane's process is killed; a Let's Encrypt certificate falls due while it is
/// dead (the agent's stored certificate is replaced by one ten days from expiry, as time
/// would have done, and the agent restarted so it reads it); the agent, alone, renews it from
/// Pebble and nginx serves the new one. The server comes back and learns of the renewal.
#[test]
fn a_renewal_that_falls_due_while_the_server_process_is_dead_still_happens() {
    use infrapilot_agent_lib::nginx::acme::{AcmeManager, Http01Webroot};
    use infrapilot_agent_lib::testing::pebble::Pebble;

    let server_binary = std::path::Path::new(env!("CARGO_BIN_EXE_infrapilot-server"));
    let agentd = server_binary.with_file_name("infrapilot-agentd");
    assert!(
        agentd.exists() && std::path::Path::new("/usr/sbin/nginx").exists(),
        "this test needs {} (cargo build -p infrapilot-agentd; cargo xtask test does) and nginx",
        agentd.display()
    );
    const SHOP: &str = "shop.infrapilot.test";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (http_port, https_port, agent_port) = (free_port(), free_port(), free_port());
    let pebble = runtime.block_on(Pebble::start(http_port)).unwrap();
    let upstream_port = upstream("shop");
    let dir = tempfile::tempdir().unwrap();
    let master: [u8; 32] = rand::random();
    let env = [
        (
            "INFRAPILOT_DATA_DIR",
            dir.path().join("server").to_string_lossy().into_owned(),
        ),
        (
            "INFRAPILOT_SECRET_KEY",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, master),
        ),
        // No built-in agent: the agent is a process of its own that outlives the server.
        (
            "INFRAPILOT_DOCKER_SOCKET",
            "/nonexistent/docker.sock".to_owned(),
        ),
        (
            "INFRAPILOT_AGENT_URL",
            format!("https://127.0.0.1:{agent_port}"),
        ),
        ("INFRAPILOT_ACME_DIRECTORY_URL", pebble.directory_url()),
        ("INFRAPILOT_ACME_EMAIL", "ops@infrapilot.test".to_owned()),
    ];
    let (server, code) = spawn_server(agent_port, &env, &[]);
    let token = setup_and_login(server.port, &code.expect("a setup code"));
    let enroll = create_enrollment_token(server.port, &token, "edge");
    let state_dir = dir.path().join("agent");
    let enrolled = Command::new(&agentd)
        .args([
            "enroll",
            "--endpoint",
            &format!("https://127.0.0.1:{agent_port}"),
        ])
        .args(["--token", enroll["token"].as_str().unwrap(), "--state-dir"])
        .arg(&state_dir)
        .output()
        .unwrap();
    assert!(enrolled.status.success(), "{enrolled:?}");
    let _stop_nginx = StopNginx(state_dir.join("nginx/conf/nginx.conf"));
    let agent_env = [
        ("INFRAPILOT_NGINX_BINARY", "/usr/sbin/nginx".to_owned()),
        ("INFRAPILOT_NGINX_HTTP_PORT", http_port.to_string()),
        ("INFRAPILOT_NGINX_HTTPS_PORT", https_port.to_string()),
        (
            "INFRAPILOT_ACME_CA_ROOT",
            pebble.listener_ca_file().to_string_lossy().into_owned(),
        ),
        (
            "INFRAPILOT_DOCKER_SOCKET",
            "/nonexistent/docker.sock".to_owned(),
        ),
        ("INFRAPILOT_LOGS", "off".to_owned()),
        ("INFRAPILOT_HEARTBEAT_SECS", "1".to_owned()),
    ];
    let agent = AgentProcess::start(&agentd, &state_dir, &agent_env);
    let agent_id = {
        let mut found = None;
        for _ in 0..150 {
            let (_, body) = http(server.port, "GET", "/api/v1/agents", Some(&token), None);
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if let Some(a) = v["items"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["status"] == "online"))
            {
                found = Some(a["id"].as_str().unwrap().to_owned());
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        found.unwrap_or_else(|| {
            panic!(
                "the agent never came online:\n{}",
                std::fs::read_to_string(state_dir.join("agent.err")).unwrap_or_default()
            )
        })
    };
    let (status, body) = http(
        server.port,
        "POST",
        "/api/v1/proxy-hosts",
        Some(&token),
        Some(json!({"agent_id": agent_id, "host": {
            "domains": [SHOP], "upstream": format!("http://127.0.0.1:{upstream_port}"),
            "ssl": {"mode": "lets_encrypt", "force_https": false, "http2": true},
        }})),
    );
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let certificate = created["host"]["ssl"]["certificate"]
        .as_str()
        .unwrap()
        .to_owned();
    let wait_for = |what: &str, check: &dyn Fn() -> bool| {
        for _ in 0..600 {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{what} within 60 s\nagent log:\n{}\npebble log:\n{}",
            std::fs::read_to_string(state_dir.join("agent.err")).unwrap_or_default(),
            pebble.log()
        );
    };
    wait_for("no certificate from Pebble served", &|| {
        served_certificate(https_port, SHOP).contains("Pebble")
    });
    let first = served_certificate(https_port, SHOP);

    // The control plane's process dies (SIGKILL, no goodbye).
    drop(server);
    // Time passes: the certificate the agent holds is now ten days from expiry. The agent is
    // restarted to read it (its loop would otherwise wake at its next hourly check).
    agent.stop();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![SHOP.to_owned()]).unwrap();
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    params.not_after = expires;
    let aging = params.self_signed(&key).unwrap();
    let store = AcmeManager::new(
        state_dir.join("acme"),
        Box::new(Http01Webroot::new(state_dir.join("nginx/acme"))),
        None,
    );
    let id: infrapilot_core::ids::CertificateId = certificate.parse().unwrap();
    runtime
        .block_on(store.store(
            id,
            vec![SHOP.to_owned()],
            &aging.pem(),
            &key.serialize_pem(),
        ))
        .unwrap();
    let agent = AgentProcess::start(&agentd, &state_dir, &agent_env);
    // The agent renews from its own state, and nginx serves the new certificate.
    wait_for(
        "no renewed certificate served with the server dead",
        &|| {
            let now = served_certificate(https_port, SHOP);
            now.contains("Pebble") && now != first
        },
    );
    let renewed = served_certificate(https_port, SHOP);
    let record = runtime.block_on(store.record(id)).unwrap();
    assert!(
        record.not_after > expires.unix_timestamp(),
        "the stored certificate is the renewed one: {record:?}"
    );
    let (code, body) = through_nginx(http_port, SHOP);
    assert_eq!(
        (code, body.as_str()),
        (200, "shop"),
        "the proxy serves throughout"
    );

    // The server comes back: the agent reconnects and the server learns of the renewal.
    let (server, _) = spawn_server(agent_port, &env, &[]);
    let (_, body) = http(
        server.port,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "admin@example.com", "password": "a long passphrase here"})),
    );
    let login: Value = serde_json::from_str(&body).unwrap();
    let token = login["session"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let proxy_status = || {
        let (_, body) = http(
            server.port,
            "GET",
            &format!("/api/v1/agents/{agent_id}/proxy"),
            Some(&token),
            None,
        );
        serde_json::from_str::<Value>(&body).unwrap_or(Value::Null)
    };
    wait_for("the server never learned of the renewal", &|| {
        let status = proxy_status();
        status["certificates"][0]["status"] == "valid"
            && status["certificates"][0]["days_until_expiry"]
                .as_i64()
                .is_some_and(|d| d > 10)
    });
    assert_eq!(served_certificate(https_port, SHOP), renewed);
    drop(agent);
}
