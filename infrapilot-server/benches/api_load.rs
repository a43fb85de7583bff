//! Load benchmark (not a test): p50/p99 latency and requests/s of an authenticated list
//! endpoint (`GET /api/v1/members`, 50 members) under a concurrent load generator on
//! loopback, on SQLite and on PostgreSQL, beside the raw SQL time of the same list query, so
//! the API's own overhead is visible.
//!
//! ```sh
//! cargo xtask pg   # prints INFRAPILOT_TEST_PG_ADMIN_URL=…; export it for the PostgreSQL run
//! cargo bench -p infrapilot-server --features test-support --bench api_load
//! ```
//!
//! The load generator is built in: keep-alive HTTP/1.1 connections, each sending requests back
//! to back for `DURATION`, timing every request. It runs in the same process on the same two
//! cores as the server, so it is measured at 1 connection (latency: what one request costs,
//! compared with the raw query) and at 4 and 16 connections (throughput: where latency is
//! mostly queueing for the two cores).

// Test and benchmark code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use infrapilot_server::config::Edition;
use infrapilot_server::testing::{self, Kind};
use infrapilot_server::{AppState, app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: [usize; 3] = [1, 4, 16];
const DURATION: Duration = Duration::from_secs(8);
const MEMBERS: usize = 50;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "GET /api/v1/members ({MEMBERS} members), {}s per run",
        DURATION.as_secs()
    );
    run(Kind::Sqlite, "sqlite").await;
    if std::env::var_os("INFRAPILOT_TEST_PG_ADMIN_URL").is_some() {
        run(Kind::Postgres, "postgres").await;
    } else {
        println!(
            "postgres: skipped (run `cargo xtask pg` and export INFRAPILOT_TEST_PG_ADMIN_URL)"
        );
    }
}

async fn run(kind: Kind, name: &str) {
    let state = testing::app_state(kind, Edition::Community).await;
    let (token, org) = populate(&state).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .into_future(),
    );

    let raw = raw_query_time(&state, org).await;
    println!(
        "{name:8} raw list query (transaction + context + SELECT, no HTTP): p50 {:.3} ms  p99 {:.3} ms",
        ms(raw.0),
        ms(raw.1)
    );
    for connections in CONNECTIONS {
        // Warm up, then measure.
        load(addr, &token, Duration::from_secs(1), connections).await;
        let (mut latencies, errors) = load(addr, &token, DURATION, connections).await;
        latencies.sort_unstable();
        let pct =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        let rps = latencies.len() as f64 / DURATION.as_secs_f64();
        println!(
            "{name:8} api, {connections:2} connection(s): {rps:7.0} req/s  p50 {:6.3} ms  p99 {:6.3} ms  errors {errors}  (p50 = {:.1}x raw p50)",
            ms(pct(0.50)),
            ms(pct(0.99)),
            pct(0.50).as_secs_f64() / raw.0.as_secs_f64(),
        );
    }
    server.abort();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Creates the members and returns an admin access token and the organization.
async fn populate(state: &AppState) -> (String, infrapilot_core::ids::OrgId) {
    let (token, org) = testing::bootstrap_admin(state).await;
    for i in 0..MEMBERS - 1 {
        testing::create_member(state, &token, &format!("user{i}@example.com")).await;
    }
    (token, org)
}

/// The raw time of the list query the endpoint runs, through the same pool.
async fn raw_query_time(
    state: &AppState,
    org: infrapilot_core::ids::OrgId,
) -> (Duration, Duration) {
    let mut times = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        times.push(testing::time_list_members(state, org).await);
    }
    times.sort_unstable();
    (
        times[times.len() / 2],
        times[(times.len() as f64 * 0.99) as usize],
    )
}

async fn load(
    addr: SocketAddr,
    token: &str,
    duration: Duration,
    connections: usize,
) -> (Vec<Duration>, usize) {
    let request = format!(
        "GET /api/v1/members?limit=50 HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut times = Vec::new();
            let mut errors = 0;
            let mut buf = vec![0u8; 64 * 1024];
            let end = Instant::now() + duration;
            while Instant::now() < end {
                let start = Instant::now();
                stream.write_all(request.as_bytes()).await.unwrap();
                match read_response(&mut stream, &mut buf).await {
                    Some(200) => times.push(start.elapsed()),
                    _ => errors += 1,
                }
            }
            (times, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (times, e) = task.await.unwrap();
        all.extend(times);
        errors += e;
    }
    (all, errors)
}

/// Reads one response (headers + Content-Length body); returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> Option<u16> {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.ok()?;
        if n == 0 {
            return None;
        }
        filled += n;
        let text = &buf[..filled];
        if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&text[..end]).ok()?;
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().ok())
            })??;
            while filled < end + 4 + length {
                let n = stream.read(&mut buf[filled..]).await.ok()?;
                if n == 0 {
                    return None;
                }
                filled += n;
            }
            return Some(status);
        }
    }
}
