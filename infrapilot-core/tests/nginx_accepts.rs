//! The real nginx accepts every config the renderer can produce.
//!
//! Needs Debian's nginx (`/usr/sbin/nginx`) and the `openssl` CLI. Each case writes a whole
//! site into a private prefix under the temp dir and runs `nginx -t` on it; nothing is written
//! under /etc or /var.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod nginx_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use infrapilot_core::nginx::*;
use nginx_support::*;
use proptest::prelude::*;

const NGINX: &str = "/usr/sbin/nginx";

fn nginx() -> &'static str {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} is missing: install Debian's nginx-light (the README test command does this)"
    );
    NGINX
}

/// A self-signed certificate and key, made once per test run.
fn self_signed() -> &'static (PathBuf, PathBuf) {
    static CERT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    CERT.get_or_init(|| {
        let dir = fresh_dir("cert");
        let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=infrapilot.test",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("the openssl CLI is needed to make a test certificate");
        assert!(
            out.status.success(),
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (cert, key)
    })
}

fn fresh_dir(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "infrapilot-nginx-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `set` into a fresh prefix laid out by `layout`, provides certificates for the
/// hosts' required files, and runs `nginx -t`. Returns nginx's output on failure.
fn nginx_test(set: &ConfigSet, layout: &Layout, root: &Path) -> Result<(), String> {
    for dir in [
        &layout.cert_dir,
        &layout.htpasswd_dir,
        &layout.log_dir,
        &layout.temp_dir,
        &layout.acme_webroot,
    ] {
        std::fs::create_dir_all(dir.as_str()).unwrap();
    }
    for file in set.files() {
        let path = Path::new(&file.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &file.contents).unwrap();
    }
    let (cert, key) = self_signed();
    for required in set.hosts.iter().flat_map(|h| h.required_files.iter()) {
        let path = Path::new(required);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let source = if required.ends_with("privkey.pem") {
            key
        } else {
            cert
        };
        std::fs::copy(source, path).unwrap();
    }
    let out = Command::new(nginx())
        .arg("-t")
        .arg("-p")
        .arg(format!("{}/", root.display()))
        .arg("-c")
        .arg(&set.main.path)
        .arg("-e")
        .arg(root.join("logs/startup.log"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        let mut report = String::from_utf8_lossy(&out.stderr).into_owned();
        for file in set.files() {
            report.push_str(&format!("\n=== {}\n{}", file.path, file.contents));
        }
        Err(report)
    }
}

fn check_site(site: &Site) -> Result<(), String> {
    check_site_with(site, |_| {})
}

/// Like [`check_site`], with the layout changed by `adjust` (ports, IPv6).
fn check_site_with(site: &Site, adjust: impl FnOnce(&mut Layout)) -> Result<(), String> {
    let root = fresh_dir("site");
    let mut layout = layout(root.to_str().unwrap());
    adjust(&mut layout);
    let result = nginx_test(&render_site(site, &layout), &layout, &root);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}

fn fixture_site() -> Site {
    Site {
        default_server: default_server(),
        proxy_hosts: vec![
            plain_host(),
            tls_host(),
            locations_host(),
            access_host(),
            rate_limit_host(),
            websocket_host(),
        ],
        redirection_hosts: vec![redirect_host()],
    }
}

#[test]
fn nginx_accepts_the_snapshot_fixtures() {
    check_site(&fixture_site()).unwrap_or_else(|e| panic!("nginx -t refused:\n{e}"));
}

#[test]
fn nginx_accepts_a_site_with_a_quarantined_host() {
    // Leave the TLS host out entirely, as the agent does when its certificate is missing:
    // nothing else refers to it, so the rest still passes.
    let site = fixture_site();
    let root = fresh_dir("quarantine");
    let layout = layout(root.to_str().unwrap());
    let mut set = render_site(&site, &layout);
    let quarantined = tls_host().id;
    set.hosts.retain(|h| h.id != quarantined);
    nginx_test(&set, &layout, &root).unwrap_or_else(|e| panic!("nginx -t refused:\n{e}"));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn nginx_refuses_a_host_whose_certificate_is_missing() {
    // The counterpart: required_files names exactly what nginx cannot do without.
    let root = fresh_dir("missing-cert");
    let layout = layout(root.to_str().unwrap());
    let site = Site {
        proxy_hosts: vec![tls_host()],
        ..Site::default()
    };
    let mut set = render_site(&site, &layout);
    let required = std::mem::take(&mut set.hosts[0].required_files);
    assert_eq!(required, tls_host().required_files(&layout));
    let err = nginx_test(&set, &layout, &root).unwrap_err();
    assert!(err.contains("fullchain.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn nginx_accepts_every_documented_rate_limit_bound() {
    // Every corner of the documented ranges (1–100000 per second, a burst of 0–100000, with
    // and without nodelay), one host each, in one site.
    let mut hosts = Vec::new();
    for rate in [1, RateLimit::MAX] {
        for burst in [0, 1, RateLimit::MAX] {
            for nodelay in [false, true] {
                let n = hosts.len() as u128;
                hosts.push(ProxyHost {
                    id: host_id(500 + n),
                    domains: domains(&[&format!("limit{n}.example.com")]),
                    rate_limit: Some(RateLimit::new(rate, burst, nodelay).unwrap()),
                    ..plain_host()
                });
            }
        }
    }
    assert_eq!(hosts.len(), 12);
    let site = Site {
        proxy_hosts: hosts,
        ..Site::default()
    };
    check_site(&site).unwrap_or_else(|e| panic!("nginx -t refused:\n{e}"));
}

proptest! {
    // Each case is one `nginx -t` (a few milliseconds); 128 cases stay well under a minute.
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn nginx_accepts_every_valid_site(
        site in site(),
        ipv6 in any::<bool>(),
        (http_port, https_port) in (1u16.., 1u16..).prop_filter("distinct ports", |(a, b)| a != b),
    ) {
        nginx();
        let adjusted = check_site_with(&site, |layout| {
            layout.ipv6 = ipv6;
            layout.http_port = http_port;
            layout.https_port = https_port;
        });
        if let Err(e) = adjusted {
            prop_assert!(false, "nginx -t refused:\n{}", e);
        }
    }
}
