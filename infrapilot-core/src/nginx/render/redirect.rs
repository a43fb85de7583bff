//! Redirection host rendering.

use super::server::{self, Frame};
use super::writer::Writer;
use crate::nginx::files::{HostFiles, HostKind, RenderedFile, names};
use crate::nginx::layout::Layout;
use crate::nginx::model::{RedirectionHost, TargetScheme};

/// Renders a redirection host's config file.
pub fn render_redirection_host(host: &RedirectionHost, layout: &Layout) -> HostFiles {
    let mut w = Writer::new();
    let primary = host
        .domains
        .as_slice()
        .first()
        .map(|d| d.as_str())
        .unwrap_or("");
    w.comment(&format!(
        "Redirection host {} ({primary}). Rendered by InfraPilot; do not edit.",
        host.id
    ));
    let frame = Frame {
        layout,
        kind: HostKind::Redirection,
        id: host.id,
        domains: &host.domains,
        ssl: &host.ssl,
    };
    let scheme = match host.target_scheme {
        TargetScheme::Keep => "$scheme",
        TargetScheme::Http => "http",
        TargetScheme::Https => "https",
    };
    let path = if host.preserve_path {
        "$request_uri"
    } else {
        ""
    };
    let target = format!("{scheme}://{}{path}", host.target.as_str());
    let code = host.status.code().to_string();
    server::servers(&mut w, &frame, &|w| {
        w.block("location /", |w| w.directive("return", &[&code, &target]));
    });
    HostFiles {
        id: host.id,
        kind: HostKind::Redirection,
        files: vec![RenderedFile {
            path: names::host_conf(layout, HostKind::Redirection, host.id),
            contents: w.finish(),
        }],
        required_files: host.required_files(layout),
    }
}

impl RedirectionHost {
    /// The files this host's config refers to that the renderer does not produce (its
    /// certificate and key, if it has TLS).
    pub fn required_files(&self, layout: &Layout) -> Vec<String> {
        server::required_files(layout, &self.ssl)
    }
}
