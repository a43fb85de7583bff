//! Helpers shared by the nginx and ACME tests: a layout on free ports, hosts, upstreams.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use infrapilot_agent_lib::nginx::NginxController;
use infrapilot_agent_lib::testing::http;
use infrapilot_core::ids::{CertificateId, ProxyHostId};
use infrapilot_core::nginx::{
    ConfPath, DomainList, Layout, Locations, ProxyHost, ProxyOptions, Resolver, Resolvers,
    SecurityHeaders, SslMode, Tls,
};
use infrapilot_core::values::{Domain, Upstream};

pub const NGINX: &str = "/usr/sbin/nginx";

pub use infrapilot_agent_lib::testing::free_port;

pub fn layout(root: &Path) -> Layout {
    let p = |s: &str| ConfPath::parse(&format!("{}{s}", root.display())).unwrap();
    Layout {
        conf_dir: p("/conf"),
        cert_dir: p("/certs"),
        htpasswd_dir: p("/htpasswd"),
        log_dir: p("/logs"),
        temp_dir: p("/tmp"),
        acme_webroot: p("/acme"),
        pid_file: p("/nginx.pid"),
        resolvers: Resolvers::new(vec![Resolver::parse("127.0.0.1").unwrap()]).unwrap(),
        ipv6: false,
        http_port: free_port(),
        https_port: free_port(),
    }
}

pub fn host(n: u128, domain: &str, upstream_port: u16, ssl: SslMode) -> ProxyHost {
    ProxyHost {
        id: ProxyHostId::from_uuid(uuid::Uuid::from_u128(n)),
        domains: DomainList::new(vec![Domain::parse(domain).unwrap()]).unwrap(),
        upstream: Upstream::parse(&format!("http://127.0.0.1:{upstream_port}")).unwrap(),
        ssl,
        headers: SecurityHeaders::default(),
        proxy: ProxyOptions::default(),
        rate_limit: None,
        locations: Locations::default(),
        access_list: None,
        access_list_id: None,
    }
}

pub fn custom_tls(n: u128) -> SslMode {
    SslMode::Custom(Tls {
        certificate: CertificateId::from_uuid(uuid::Uuid::from_u128(n)),
        force_https: false,
        http2: false,
        hsts: None,
    })
}

pub async fn upstream(name: &'static str) -> u16 {
    http::upstream(name).await.unwrap()
}

pub async fn get(port: u16, host: &str) -> (u16, String) {
    http::get(port, host).await.unwrap()
}

/// Stops nginx when the test ends, passing or not.
pub struct Stop<'a>(pub &'a NginxController);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        let main = self.0.layout().main_conf_path();
        let _ = std::process::Command::new(NGINX)
            .args(["-q", "-c", &main, "-s", "stop"])
            .output();
    }
}
