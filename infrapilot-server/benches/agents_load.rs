//! Agent load benchmark (not a test): how many simulated agents one server process holds with
//! 30 s heartbeats and how much memory it needs for them, and the round trip of a command a
//! user issues through the HTTP API at 100 commands/s spread over 1,000 connected agents.
//!
//! ```sh
//! cargo bench -p infrapilot-server --features test-support --bench agents_load
//! INFRAPILOT_BENCH_AGENTS=2000 cargo bench …   # a quick run (default 10000)
//! ```
//!
//! Honest by construction:
//!
//! - The server is the real `infrapilot-server` binary in its own process, with its default
//!   settings (30 s heartbeats, info logs to a file); its memory is its own resident set,
//!   read from `/proc/<pid>/status`. The database is PostgreSQL when
//!   `INFRAPILOT_TEST_PG_ADMIN_URL` is set (`cargo xtask pg`), else the default SQLite file.
//! - Every simulated agent enrolls through the real `Enroll` RPC (its own key and CSR), then
//!   runs the agent library's own session (`grpc_session`: Hello, Welcome, heartbeats with
//!   host metrics at the interval the server asks, commands answered by the built-in
//!   handler) over its own TLS 1.3 mutual-TLS connection to the real agent endpoint. The
//!   agents live in this process, on the same two cores as the server.
//! - "Held" is the server's own count of open agent streams (`/metrics`,
//!   `infrapilot_agents_connected`), and "online" is the API's status after the agents have
//!   sat through more than two heartbeat intervals.
//! - Commands are `POST /api/v1/agents/{id}/ping`, the path a user hits: authentication, the
//!   agent lookup, the hub, the agent's stream and back. They are sent open-loop (one every
//!   10 ms whatever the answers do), and timed by this client from request to response.

// Benchmark code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use infrapilot_agent_lib::tls::{PinnedCaVerifier, channel, enroll_client_config};
use infrapilot_agent_lib::{
    AgentEndpoint, AgentInfo, BuiltinCommands, CancellationToken, CommandHandler, EnrollmentToken,
    HostProbe, SessionContext, grpc_session,
};
use infrapilot_proto::PROTOCOL_VERSION;
use infrapilot_proto::v1::EnrollRequest;
use infrapilot_proto::v1::agent_service_client::AgentServiceClient;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use common::{Server, USER_HZ, mib, percentile, status_kib};

const DEFAULT_AGENTS: usize = 10_000;
/// How many agents the commands are spread over.
const COMMAND_AGENTS: usize = 1_000;
const COMMANDS_PER_SEC: u64 = 100;
const COMMAND_RUN: Duration = Duration::from_secs(30);
/// How long every agent stays connected before the count: past two heartbeat intervals, so
/// each agent has heartbeated at least twice and "online" means what it says.
const HOLD: Duration = Duration::from_secs(75);
/// TLS handshakes in flight at once while the agents connect (a fleet reconnecting after a
/// server restart is spread by its backoff jitter; this spreads the bench's connects).
const CONNECTING: usize = 64;
const ENROLLING: usize = 16;

#[tokio::main]
async fn main() {
    let agents: usize = std::env::var("INFRAPILOT_BENCH_AGENTS")
        .ok()
        .map(|v| v.parse().expect("INFRAPILOT_BENCH_AGENTS: a number"))
        .unwrap_or(DEFAULT_AGENTS);
    let fd_limit = raise_fd_limit(agents as u64 + 4_096);
    let server = Server::start("agents-load").await;
    println!(
        "agents_load: {agents} agents, server pid {} on {} ({}), its open-files limit {}, ours {fd_limit}",
        server.pid(),
        server.database,
        server.http,
        server.fd_limit()
    );
    let rss_idle = server.rss_kib();
    let token = server.admin_token().await;

    // Enrollment, through the real RPC.
    let start = Instant::now();
    let creds = enroll_all(&server, &token, agents).await;
    let enroll_secs = start.elapsed().as_secs_f64();
    println!(
        "enrolled {} agents in {enroll_secs:.1} s ({:.0}/s); server RSS {}",
        creds.len(),
        creds.len() as f64 / enroll_secs,
        mib(server.rss_kib())
    );

    let fleet = Fleet::new(&server);
    let rss_sampler = RssSampler::start(server.pid());
    let first = COMMAND_AGENTS.min(agents);
    let start = Instant::now();
    fleet.connect(&creds[..first]);
    let held = wait_held(&server, first, &fleet).await;
    println!(
        "connected {held}/{first} in {:.1} s; server RSS {}",
        start.elapsed().as_secs_f64(),
        mib(server.rss_kib())
    );
    // Let the connect burst's heartbeats settle before timing commands.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids: Vec<String> = creds[..first].iter().map(|c| c.agent_id.clone()).collect();
    let at_first = command_run(&server, &token, &ids).await;
    at_first.print(first);

    let start = Instant::now();
    fleet.connect(&creds[first..]);
    let held = wait_held(&server, agents, &fleet).await;
    let connect_secs = start.elapsed().as_secs_f64();
    println!(
        "connected {held}/{agents} in {connect_secs:.1} s ({:.0}/s for the last {}); server RSS {}",
        (held.saturating_sub(first)) as f64 / connect_secs,
        agents - first,
        mib(server.rss_kib())
    );

    println!(
        "holding for {} s (more than two 30 s heartbeat intervals)…",
        HOLD.as_secs()
    );
    let cpu_before = server.cpu_ticks();
    let hold_start = Instant::now();
    tokio::time::sleep(HOLD).await;
    let cpu =
        (server.cpu_ticks() - cpu_before) as f64 / USER_HZ / hold_start.elapsed().as_secs_f64()
            * 100.0;
    let held = server.held().await;
    let online = server.online(&token).await;
    let rss = server.rss_kib();
    let at_all = command_run(&server, &token, &all_ids(&creds)).await;
    at_all.print(agents);
    let rss_peak = rss_sampler.peak();

    println!();
    println!("== agents_load summary ({}) ==", server.database);
    println!("agents held (server's open streams):     {held} of {agents}");
    println!(
        "agents online (API, after {} s):          {online}",
        HOLD.as_secs()
    );
    println!(
        "agent sessions the bench saw fail/end:   {} connect failures, {} ended",
        fleet.failed.load(Ordering::Relaxed),
        fleet.ended.load(Ordering::Relaxed)
    );
    if let Some(error) = fleet.first_error.lock().unwrap().as_ref() {
        println!("  first failure: {error}");
    }
    println!(
        "server RSS: idle {}, with {held} agents {} (peak {}), {:.1} KiB per agent",
        mib(rss_idle),
        mib(rss),
        mib(rss_peak),
        (rss.saturating_sub(rss_idle)) as f64 / held.max(1) as f64
    );
    println!("server CPU while holding (heartbeats only): {cpu:.1}% of one core");
    println!(
        "ping via HTTP API, {COMMANDS_PER_SEC}/s over {first} agents: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  errors {}",
        at_first.client_ms(0.50),
        at_first.client_ms(0.99),
        at_first.client_ms(1.0),
        at_first.errors
    );
    println!(
        "ping via HTTP API, {COMMANDS_PER_SEC}/s over {agents} agents: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  errors {}",
        at_all.client_ms(0.50),
        at_all.client_ms(0.99),
        at_all.client_ms(1.0),
        at_all.errors
    );
    fleet.stop();
    drop(server);
}

fn all_ids(creds: &[Creds]) -> Vec<String> {
    creds.iter().map(|c| c.agent_id.clone()).collect()
}

/// Raises this process's open-files limit to `wanted` (the server inherits it); returns the
/// soft limit in force.
fn raise_fd_limit(wanted: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let soft = current.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return soft;
    }
    // Raising the hard limit needs privileges; without them, go as far as the hard limit.
    let raised = Rlimit {
        current: Some(wanted),
        maximum: Some(wanted.max(current.maximum.unwrap_or(wanted))),
    };
    if setrlimit(Resource::Nofile, raised).is_err() {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: current.maximum,
                maximum: current.maximum,
            },
        );
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if now < wanted {
        println!(
            "warning: open-files limit {now} < {wanted} and it could not be raised: agents beyond it fail to connect"
        );
    }
    now
}

/// Waits until the server holds `count` streams, or the count stops growing for 30 s.
async fn wait_held(server: &Server, count: usize, fleet: &Fleet) -> usize {
    let mut best = 0;
    let mut since = Instant::now();
    loop {
        let held = server.held().await;
        if held >= count {
            return held;
        }
        if held > best {
            best = held;
            since = Instant::now();
        }
        if since.elapsed() > Duration::from_secs(30) {
            println!(
                "warning: stuck at {held} of {count} streams ({} connect failures)",
                fleet.failed.load(Ordering::Relaxed)
            );
            return held;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The highest resident set size seen, sampled every half second.
struct RssSampler {
    peak: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let peak = peak.clone();
            async move {
                loop {
                    let status =
                        std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                    let rss = status_kib(&status, "VmRSS:") as usize;
                    peak.fetch_max(rss, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
        Self { peak, task }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed) as u64
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a simulated agent connects with.
struct Creds {
    agent_id: String,
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// Enrolls `count` agents with one token over one enrollment channel, `ENROLLING` at a time.
async fn enroll_all(server: &Server, token: &str, count: usize) -> Vec<Creds> {
    let created = server
        .post(
            "/api/v1/enrollment-tokens",
            Some(token),
            json!({"name": "bench", "labels": {"bench": "agents-load"}}),
        )
        .await;
    let token_text = created["token"].as_str().unwrap().to_owned();
    let parsed = EnrollmentToken::parse(&token_text).unwrap();
    let verifier = Arc::new(PinnedCaVerifier::new(parsed.ca_fingerprint));
    let config = Arc::new(enroll_client_config(verifier).unwrap());
    let channel = channel(&server.agent_endpoint, config).await.unwrap();
    futures_util::stream::iter(0..count)
        .map(|i| {
            let mut client = AgentServiceClient::new(channel.clone());
            let token = token_text.clone();
            async move {
                let key = rcgen::KeyPair::generate().unwrap();
                let mut params = rcgen::CertificateParams::default();
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, format!("sim-{i}"));
                let csr_der = params.serialize_request(&key).unwrap().der().to_vec();
                let response = client
                    .enroll(EnrollRequest {
                        token,
                        csr_der,
                        hostname: format!("sim-{i}"),
                        labels: Default::default(),
                        agent_version: "bench".to_owned(),
                        protocol_version: PROTOCOL_VERSION,
                    })
                    .await
                    .unwrap_or_else(|s| panic!("enrollment {i} failed: {s:?}"))
                    .into_inner();
                Creds {
                    agent_id: response.agent_id,
                    ca: CertificateDer::from(response.chain_der.last().unwrap().clone()),
                    cert: CertificateDer::from(response.certificate_der),
                    key_der: key.serialize_der(),
                }
            }
        })
        .buffer_unordered(ENROLLING)
        .collect()
        .await
}

/// The simulated agents: each one a task running the agent library's session.
struct Fleet {
    endpoint: AgentEndpoint,
    connecting: Arc<Semaphore>,
    probe: Arc<HostProbe>,
    handler: Arc<dyn CommandHandler>,
    info: AgentInfo,
    stop: CancellationToken,
    failed: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    first_error: Arc<Mutex<Option<String>>>,
}

impl Fleet {
    fn new(server: &Server) -> Self {
        let probe = Arc::new(HostProbe::new(PathBuf::from("/"), None));
        let info = AgentInfo::of_this_host();
        Self {
            endpoint: server.agent_endpoint.clone(),
            connecting: Arc::new(Semaphore::new(CONNECTING)),
            handler: Arc::new(BuiltinCommands::new(info.clone(), probe.clone())),
            probe,
            info,
            stop: CancellationToken::new(),
            failed: Arc::default(),
            ended: Arc::default(),
            first_error: Arc::default(),
        }
    }

    fn connect(&self, creds: &[Creds]) {
        for c in creds {
            let config = infrapilot_agent_lib::tls::mtls_client_config(
                c.ca.clone(),
                vec![c.cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone())),
            )
            .unwrap();
            let mut ctx =
                SessionContext::new(self.info.clone(), self.probe.clone(), self.handler.clone());
            ctx.shutdown = self.stop.child_token();
            let endpoint = self.endpoint.clone();
            let connecting = self.connecting.clone();
            let failed = self.failed.clone();
            let ended = self.ended.clone();
            let first_error = self.first_error.clone();
            let note = move |e: String| {
                first_error.lock().unwrap().get_or_insert(e);
            };
            tokio::spawn(async move {
                let permit = connecting.acquire_owned().await.unwrap();
                let channel = match channel(&endpoint, Arc::new(config)).await {
                    Ok(channel) => channel,
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        note(format!("connect: {e:?}"));
                        return;
                    }
                };
                drop(permit);
                let end = grpc_session(channel, &ctx).await;
                if !ctx.shutdown.is_cancelled() {
                    ended.fetch_add(1, Ordering::Relaxed);
                    note(format!("session ended: {end:?}"));
                }
            });
        }
    }

    fn stop(&self) {
        self.stop.cancel();
    }
}

/// The answers of one command run.
struct CommandRun {
    /// Client-side round trips of the successful commands, sorted.
    client: Vec<Duration>,
    /// The hub's own round trips (the agent's stream only) the API reported, sorted.
    hub: Vec<Duration>,
    errors: usize,
    sent: usize,
}

impl CommandRun {
    fn client_ms(&self, p: f64) -> f64 {
        percentile(&self.client, p).as_secs_f64() * 1000.0
    }

    fn print(&self, agents: usize) {
        let hub_ms = |p: f64| percentile(&self.hub, p).as_secs_f64() * 1000.0;
        println!(
            "ping via HTTP API over {agents} agents: {} sent, {} ok, {} errors; client p50 {:.2} ms p90 {:.2} ms p99 {:.2} ms max {:.2} ms; hub (stream only) p50 {:.2} ms p99 {:.2} ms",
            self.sent,
            self.client.len(),
            self.errors,
            self.client_ms(0.50),
            self.client_ms(0.90),
            self.client_ms(0.99),
            self.client_ms(1.0),
            hub_ms(0.50),
            hub_ms(0.99),
        );
    }
}

/// Pings random agents of `ids` through the API, `COMMANDS_PER_SEC` a second for
/// `COMMAND_RUN`, open-loop: a slow answer does not delay the next command.
async fn command_run(server: &Server, token: &str, ids: &[String]) -> CommandRun {
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / COMMANDS_PER_SEC as u32);
    let mut tasks = tokio::task::JoinSet::new();
    let end = Instant::now() + COMMAND_RUN;
    let mut sent = 0;
    while Instant::now() < end {
        ticker.tick().await;
        let id = &ids[rand::random_range(0..ids.len())];
        let request = server
            .client
            .post(format!("{}/api/v1/agents/{id}/ping", server.http))
            .bearer_auth(token);
        sent += 1;
        tasks.spawn(async move {
            let start = Instant::now();
            let response = request.send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let body: Value = response.json().await.ok()?;
            Some((start.elapsed(), body["round_trip_ms"].as_f64()?))
        });
    }
    let mut run = CommandRun {
        client: Vec::new(),
        hub: Vec::new(),
        errors: 0,
        sent,
    };
    while let Some(result) = tasks.join_next().await {
        match result.ok().flatten() {
            Some((client, hub)) => {
                run.client.push(client);
                run.hub.push(Duration::from_secs_f64(hub / 1000.0));
            }
            None => run.errors += 1,
        }
    }
    run.client.sort_unstable();
    run.hub.sort_unstable();
    run
}
