//! Snapshot tests of representative hosts. Run with `UPDATE_SNAPSHOTS=1` to accept changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod nginx_support;

use infrapilot_core::nginx::*;
use nginx_support::*;

const ROOT: &str = "/srv/infrapilot";

fn check_host(name: &str, host: &ProxyHost) {
    let files = render_proxy_host(host, &layout(ROOT));
    for (i, file) in files.files.iter().enumerate() {
        let suffix = if i == 0 { "conf" } else { "htpasswd" };
        assert_snapshot(&format!("{name}.{suffix}"), &file.contents);
    }
    // A snapshot must also be well-formed config text.
    structure(&files.files[0].contents).unwrap();
}

#[test]
fn plain_http_host() {
    check_host("plain", &plain_host());
}

#[test]
fn lets_encrypt_force_https_hsts_http2_host() {
    check_host("tls", &tls_host());
}

#[test]
fn custom_locations_host() {
    check_host("locations", &locations_host());
}

#[test]
fn access_list_host() {
    check_host("access_list", &access_host());
}

#[test]
fn rate_limited_host() {
    check_host("rate_limit", &rate_limit_host());
}

#[test]
fn websocket_host_snapshot() {
    check_host("websocket", &websocket_host());
}

#[test]
fn redirection_host_snapshot() {
    let files = render_redirection_host(&redirect_host(), &layout(ROOT));
    assert_eq!(files.files.len(), 1);
    assert_snapshot("redirect.conf", &files.files[0].contents);
}

#[test]
fn default_server_and_shared_snippets() {
    let mut all = String::new();
    for file in render_shared(&default_server(), &layout(ROOT)) {
        all.push_str(&format!("=== {}\n{}", file.path, file.contents));
    }
    assert_snapshot("shared.txt", &all);
}

#[test]
fn main_conf() {
    let mut l = layout(ROOT);
    l.ipv6 = false;
    l.resolvers = Resolvers::new(vec![
        Resolver::parse("127.0.0.11").unwrap(),
        Resolver::parse("[fd00::53]:5353").unwrap(),
    ])
    .unwrap();
    let main = render_main(&l);
    assert_eq!(main.path, "/srv/infrapilot/nginx.conf");
    assert_snapshot("nginx.conf", &main.contents);
}

#[test]
fn a_shared_access_list_left_unresolved_denies_everyone() {
    let mut host = plain_host();
    host.access_list_id = Some(infrapilot_core::ids::AccessListId::from_uuid(
        uuid::Uuid::from_u128(9),
    ));
    let files = render_proxy_host(&host, &layout(ROOT));
    let conf = &files.files[0].contents;
    assert!(conf.contains("deny all;"), "{conf}");
    structure(conf).unwrap();
    // Resolved, it is the list's own rules.
    host.access_list = access_host().access_list;
    let conf = render_proxy_host(&host, &layout(ROOT)).files[0]
        .contents
        .clone();
    assert!(conf.contains("allow 10.0.0.0/8;"), "{conf}");
}
