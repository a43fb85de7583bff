//! Apply benchmark (not a test): how long the agent takes to apply a changed site to the real
//! nginx — render, `nginx -t` in staging, swap in, `nginx -t` again, reload — with 1 and with
//! 1,000 proxy hosts.
//!
//! ```sh
//! cargo bench -p infrapilot-agent-lib --bench nginx_apply
//! ```
//!
//! Each round changes one host's upstream, so every apply really writes and reloads. The
//! first apply of each size (which starts nginx) is reported apart.

// Benchmark code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use infrapilot_agent_lib::nginx::{HostState, NginxController, NginxRunner, host_layout};
use infrapilot_agent_lib::testing::free_port;
use infrapilot_core::ids::ProxyHostId;
use infrapilot_core::nginx::{
    DomainList, Locations, ProxyHost, ProxyOptions, SecurityHeaders, Site, SslMode,
};
use infrapilot_core::values::{Domain, Upstream};

const NGINX: &str = "/usr/sbin/nginx";
const ROUNDS: usize = 7;

/// `hosts` hosts; the first one's upstream port is `first_port`, the others' 9.
fn site(hosts: usize, first_port: u16) -> Site {
    Site {
        proxy_hosts: (0..hosts)
            .map(|i| ProxyHost {
                id: ProxyHostId::from_uuid(uuid::Uuid::from_u128(i as u128 + 1)),
                domains: DomainList::new(vec![
                    Domain::parse(&format!("host-{i}.bench.test")).unwrap(),
                ])
                .unwrap(),
                upstream: Upstream::parse(&format!(
                    "http://127.0.0.1:{}",
                    if i == 0 { first_port } else { 9 }
                ))
                .unwrap(),
                ssl: SslMode::None,
                headers: SecurityHeaders::default(),
                proxy: ProxyOptions::default(),
                rate_limit: None,
                locations: Locations::default(),
                access_list: None,
                access_list_id: None,
            })
            .collect(),
        ..Site::default()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    assert!(
        std::path::Path::new(NGINX).exists(),
        "the benchmark needs nginx at {NGINX}"
    );
    for hosts in [1, 1000] {
        let root = tempfile::tempdir().unwrap();
        let layout = host_layout(root.path(), free_port(), free_port()).unwrap();
        let controller = NginxController::new(layout.clone(), NginxRunner::host(NGINX));
        let start = Instant::now();
        let report = controller.apply(&site(hosts, 9)).await.unwrap();
        let first = start.elapsed();
        assert!(report.hosts.iter().all(|h| h.state == HostState::Applied));
        let mut times = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            // A different upstream port each round: one host's file changes, so nginx reloads.
            let changed = site(hosts, 10 + round as u16);
            let start = Instant::now();
            let report = controller.apply(&changed).await.unwrap();
            times.push(start.elapsed());
            assert!(report.reloaded, "round {round} reloaded");
        }
        let start = Instant::now();
        let same = controller
            .apply(&site(hosts, 10 + ROUNDS as u16 - 1))
            .await
            .unwrap();
        let unchanged = start.elapsed();
        assert!(!same.reloaded);
        times.sort_unstable();
        println!(
            "nginx_apply {hosts:>5} hosts: first apply (starts nginx) {:.1} ms; changed apply (render + 2x nginx -t + reload) median {:.1} ms, min {:.1} ms, max {:.1} ms over {ROUNDS}; unchanged (no reload) {:.1} ms",
            ms(first),
            ms(times[ROUNDS / 2]),
            ms(times[0]),
            ms(times[ROUNDS - 1]),
            ms(unchanged),
        );
        let _ = std::process::Command::new(NGINX)
            .args(["-q", "-c", &layout.main_conf_path(), "-s", "stop"])
            .output();
    }
}
