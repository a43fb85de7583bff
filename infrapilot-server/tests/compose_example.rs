//! The docker-compose example (`examples/compose`): the compose file is valid for Docker
//! Compose, and the agent container's entrypoint enrolls once and then runs (checked with a
//! stand-in `infrapilot-agentd` that records its arguments).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/compose")
}

#[test]
fn the_compose_file_is_valid() {
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "--services"])
        .current_dir(example())
        .output()
        .expect("docker-compose (cargo xtask provision installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let services = String::from_utf8_lossy(&out.stdout);
    let mut services: Vec<&str> = services.lines().collect();
    services.sort_unstable();
    assert_eq!(services, ["agent", "server"]);
    let dockerfile = std::fs::read_to_string(example().join("Dockerfile")).unwrap();
    for target in ["AS build", "AS server", "AS agent"] {
        assert!(
            dockerfile.contains(target),
            "the Dockerfile has no stage {target}"
        );
    }
}

/// Runs the entrypoint with a stand-in agent binary; returns its exit code, stderr and the
/// recorded calls.
fn entrypoint(state: &Path, token: Option<&str>) -> (i32, String, String) {
    let bin = tempfile::tempdir().unwrap();
    let calls = bin.path().join("calls");
    let stub = bin.path().join("infrapilot-agentd");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\necho \"$@\" >> {calls}\n[ \"$1\" = enroll ] && echo '{{}}' > \"$INFRAPILOT_STATE_DIR/agent.json\"\nexit 0\n",
            calls = calls.display()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&stub).status().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg(example().join("agent-entrypoint.sh"))
        .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
        .env("INFRAPILOT_STATE_DIR", state)
        .env("INFRAPILOT_ENDPOINT", "https://server:8443")
        .env_remove("INFRAPILOT_ENROLL_TOKEN");
    if let Some(token) = token {
        cmd.env("INFRAPILOT_ENROLL_TOKEN", token);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        std::fs::read_to_string(&calls).unwrap_or_default(),
    )
}

#[test]
fn the_agent_entrypoint_enrolls_once_then_runs() {
    let state = tempfile::tempdir().unwrap();
    let (code, stderr, calls) = entrypoint(state.path(), None);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("INFRAPILOT_ENROLL_TOKEN"), "{stderr}");
    assert!(calls.is_empty());
    let (code, _, calls) = entrypoint(state.path(), Some("IPT1.x"));
    assert_eq!(code, 0);
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[0].starts_with("enroll --endpoint https://server:8443 --state-dir "),
        "{calls:?}"
    );
    assert!(calls[1].starts_with("run --state-dir "), "{calls:?}");
    // Enrolled: the next start only runs.
    let (code, _, calls) = entrypoint(state.path(), Some("IPT1.x"));
    assert_eq!(code, 0);
    assert!(calls.starts_with("run --state-dir "), "{calls:?}");
}
