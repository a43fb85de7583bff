//! The nginx controller against the real nginx (Debian's `/usr/sbin/nginx`, which
//! `cargo xtask provision` installs) with real traffic: hosts are served, a host that cannot
//! load is quarantined while the others keep answering, an unchanged site does not reload,
//! and a removed host stops being served.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use infrapilot_agent_lib::nginx::{HostState, NginxController, NginxRunner};
use infrapilot_core::ids::CertificateId;
use infrapilot_core::nginx::{Site, SslMode};

mod common;

use common::*;

#[tokio::test]
async fn hosts_are_served_a_broken_one_is_quarantined_and_the_rest_keep_answering() {
    assert!(
        Path::new(NGINX).exists(),
        "this test needs nginx at {NGINX} (Debian's nginx-light; cargo xtask provision installs it)"
    );
    let root = tempfile::tempdir().unwrap();
    let layout = layout(root.path());
    let port = layout.http_port;
    let controller = NginxController::new(layout.clone(), NginxRunner::host(NGINX));
    let _stop = Stop(&controller);
    let (one, two) = (upstream("one").await, upstream("two").await);

    // Two hosts: both served, each to its own upstream.
    let mut site = Site {
        proxy_hosts: vec![
            host(1, "one.test", one, SslMode::None),
            host(2, "two.test", two, SslMode::None),
        ],
        ..Site::default()
    };
    let report = controller.apply(&site).await.unwrap();
    assert!(report.reloaded, "nginx started");
    assert!(
        report.hosts.iter().all(|h| h.state == HostState::Applied),
        "{report:?}"
    );
    assert_eq!(
        get(port, "one.test").await,
        (200, "upstream one".to_owned())
    );
    assert_eq!(
        get(port, "two.test").await,
        (200, "upstream two".to_owned())
    );
    assert_eq!(get(port, "nobody.test").await.0, 404, "the default server");

    // The same site again: nothing to write, no reload.
    let report = controller.apply(&site).await.unwrap();
    assert!(!report.reloaded, "{report:?}");

    // A host whose certificate nginx cannot load, and one whose certificate is missing: both
    // quarantined with the reason, the others keep answering.
    let garbage = layout.certificate_paths(CertificateId::from_uuid(uuid::Uuid::from_u128(30)));
    std::fs::create_dir_all(Path::new(&garbage.fullchain).parent().unwrap()).unwrap();
    std::fs::write(&garbage.fullchain, "not a certificate\n").unwrap();
    std::fs::write(&garbage.privkey, "not a key\n").unwrap();
    site.proxy_hosts
        .push(host(3, "broken.test", one, custom_tls(30)));
    site.proxy_hosts
        .push(host(4, "missing.test", one, custom_tls(40)));
    let report = controller.apply(&site).await.unwrap();
    assert!(
        !report.reloaded,
        "only quarantined hosts were added, so nothing live changed: {report:?}"
    );
    let quarantined: Vec<_> = report.quarantined().collect();
    assert_eq!(quarantined.len(), 2, "{report:?}");
    let broken = quarantined[0];
    assert_eq!(broken.id, site.proxy_hosts[2].id);
    let why = broken.error.as_deref().unwrap();
    assert!(
        why.contains("[emerg]") && why.contains(&garbage.fullchain),
        "nginx's own message: {why}"
    );
    let missing = quarantined[1];
    assert!(
        missing.error.as_deref().unwrap().contains("is missing"),
        "{missing:?}"
    );
    assert_eq!(
        get(port, "one.test").await,
        (200, "upstream one".to_owned())
    );
    assert_eq!(
        get(port, "two.test").await,
        (200, "upstream two".to_owned())
    );
    assert_eq!(
        get(port, "broken.test").await.0,
        404,
        "a quarantined host is not served"
    );

    // Remove host two: it stops being served, one keeps answering.
    site.proxy_hosts.remove(1);
    let report = controller.apply(&site).await.unwrap();
    assert!(report.reloaded);
    assert_eq!(report.hosts.len(), 3);
    // A reload lets old workers finish; give the new ones a moment to take over.
    let mut code = 0;
    for _ in 0..50 {
        code = get(port, "two.test").await.0;
        if code == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(code, 404, "a removed host is no longer served");
    assert_eq!(
        get(port, "one.test").await,
        (200, "upstream one".to_owned())
    );

    // Nothing was left in staging or previous that nginx reads: the live directory holds
    // exactly the applied hosts' files.
    let hosts_dir = Path::new(layout.conf_dir.as_str()).join("hosts");
    let mut live: Vec<String> = std::fs::read_dir(hosts_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    live.sort();
    assert_eq!(
        live,
        [format!("proxy-{}.conf", site.proxy_hosts[0].id)],
        "only the served host's file is live"
    );
}

/// wrk's failure counts: non-2xx/3xx responses and socket errors (connect, read, write,
/// timeout), and the requests it completed.
fn wrk_failures(output: &str) -> (u64, u64) {
    let number = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().unwrap_or(0);
    let mut failures = 0;
    let mut requests = 0;
    for line in output.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            failures += number(n);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            failures += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1))
                .map(number)
                .sum::<u64>();
        } else if line.contains("requests in") {
            requests = number(line.split_whitespace().next().unwrap_or("0"));
        }
    }
    (failures, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changes_under_load_fail_no_request() {
    assert!(
        Path::new(NGINX).exists() && Path::new("/usr/bin/wrk").exists(),
        "this test needs nginx and wrk (Debian's nginx-light and wrk; cargo xtask provision installs them)"
    );
    let root = tempfile::tempdir().unwrap();
    let layout = layout(root.path());
    let port = layout.http_port;
    let controller = NginxController::new(layout.clone(), NginxRunner::host(NGINX));
    let _stop = Stop(&controller);
    let (one, two) = (upstream("one").await, upstream("two").await);
    let site_with = |upstream_port: u16, extra: usize| Site {
        proxy_hosts: std::iter::once(host(1, "load.test", upstream_port, SslMode::None))
            .chain((0..extra).map(|i| {
                host(
                    100 + i as u128,
                    &format!("extra-{i}.test"),
                    one,
                    SslMode::None,
                )
            }))
            .collect(),
        ..Site::default()
    };
    controller.apply(&site_with(one, 0)).await.unwrap();
    assert_eq!(get(port, "load.test").await.0, 200);

    // wrk for 8 s with 16 connections while the host's upstream flips and hosts come and go:
    // every change is a real reload. Each request has its own connection: a reload closes
    // idle keep-alive connections, and a request a client sends on one at that instant is
    // not answered — HTTP clients retry such a request (RFC 9112 §9.3.1), wrk counts it as a
    // read error, so keep-alive traffic would measure wrk rather than the reload. What must
    // never happen is a request on a new connection failing, and that is asserted here.
    let wrk = tokio::process::Command::new("/usr/bin/wrk")
        .args(["-t", "2", "-c", "16", "-d", "8s", "-H", "Host: load.test"])
        .args(["-H", "Connection: close"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output();
    let changes = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut reloads = 0;
        for round in 0..12 {
            let upstream = if round % 2 == 0 { two } else { one };
            let report = controller
                .apply(&site_with(upstream, round % 3))
                .await
                .unwrap();
            assert!(report.reloaded);
            reloads += 1;
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        reloads
    };
    let (out, reloads) = tokio::join!(wrk, changes);
    let out = out.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    let (failures, requests) = wrk_failures(&text);
    // The figure the proxy issue asks for (shown with --no-capture).
    eprintln!("{requests} requests through {reloads} reloads: {failures} failed");
    assert!(requests > 500, "wrk sent too little to tell: {text}");
    assert_eq!(
        failures, 0,
        "{reloads} reloads under load failed requests:\n{text}"
    );
}

#[test]
fn wrk_output_is_read() {
    let out = "Running 8s test @ http://127.0.0.1:1/\n  2 threads and 16 connections\n  \
               52340 requests in 8.00s, 8.11MB read\n  Socket errors: connect 0, read 3, write 0, timeout 1\n  \
               Non-2xx or 3xx responses: 2\nRequests/sec:   6542.34\n";
    assert_eq!(wrk_failures(out), (6, 52340));
    assert_eq!(
        wrk_failures("  100 requests in 1.00s, 1MB read\n"),
        (0, 100)
    );
}
