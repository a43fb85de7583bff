//! Agent footprint benchmark (not a test): the real `infrapilot-agentd` process's idle memory
//! and CPU on a host with 50 running containers, and the latency of listing 200 containers
//! through the API.
//!
//! ```sh
//! cargo bench -p infrapilot-server --features test-support --bench agent_docker
//! ```
//!
//! Honest by construction:
//!
//! - The agent is the release `infrapilot-agentd` binary (built by this bench when missing),
//!   enrolled with a real enrollment token over the real `Enroll` RPC, then `run` as its own
//!   process against the machine's Docker engine, with its default settings (30 s heartbeats
//!   carrying host metrics and container summaries). Its memory is its resident set and its
//!   CPU its user + system time, both read from `/proc/<pid>/`.
//! - The containers are real: the busybox test image (built locally, no registry), each
//!   container running `sleep`, labeled and removed when the bench ends.
//! - "Idle" means connected, heartbeating and answering nothing else, measured over
//!   `IDLE` (three heartbeat intervals).
//! - A list is `GET /api/v1/agents/{id}/containers` as the dashboard sends it: the server, the
//!   agent's stream, the agent's Docker calls (a list, then an inspect and a one-shot stats
//!   reading for each container) and back, timed by this client.

// Benchmark code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use infrapilot_agent_lib::testing::{RunOptions, TestDocker};
use serde_json::{Value, json};

use common::{Server, USER_HZ, mib, percentile, status_kib};

/// Containers running while the agent idles.
const IDLE_CONTAINERS: usize = 50;
/// Containers the list latency is measured over.
const LIST_CONTAINERS: usize = 200;
/// How long the idle agent is watched: three 30 s heartbeat intervals.
const IDLE: Duration = Duration::from_secs(90);
/// Lists timed at each size, one after another.
const LISTS: usize = 30;
/// Containers created at once while setting up.
const CREATING: usize = 8;

#[tokio::main]
async fn main() {
    let docker = TestDocker::new("agent-docker-bench")
        .await
        .expect("a Docker engine (and Debian's busybox-static for the test image)");
    let agentd = agentd_binary();
    let server = Server::start("agent-docker").await;
    let token = server.admin_token().await;
    println!(
        "agent_docker: server on {} ({}), agent {}",
        server.http,
        server.database,
        agentd.display()
    );

    start_containers(&docker, 0, IDLE_CONTAINERS).await;
    let agent = Agent::start(&server, &token, &agentd).await;
    println!(
        "agent pid {} online as {}; {IDLE_CONTAINERS} containers running",
        agent.pid(),
        agent.id
    );
    // Let start-up allocations and the first heartbeats settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_start = agent.rss_kib();
    let cpu_before = agent.cpu_ticks();
    let start = Instant::now();
    let mut rss_peak = rss_start;
    while start.elapsed() < IDLE {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_peak = rss_peak.max(agent.rss_kib());
    }
    let idle_cpu =
        (agent.cpu_ticks() - cpu_before) as f64 / USER_HZ / start.elapsed().as_secs_f64() * 100.0;
    let rss_idle = agent.rss_kib();

    let at_idle = list_run(&server, &token, &agent.id, IDLE_CONTAINERS).await;
    start_containers(&docker, IDLE_CONTAINERS, LIST_CONTAINERS).await;
    let at_list = list_run(&server, &token, &agent.id, LIST_CONTAINERS).await;
    let rss_after = agent.rss_kib();

    println!();
    println!("== agent_docker summary ==");
    println!(
        "agentd idle with {IDLE_CONTAINERS} running containers, over {} s: RSS {} (peak {}), CPU {idle_cpu:.3}% of one core",
        IDLE.as_secs(),
        mib(rss_idle),
        mib(rss_peak),
    );
    at_idle.print();
    at_list.print();
    println!(
        "agentd RSS after listing {LIST_CONTAINERS} containers {LISTS} times: {}",
        mib(rss_after)
    );
    drop(agent);
    drop(server);
    drop(docker);
}

/// The release agent binary beside this bench's target directory, built when missing.
fn agentd_binary() -> PathBuf {
    let bench = std::env::current_exe().unwrap();
    // target/release/deps/agent_docker-… → target/release/infrapilot-agentd
    let binary = bench
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("infrapilot-agentd");
    if !binary.exists() {
        println!(
            "building {} (cargo build --release -p infrapilot-agentd)",
            binary.display()
        );
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "-q", "-p", "infrapilot-agentd"])
            .current_dir(workspace)
            .status()
            .unwrap();
        assert!(status.success(), "building infrapilot-agentd failed");
    }
    binary
}

/// Starts containers `from..to` (each running `sleep`), `CREATING` at a time.
async fn start_containers(docker: &TestDocker, from: usize, to: usize) {
    futures_util::stream::iter(from..to)
        .map(|i| async move {
            docker
                .run(
                    &format!("idle-{i}"),
                    &["sleep", "86400"],
                    RunOptions::default(),
                )
                .await
                .unwrap_or_else(|e| panic!("container {i}: {e}"))
        })
        .buffer_unordered(CREATING)
        .collect::<Vec<_>>()
        .await;
}

/// The agent process, enrolled and running.
struct Agent {
    child: Child,
    id: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    async fn start(server: &Server, token: &str, binary: &Path) -> Agent {
        let created = server
            .post(
                "/api/v1/enrollment-tokens",
                Some(token),
                json!({"name": "agent-docker-bench", "labels": {"bench": "agent-docker"}}),
            )
            .await;
        let state = std::env::temp_dir().join(format!(
            "infrapilot-agent-docker-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let endpoint = server.agent_endpoint.to_string();
        let enrolled = Command::new(binary)
            .args(["enroll", "--endpoint", &endpoint, "--state-dir"])
            .arg(&state)
            .env(
                "INFRAPILOT_ENROLL_TOKEN",
                created["token"].as_str().unwrap(),
            )
            .output()
            .unwrap();
        assert!(
            enrolled.status.success(),
            "enroll failed: {}",
            String::from_utf8_lossy(&enrolled.stderr)
        );
        // Owned by the guard from here on, so a failure below still stops the process.
        let mut agent = Agent {
            child: Command::new(binary)
                .args(["run", "--state-dir"])
                .arg(&state)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(state.join("agent.log")).unwrap())
                .spawn()
                .unwrap(),
            id: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let agents = server.get("/api/v1/agents", token).await;
            let online = agents["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["status"] == "online");
            if let Some(a) = online {
                agent.id = a["id"].as_str().unwrap().to_owned();
                return agent;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not come online; see {}",
                state.join("agent.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status_kib(&status, "VmRSS:")
    }

    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        common::cpu_ticks(&stat)
    }
}

/// The answers of one series of lists.
struct ListRun {
    containers: usize,
    /// Round trips, sorted.
    times: Vec<Duration>,
    /// Containers the last answer listed.
    listed: usize,
}

impl ListRun {
    fn print(&self) {
        let ms = |p: f64| percentile(&self.times, p).as_secs_f64() * 1000.0;
        println!(
            "list via HTTP API with {} containers ({} listed): {} lists, p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            self.containers,
            self.listed,
            self.times.len(),
            ms(0.50),
            ms(0.90),
            ms(0.99),
            ms(1.0),
        );
    }
}

/// Lists the agent's containers `LISTS` times, one after another.
async fn list_run(server: &Server, token: &str, agent: &str, containers: usize) -> ListRun {
    let path = format!("/api/v1/agents/{agent}/containers");
    let mut times = Vec::with_capacity(LISTS);
    let mut listed = 0;
    for _ in 0..LISTS {
        let start = Instant::now();
        let answer: Value = server.get(&path, token).await;
        times.push(start.elapsed());
        listed = answer.as_array().expect("a list of containers").len();
    }
    times.sort_unstable();
    ListRun {
        containers,
        times,
        listed,
    }
}
