//! The server-block skeleton every host shares: listens, names, logs, TLS, ACME.

use super::writer::{Writer, quote};
use crate::ids::ProxyHostId;
use crate::nginx::files::{HostKind, names};
use crate::nginx::layout::Layout;
use crate::nginx::model::{DomainList, SslMode, Tls};
use crate::nginx::values::ACME_PREFIX;

/// What the skeleton needs to know about a host.
pub(crate) struct Frame<'a> {
    pub(crate) layout: &'a Layout,
    pub(crate) kind: HostKind,
    pub(crate) id: ProxyHostId,
    pub(crate) domains: &'a DomainList,
    pub(crate) ssl: &'a SslMode,
}

/// Writes the host's server blocks; `body` fills the block that serves the content.
///
/// - No TLS: one block on port 80.
/// - TLS with force-HTTPS: a port-80 block that serves ACME challenges and redirects the rest,
///   and a port-443 block with the content.
/// - TLS without force-HTTPS: one block on both ports.
///
/// The ACME challenge path is served on port 80 in every case.
pub(crate) fn servers(w: &mut Writer, frame: &Frame<'_>, body: &dyn Fn(&mut Writer)) {
    match frame.ssl.tls() {
        None => w.block("server", |w| {
            listen_http(w, frame.layout);
            common(w, frame);
            acme_location(w, frame.layout);
            body(w);
        }),
        Some(tls) if tls.force_https => {
            w.block("server", |w| {
                listen_http(w, frame.layout);
                common(w, frame);
                acme_location(w, frame.layout);
                w.block("location /", |w| {
                    w.directive("return", &["301", "https://$host$request_uri"]);
                });
            });
            w.blank();
            w.block("server", |w| {
                listen_https(w, frame.layout, tls);
                common(w, frame);
                tls_directives(w, frame.layout, tls);
                body(w);
            });
        }
        Some(tls) => w.block("server", |w| {
            listen_http(w, frame.layout);
            listen_https(w, frame.layout, tls);
            common(w, frame);
            tls_directives(w, frame.layout, tls);
            acme_location(w, frame.layout);
            body(w);
        }),
    }
}

/// The files a host's config refers to but the renderer does not write.
pub(crate) fn required_files(layout: &Layout, ssl: &SslMode) -> Vec<String> {
    match ssl.tls() {
        None => Vec::new(),
        Some(tls) => {
            let paths = layout.certificate_paths(tls.certificate);
            vec![paths.fullchain, paths.privkey]
        }
    }
}

fn listen_http(w: &mut Writer, layout: &Layout) {
    let port = layout.http_port.to_string();
    w.directive("listen", &[&port]);
    if layout.ipv6 {
        w.directive("listen", &[&format!("[::]:{port}")]);
    }
}

fn listen_https(w: &mut Writer, layout: &Layout, tls: &Tls) {
    let port = layout.https_port.to_string();
    let v6 = format!("[::]:{port}");
    let mut args = vec![port.as_str(), "ssl"];
    if tls.http2 {
        args.push("http2");
    }
    w.directive("listen", &args);
    if layout.ipv6 {
        args[0] = &v6;
        w.directive("listen", &args);
    }
}

fn common(w: &mut Writer, frame: &Frame<'_>) {
    let names: Vec<&str> = frame
        .domains
        .as_slice()
        .iter()
        .map(|d| d.as_str())
        .collect();
    w.directive("server_name", &names);
    let access = names::access_log(frame.layout, frame.kind, frame.id);
    w.directive("access_log", &[&access, "infrapilot"]);
    let error = names::error_log(frame.layout, frame.kind, frame.id);
    w.directive("error_log", &[&error, "warn"]);
    let pages = frame.layout.conf_dir.join("server/error_pages.conf");
    w.directive("include", &[&pages]);
}

fn tls_directives(w: &mut Writer, layout: &Layout, tls: &Tls) {
    let paths = layout.certificate_paths(tls.certificate);
    w.directive("ssl_certificate", &[&paths.fullchain]);
    w.directive("ssl_certificate_key", &[&paths.privkey]);
    if let Some(hsts) = tls.hsts {
        let mut value = format!("max-age={}", hsts.max_age_seconds);
        if hsts.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if hsts.preload {
            value.push_str("; preload");
        }
        w.directive(
            "add_header",
            &["Strict-Transport-Security", &quote(&value), "always"],
        );
    }
}

pub(super) fn acme_location(w: &mut Writer, layout: &Layout) {
    w.block(&format!("location ^~ {ACME_PREFIX}"), |w| {
        w.directive("root", &[layout.acme_webroot.as_str()]);
        w.directive("default_type", &["text/plain"]);
        w.directive("auth_basic", &["off"]);
        w.directive("allow", &["all"]);
        w.directive("try_files", &["$uri", "=404"]);
    });
}
