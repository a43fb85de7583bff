//! How long rendering a whole site of 200 proxy hosts takes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use infrapilot_core::nginx::{Layout, Site, render_site};

fn site(hosts: usize) -> Site {
    let proxy_hosts: Vec<serde_json::Value> = (0..hosts)
        .map(|i| {
            serde_json::json!({
                "id": format!("00000000-0000-0000-0000-{i:012}"),
                "domains": [format!("app{i}.example.com"), format!("www.app{i}.example.com")],
                "upstream": format!("container:app-{i}:8080"),
                "ssl": {"mode": "lets_encrypt", "certificate": format!("00000000-0000-0000-0001-{i:012}"),
                        "force_https": true, "http2": true,
                        "hsts": {"max_age_seconds": 31536000, "include_subdomains": true, "preload": false}},
                "headers": {"frame_options": "deny", "content_type_nosniff": true,
                            "referrer_policy": "no-referrer", "content_security_policy": "default-src 'self'"},
                "rate_limit": {"requests_per_second": 10, "burst": 20},
                "locations": [{"path": "/api/", "upstream": "http://api:9000/v1"}],
                "access_list": {"rules": [{"action": "allow", "cidr": "10.0.0.0/8"}],
                                "users": [{"username": "admin", "password_hash": "$apr1$abc$def"}],
                                "satisfy": "any"}
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "proxy_hosts": proxy_hosts })).unwrap()
}

fn layout() -> Layout {
    serde_json::from_value(serde_json::json!({
        "conf_dir": "/etc/infrapilot/nginx", "cert_dir": "/var/lib/infrapilot/certs",
        "htpasswd_dir": "/var/lib/infrapilot/htpasswd", "log_dir": "/var/log/infrapilot",
        "temp_dir": "/var/lib/infrapilot/tmp", "acme_webroot": "/var/lib/infrapilot/acme",
        "pid_file": "/run/infrapilot-nginx.pid", "resolvers": ["127.0.0.11"], "ipv6": false
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let (site, layout) = (site(200), layout());
    c.bench_function("render_site 200 hosts", |b| {
        b.iter(|| render_site(&site, &layout))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
