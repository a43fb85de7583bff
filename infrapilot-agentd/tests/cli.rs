//! The `infrapilot-agentd` binary: `status` from a state directory, and clear errors for bad
//! arguments.

// Test helpers fail the test by panicking, like the assertions in the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use infrapilot_agent_lib::{AgentRecord, StateDir};

fn agentd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infrapilot-agentd"))
        .args(args)
        .env_remove("INFRAPILOT_ENROLL_TOKEN")
        .env_remove("INFRAPILOT_STATE_DIR")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn status_prints_the_local_state() {
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path());
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["agent".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2030, 1, 1);
    params.not_after = rcgen::date_time_ymd(2030, 4, 1);
    let cert = params.self_signed(&key).unwrap();
    state.write_key_pem(&key.serialize_pem()).unwrap();
    state.write_cert_chain(&[cert.der().clone()]).unwrap();
    state.write_ca(cert.der()).unwrap();
    state
        .write_record(&AgentRecord {
            agent_id: "0b6c9a1e-4d0f-4a57-9a39-1d6f5c1b2a11".into(),
            organization_id: "3f1c2b7a-8e55-4bb0-9d0a-5f4e3c2b1a00".into(),
            endpoint: "https://cp.example.com:8443".into(),
            not_after_unix: 1_901_232_000,
            heartbeat_interval_secs: 30,
        })
        .unwrap();
    state
        .write_atomic("desired-state.json", br#"{"revision": 12}"#, 0o644)
        .unwrap();

    let out = agentd(&["status", "--state-dir", tmp.path().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for expected in [
        "0b6c9a1e-4d0f-4a57-9a39-1d6f5c1b2a11",
        "3f1c2b7a-8e55-4bb0-9d0a-5f4e3c2b1a00",
        "https://cp.example.com:8443",
        "2030-04-01T00:00:00Z",
        "applied revision:  12",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
}

#[test]
fn status_without_enrollment_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let out = agentd(&["status", "--state-dir", tmp.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not enrolled") && stderr.contains("infrapilot-agentd enroll"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_are_named() {
    let token = format!(
        "IPT1.{}.0102030405060708.{}",
        "ab".repeat(32),
        "A".repeat(43)
    );
    let cases: [(&[&str], &str); 4] = [
        (
            &["enroll", "--endpoint", "http://cp:1", "--token", &token],
            "https://",
        ),
        (
            &[
                "enroll",
                "--endpoint",
                "https://cp:1",
                "--token",
                "nonsense",
            ],
            "not an InfraPilot enrollment token",
        ),
        (
            &[
                "enroll",
                "--endpoint",
                "https://cp:1",
                "--token",
                &token,
                "--label",
                "novalue",
            ],
            "key=value",
        ),
        (&["enroll", "--endpoint", "https://cp:1"], "--token"),
    ];
    for (args, expected) in cases {
        let out = agentd(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn an_invalid_agent_toml_is_reported_with_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("agent.toml"), "heartbeat_secs = 0\n").unwrap();
    let out = agentd(&["run", "--state-dir", tmp.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("heartbeat_secs"), "{stderr}");
}
