//! The shipped binary over a real socket: default configuration (SQLite in a fresh data
//! directory), the setup code in the log, setup → sign-in → an enrollment token, the API
//! docs, and a clean exit on SIGTERM.

// Test and benchmark code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> (Server, String) {
    start_with(free_port())
}

fn start_with(agent_port: u16) -> (Server, String) {
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
    let mut listening = false;
    while Instant::now() < deadline && !(code.is_some() && listening) {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(c) = v["fields"]["setup_code"].as_str() {
            code = Some(c.to_owned());
        }
        listening |= v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("listening"));
    }
    assert!(listening, "the server did not report listening");
    (server, code.expect("the first start logs a setup code"))
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
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/enrollment-tokens",
        Some(&token),
        Some(json!({"name": "hosts"})),
    );
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
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
    let _ = agent.kill();
    let _ = agent.wait();
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
