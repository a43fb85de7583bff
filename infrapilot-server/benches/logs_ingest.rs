//! Central logs benchmark (not a test): end-to-end ingest from agents into PostgreSQL beside a
//! raw `COPY` of the same rows, and the query latency of a one-hour window of one container
//! over ten million stored rows.
//!
//! ```sh
//! eval $(cargo xtask pg)   # PostgreSQL; the bench refuses to run on SQLite
//! cargo bench -p infrapilot-server --features test-support --bench logs_ingest
//! INFRAPILOT_BENCH_LINES=200000 INFRAPILOT_BENCH_ROWS=1000000 cargo bench …   # a quick run
//! ```
//!
//! Honest by construction:
//!
//! - The server is the real `infrapilot-server` binary in its own process on PostgreSQL.
//! - Each agent is the real agent library (`Agent`, enrolled through the real `Enroll` RPC),
//!   connected over TLS 1.3 mutual TLS, shipping from its real disk buffer, which the bench
//!   fills before the agents start (so what is timed is buffer → gRPC → ingest → commit →
//!   acknowledgement, not Docker). The clock stops when the server's own stream table says
//!   every line is stored (`GET /api/v1/logs/streams`).
//! - "Raw COPY" is `COPY log_lines FROM STDIN` of as many rows of the same shape into the
//!   same table (same indexes) over one connection, in the same run, as the superuser
//!   (PostgreSQL refuses COPY FROM under row-level security, so raw COPY also skips the
//!   policy checks the server's inserts pass).
//! - The query is `GET /api/v1/logs?container=…&since=…&until=…` through the API (auth,
//!   validation, RLS context, the SQL, JSON), timed by this client, 200 times over random
//!   one-hour windows of random containers; the ten million rows are spread over 100
//!   containers and 10 days.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use infrapilot_agent_lib::logs::LogConfig;
use infrapilot_agent_lib::logs::buffer::{LogBuffer, NewRecord, StreamMeta};
use infrapilot_agent_lib::{Agent, AgentConfig, CancellationToken, EnrollmentToken, enroll};
use serde_json::{Value, json};
use sqlx::Connection as _;

use common::{Server, percentile};

const AGENTS: usize = 4;
const STREAMS_PER_AGENT: usize = 4;
const CONTAINERS: usize = 100;
const DAYS: i64 = 10;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

/// A line of the size and shape of a web application's request log.
fn line(i: u64) -> String {
    format!(
        "2026-12-02T10:{:02}:{:02}.{:03}Z INFO request handled method=GET path=/api/items/{} status=200 duration_ms={} request_id={:016x}",
        (i / 60) % 60,
        i % 60,
        i % 1000,
        i % 5000,
        i % 97,
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}

#[tokio::main]
async fn main() {
    let lines = env_number("INFRAPILOT_BENCH_LINES", 1_000_000);
    let rows = env_number("INFRAPILOT_BENCH_ROWS", 10_000_000);
    let server = Server::start("logs-ingest").await;
    let owner_url = server.owner_url.clone().expect(
        "set INFRAPILOT_TEST_PG_ADMIN_URL (cargo xtask pg): this bench measures PostgreSQL",
    );
    let token = server.admin_token().await;
    let org = server.get("/api/v1/organization", &token).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    println!(
        "logs_ingest: server pid {} on {}",
        server.pid(),
        server.database
    );

    // Agents, each with a buffer holding its share of the lines.
    let created = server
        .post(
            "/api/v1/enrollment-tokens",
            Some(&token),
            json!({"name": "bench", "max_uses": AGENTS}),
        )
        .await;
    let enrollment = EnrollmentToken::parse(created["token"].as_str().unwrap()).unwrap();
    let per_stream = lines / (AGENTS * STREAMS_PER_AGENT) as u64;
    let total = per_stream * (AGENTS * STREAMS_PER_AGENT) as u64;
    let mut dirs = Vec::new();
    let fill = Instant::now();
    for a in 0..AGENTS {
        let dir = std::env::temp_dir().join(format!(
            "infrapilot-bench-agent-{}",
            uuid::Uuid::new_v4().simple()
        ));
        enroll(
            &server.agent_endpoint,
            &enrollment,
            &Default::default(),
            &infrapilot_agent_lib::StateDir::new(&dir),
        )
        .await
        .expect("enrolls");
        let mut buffer =
            LogBuffer::open(dir.join("logs"), LogConfig::new(dir.join("logs")).buffer).unwrap();
        for s in 0..STREAMS_PER_AGENT {
            let stream = format!("container:bench-{a}-{s}");
            let meta = StreamMeta {
                kind: "container".into(),
                container_id: Some(format!("bench-{a}-{s}")),
                container_name: Some(format!("web-{a}-{s}")),
            };
            for i in 0..per_stream {
                let text = line(i);
                let t = 1_796_205_600_000_000_000 + i as i64 * 1_000_000;
                let cursor = t.to_string();
                buffer
                    .append(
                        &stream,
                        &meta,
                        NewRecord {
                            time_unix_nanos: t,
                            source: "stdout",
                            cursor: cursor.as_bytes(),
                            line: text.as_bytes(),
                        },
                    )
                    .unwrap();
            }
        }
        drop(buffer);
        dirs.push(dir);
    }
    let bytes_per_line = line(12_345).len();
    println!(
        "filled {AGENTS} agent buffers with {total} lines of ~{bytes_per_line} bytes in {:.1} s",
        fill.elapsed().as_secs_f64()
    );

    // End to end: the agents connect and ship; the server's stream table says when all is in.
    let cancel = CancellationToken::new();
    let start = Instant::now();
    for dir in &dirs {
        let mut config = AgentConfig::new(dir);
        config.docker_socket = None;
        config.logs = Some(LogConfig::new(dir.join("logs")));
        let agent = Agent::new(config);
        let token = cancel.clone();
        tokio::spawn(async move { agent.run(token).await });
    }
    loop {
        let streams: Value = server.get("/api/v1/logs/streams", &token).await;
        let stored: i64 = streams
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["acked_seq"].as_i64().unwrap())
            .sum();
        if stored as u64 >= total {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "ingest stalled at {stored}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e2e = start.elapsed();
    cancel.cancel();
    let e2e_rate = total as f64 / e2e.as_secs_f64();
    println!(
        "end to end: {total} lines from {AGENTS} agents ({} streams) stored in {:.2} s: {e2e_rate:.0} lines/s",
        AGENTS * STREAMS_PER_AGENT,
        e2e.as_secs_f64()
    );

    // Raw COPY of as many rows of the same shape into the same table.
    // PostgreSQL refuses COPY FROM into a table under row-level security for a role that
    // is subject to it, so the raw load runs as the cluster's superuser, into the same
    // database and table.
    let db = owner_url.rsplit_once('/').unwrap().1;
    let admin = infrapilot_server::testing::pg_admin_url();
    let admin = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let mut owner = sqlx::PgConnection::connect(&admin).await.unwrap();
    let copy_agent = uuid::Uuid::new_v4().to_string();
    let mut data = Vec::with_capacity(total as usize * 200);
    for i in 0..total {
        let t = 1_796_205_600_000_000 + i as i64;
        let text = line(i);
        data.extend_from_slice(
            format!(
                "{org}\t{copy_agent}\tcontainer:copy\t{}\t{t}\tcopy\tweb-copy\tstdout\tinfo\t{text}\t\\N\t\\N\n",
                i + 1
            )
            .as_bytes(),
        );
    }
    let start = Instant::now();
    let mut copy = owner
        .copy_in_raw(
            "COPY log_lines (org_id, agent_id, stream, seq, ts, container_id, container_name, \
             source, level, line, http_status, upstream_ms) FROM STDIN",
        )
        .await
        .unwrap();
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk).await.unwrap();
    }
    let copied = copy.finish().await.unwrap();
    let raw = start.elapsed();
    let raw_rate = copied as f64 / raw.as_secs_f64();
    println!(
        "raw COPY: {copied} rows in {:.2} s: {raw_rate:.0} rows/s; end to end is {:.0} % of raw COPY",
        raw.as_secs_f64(),
        100.0 * e2e_rate / raw_rate
    );

    // Ten million rows over 100 containers and 10 days, then one-hour windows of one
    // container through the API.
    let load = Instant::now();
    let span = DAYS * 86_400_000_000;
    let step = span / rows as i64;
    let base = 1_796_205_600_000_000 - span;
    let query_agent = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO log_lines (org_id, agent_id, stream, seq, ts, container_id, container_name, \
         source, level, line) \
         SELECT $1, $2, 'container:c' || (n % $3), n, $4 + n * $5, 'c' || (n % $3), \
         'svc-' || (n % $3), 'stdout', CASE WHEN n % 50 = 0 THEN 'error' ELSE 'info' END, \
         'request handled path=/api/items/' || (n % 5000) || ' status=200 duration_ms=' || (n % 97) \
         FROM generate_series(1, $6) AS n",
    )
    .bind(&org)
    .bind(&query_agent)
    .bind(CONTAINERS as i64)
    .bind(base)
    .bind(step)
    .bind(rows as i64)
    .execute(&mut owner)
    .await
    .unwrap();
    sqlx::query("ANALYZE log_lines")
        .execute(&mut owner)
        .await
        .unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_lines")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    println!(
        "loaded {rows} rows in {:.0} s; log_lines holds {stored}",
        load.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    let mut returned = 0;
    for i in 0..200_u64 {
        let container = format!("svc-{}", (i * 37) % CONTAINERS as u64);
        let from = base + ((i * 7_919) as i64 % (span - 3_600_000_000));
        let since = from / 1_000_000;
        let until = since + 3600;
        let path =
            format!("/api/v1/logs?container={container}&since={since}&until={until}&limit=200");
        let start = Instant::now();
        let page = server.get(&path, &token).await;
        times.push(start.elapsed());
        returned += page["items"].as_array().unwrap().len();
    }
    times.sort();
    println!(
        "query, one hour of one container over {stored} rows (200 requests, {:.0} lines each on average): p50 {:.2} ms, p99 {:.2} ms",
        returned as f64 / 200.0,
        percentile(&times, 0.50).as_secs_f64() * 1000.0,
        percentile(&times, 0.99).as_secs_f64() * 1000.0
    );
    let mut times = Vec::new();
    for i in 0..100_u64 {
        let container = format!("svc-{}", (i * 37) % CONTAINERS as u64);
        let from = base + ((i * 7_919) as i64 % (span - 3_600_000_000));
        let since = from / 1_000_000;
        let until = since + 3600;
        let path = format!(
            "/api/v1/logs?container={container}&since={since}&until={until}&level=error&q=items/42&limit=200"
        );
        let start = Instant::now();
        server.get(&path, &token).await;
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "query with level and text filters, same windows (100 requests): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&times, 0.50).as_secs_f64() * 1000.0,
        percentile(&times, 0.99).as_secs_f64() * 1000.0
    );
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}
