//! The client against the real server binary (built by `cargo build -p infrapilot-server`;
//! `cargo xtask test` builds it): setup, sign-in, members, enrollment tokens, problem
//! documents as typed errors, and offline audit verification.

// Test code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use infrapilot_sdk::SdkError;
use infrapilot_sdk::client::{Client, CreateEnrollmentToken, ListQuery, SetupRequest};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("INFRAPILOT_SERVER_BIN") {
        return path.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug/infrapilot-server")
}

/// Starts the server and returns it with its base URL and setup code.
fn start() -> (Server, String, String) {
    let binary = binary();
    assert!(
        binary.exists(),
        "{} is missing; run `cargo build -p infrapilot-server` first",
        binary.display()
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The agent endpoint needs a port of its own: tests start servers side by side.
    let agent_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("infrapilot-sdk-{}-{}", std::process::id(), port));
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INFRAPILOT_BIND", format!("127.0.0.1:{port}"))
        .env("INFRAPILOT_AGENT_BIND", format!("127.0.0.1:{agent_port}"))
        .env("INFRAPILOT_DATA_DIR", &dir)
        .env("INFRAPILOT_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut code, mut listening) = (None, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !(code.is_some() && listening) {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(c) = v["fields"]["setup_code"].as_str() {
            code = Some(c.to_owned());
        }
        listening |= v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("listening"));
    }
    assert!(listening, "the server did not start");
    (server, format!("http://127.0.0.1:{port}"), code.unwrap())
}

#[tokio::test]
async fn the_client_drives_the_real_server() {
    let (_server, base, code) = start();
    let client = Client::new(&base).unwrap();
    assert!(client.setup_status().await.unwrap().setup_required);
    client
        .setup(&SetupRequest {
            setup_code: code,
            email: "admin@example.com".into(),
            name: "Admin".into(),
            password: "a long passphrase here".into(),
            organization_name: "Acme".into(),
            organization_slug: None,
        })
        .await
        .unwrap();

    let err = client
        .login("admin@example.com", "wrong password!!", None)
        .await
        .unwrap_err();
    let SdkError::Api(problem) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(problem.status, 401);
    assert!(!problem.detail.is_empty());
    assert_eq!(err.to_json()["kind"], "api");

    let login = client
        .login("admin@example.com", "a long passphrase here", None)
        .await
        .unwrap();
    assert!(!login.mfa_required);
    let members = client.list_members(&ListQuery::default()).await.unwrap();
    assert_eq!(members.items[0].email, "admin@example.com");

    let request = CreateEnrollmentToken {
        name: "edge".into(),
        ..Default::default()
    };
    let created = client.create_enrollment_token(&request).await.unwrap();
    let info = infrapilot_sdk::inspect_enrollment_token(&created.token).unwrap();
    assert_eq!(info.public_id, created.enrollment_token.id);
    assert!(
        !format!("{created:?}").contains(&created.token),
        "Debug must not show the secret"
    );

    let bad = CreateEnrollmentToken {
        name: "x".into(),
        expires_in_secs: Some(1),
        ..Default::default()
    };
    let err = client.create_enrollment_token(&bad).await.unwrap_err();
    let SdkError::Api(problem) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(problem.status, 422);
    assert_eq!(problem.errors[0].field, "expires_in_secs");

    let report = client.verify_audit_offline(None).await.unwrap();
    assert!(report.ok && report.entries > 0 && report.export_key_matches == Some(true));
    assert!(client.verify_audit().await.unwrap()["broken"].is_null());

    let err = Client::new("http://127.0.0.1:9")
        .unwrap()
        .setup_status()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::Transport { .. }), "{err:?}");
    assert!(matches!(
        Client::new("ftp://x"),
        Err(SdkError::InvalidInput { .. })
    ));
}
