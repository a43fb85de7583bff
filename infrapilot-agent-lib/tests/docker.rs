//! The host probe against the real Docker engine of the machine.

// Test helpers fail the test by panicking, like the assertions in the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use infrapilot_agent_lib::HostProbe;
use infrapilot_agent_lib::probe::DEFAULT_DOCKER_SOCKET;

#[tokio::test]
async fn the_local_engine_is_found_and_its_containers_listed() {
    assert!(
        Path::new(DEFAULT_DOCKER_SOCKET).exists(),
        "this test needs a Docker engine at {DEFAULT_DOCKER_SOCKET}; start one (CI provisions it)"
    );
    let probe = HostProbe::new("/", Some(PathBuf::from(DEFAULT_DOCKER_SOCKET)));
    let status = probe.docker_status().await;
    assert!(status.available, "{status:?}");
    assert!(status.version.is_some_and(|v| !v.is_empty()));
    // Every listed container has an id and a state; the list may be empty.
    for c in probe.containers().await {
        assert!(!c.id.is_empty() && !c.state.is_empty(), "{c:?}");
    }
}
