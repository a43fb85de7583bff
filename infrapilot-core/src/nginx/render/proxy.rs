//! Proxy host rendering.

use super::server::{self, Frame};
use super::writer::{Writer, quote};
use crate::nginx::files::{HostFiles, HostKind, RenderedFile, names};
use crate::nginx::layout::Layout;
use crate::nginx::model::{
    AccessAction, AccessList, ProxyHost, ProxyOptions, Satisfy, SecurityHeaders,
};
use crate::values::{Scheme, Upstream};

/// Renders a proxy host's config file (and htpasswd file, if it has basic-auth users).
pub fn render_proxy_host(host: &ProxyHost, layout: &Layout) -> HostFiles {
    let mut w = Writer::new();
    let primary = host
        .domains
        .as_slice()
        .first()
        .map(|d| d.as_str())
        .unwrap_or("");
    w.comment(&format!(
        "Proxy host {} ({primary}). Rendered by InfraPilot; do not edit.",
        host.id
    ));
    if let Some(limit) = host.rate_limit {
        let zone = names::rate_limit_zone(host.id);
        let rate = format!("rate={}r/s", limit.requests_per_second());
        w.directive(
            "limit_req_zone",
            &["$binary_remote_addr", &format!("zone={zone}:1m"), &rate],
        );
        w.blank();
    }
    let frame = Frame {
        layout,
        kind: HostKind::Proxy,
        id: host.id,
        domains: &host.domains,
        ssl: &host.ssl,
    };
    server::servers(&mut w, &frame, &|w| body(w, host, layout));
    let mut files = vec![RenderedFile {
        path: names::host_conf(layout, HostKind::Proxy, host.id),
        contents: w.finish(),
    }];
    if let Some(list) = host.access_list.as_ref().filter(|l| !l.users.is_empty()) {
        files.push(RenderedFile {
            path: names::htpasswd(layout, host.id),
            contents: htpasswd(list),
        });
    }
    HostFiles {
        id: host.id,
        kind: HostKind::Proxy,
        files,
        required_files: host.required_files(layout),
    }
}

impl ProxyHost {
    /// The files this host's config refers to that the renderer does not produce: the
    /// certificate and key under the layout's cert dir. When one is missing the agent should
    /// leave the host out rather than let `nginx -t` fail for every host.
    pub fn required_files(&self, layout: &Layout) -> Vec<String> {
        server::required_files(layout, &self.ssl)
    }
}

fn body(w: &mut Writer, host: &ProxyHost, layout: &Layout) {
    security_headers(w, &host.headers);
    if let Some(limit) = host.rate_limit {
        let zone = format!("zone={}", names::rate_limit_zone(host.id));
        // nginx refuses `burst=0` ("invalid burst value"); leaving it out means the same.
        let burst = format!("burst={}", limit.burst());
        let mut args = vec![zone.as_str()];
        if limit.burst() > 0 {
            args.push(burst.as_str());
        }
        if limit.nodelay() {
            args.push("nodelay");
        }
        w.directive("limit_req", &args);
        w.directive("limit_req_status", &["429"]);
    }
    if let Some(list) = &host.access_list {
        access(w, list, &names::htpasswd(layout, host.id));
    } else if host.access_list_id.is_some() {
        // A shared list that was not resolved: fail closed.
        w.directive("deny", &["all"]);
    }
    w.block("location /", |w| proxy(w, 0, &host.upstream, &host.proxy));
    for (i, location) in host.locations.as_slice().iter().enumerate() {
        w.block(&format!("location {}", location.path.as_str()), |w| {
            proxy(w, i + 1, &location.upstream, &location.options);
        });
    }
}

fn security_headers(w: &mut Writer, headers: &SecurityHeaders) {
    if let Some(frame) = headers.frame_options {
        w.directive("add_header", &["X-Frame-Options", frame.as_str(), "always"]);
    }
    if headers.content_type_nosniff {
        w.directive(
            "add_header",
            &["X-Content-Type-Options", "nosniff", "always"],
        );
    }
    if let Some(policy) = headers.referrer_policy {
        w.directive(
            "add_header",
            &["Referrer-Policy", policy.as_str(), "always"],
        );
    }
    if let Some(csp) = &headers.content_security_policy {
        w.directive(
            "add_header",
            &["Content-Security-Policy", &quote(csp.as_str()), "always"],
        );
    }
}

fn access(w: &mut Writer, list: &AccessList, htpasswd: &str) {
    let satisfy = match list.satisfy {
        Satisfy::Any => "any",
        Satisfy::All => "all",
    };
    w.directive("satisfy", &[satisfy]);
    for rule in &list.rules {
        let action = match rule.action {
            AccessAction::Allow => "allow",
            AccessAction::Deny => "deny",
        };
        w.directive(action, &[rule.cidr.as_str()]);
    }
    if list.rules.iter().any(|r| r.action == AccessAction::Allow) {
        w.directive("deny", &["all"]);
    }
    if !list.users.is_empty() {
        w.directive("auth_basic", &["\"Restricted\""]);
        w.directive("auth_basic_user_file", &[htpasswd]);
    }
}

fn htpasswd(list: &AccessList) -> String {
    list.users
        .iter()
        .map(|u| format!("{}:{}\n", u.username.as_str(), u.password_hash.as_str()))
        .collect()
}

fn proxy(w: &mut Writer, n: usize, upstream: &Upstream, options: &ProxyOptions) {
    let var = names::upstream_variable(n);
    let (scheme, address, path) = match upstream {
        Upstream::Url {
            scheme,
            host,
            port,
            path,
        } => (
            *scheme,
            format!("{host}:{port}"),
            path.as_ref().map(|p| p.as_str()),
        ),
        Upstream::Container { name, port } => {
            (Scheme::Http, format!("{}:{port}", name.as_str()), None)
        }
    };
    // A variable in proxy_pass makes nginx resolve the name per request (with the http-level
    // resolver) instead of at start, so an upstream that is down does not stop nginx.
    w.directive("set", &[&format!("${var}"), &quote(&address)]);
    let target = match path {
        None => format!("{}://${var}", scheme.as_str()),
        Some(path) => format!("{}://${var}{path}$request_uri", scheme.as_str()),
    };
    w.directive("proxy_pass", &[&target]);
    if scheme == Scheme::Https {
        w.directive("proxy_ssl_server_name", &["on"]);
    }
    w.directive("proxy_http_version", &["1.1"]);
    w.directive("proxy_set_header", &["Host", "$host"]);
    w.directive("proxy_set_header", &["X-Real-IP", "$remote_addr"]);
    w.directive(
        "proxy_set_header",
        &["X-Forwarded-For", "$proxy_add_x_forwarded_for"],
    );
    w.directive("proxy_set_header", &["X-Forwarded-Proto", "$scheme"]);
    w.directive("proxy_set_header", &["X-Forwarded-Host", "$host"]);
    if options.websocket {
        w.directive("proxy_set_header", &["Upgrade", "$http_upgrade"]);
        w.directive("proxy_set_header", &["Connection", "$connection_upgrade"]);
    } else {
        w.directive("proxy_set_header", &["Connection", "\"\""]);
    }
    let t = options.timeouts;
    w.directive("proxy_connect_timeout", &[&format!("{}s", t.connect.get())]);
    w.directive("proxy_read_timeout", &[&format!("{}s", t.read.get())]);
    w.directive("proxy_send_timeout", &[&format!("{}s", t.send.get())]);
    if let Some(size) = options.client_max_body_size {
        w.directive("client_max_body_size", &[&size.as_nginx()]);
    }
}
