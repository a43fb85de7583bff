//! The rendered file set and the deterministic names in it.

use serde::{Deserialize, Serialize};

use super::layout::Layout;
use crate::ids::ProxyHostId;

/// One file to write: an absolute path under one of the [`Layout`]'s directories and its
/// complete contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RenderedFile {
    /// The absolute path.
    pub path: String,
    /// The whole file.
    pub contents: String,
}

/// Whether a host proxies or redirects.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    /// A [`super::ProxyHost`].
    Proxy,
    /// A [`super::RedirectionHost`].
    Redirection,
}

impl HostKind {
    fn prefix(self) -> &'static str {
        match self {
            HostKind::Proxy => "proxy",
            HostKind::Redirection => "redirect",
        }
    }
}

/// The files of one host. Leaving all of them out (quarantining the host) or replacing them
/// touches no other host: each host's config carries its own rate-limit zone, htpasswd file
/// and logs, and `nginx.conf` includes `hosts/*.conf` by pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostFiles {
    /// Which host.
    pub id: ProxyHostId,
    /// Proxy or redirection host.
    pub kind: HostKind,
    /// The config file first, then the htpasswd file if the host has basic-auth users.
    pub files: Vec<RenderedFile>,
    /// Files the config refers to that the renderer does not produce (certificate and key);
    /// nginx refuses the whole config if one is missing, so the agent quarantines the host.
    pub required_files: Vec<String>,
}

/// Everything one nginx instance needs, in a deterministic order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfigSet {
    /// `<conf_dir>/nginx.conf`.
    pub main: RenderedFile,
    /// Snippets and pages every host relies on: `shared/*.conf` (http level), `server/*.conf`
    /// (included in every server block) and `pages/*.html`.
    pub shared: Vec<RenderedFile>,
    /// The hosts, proxy hosts first, each group in the order given.
    pub hosts: Vec<HostFiles>,
}

impl ConfigSet {
    /// Every file: main, shared, then each host's.
    pub fn files(&self) -> impl Iterator<Item = &RenderedFile> {
        std::iter::once(&self.main)
            .chain(self.shared.iter())
            .chain(self.hosts.iter().flat_map(|h| h.files.iter()))
    }
}

/// The deterministic names the renderer uses, exposed so the agent can find (and remove) a
/// host's files and logs.
pub mod names {
    use super::{HostKind, Layout, ProxyHostId};

    /// `<conf_dir>/hosts/proxy-<id>.conf` or `<conf_dir>/hosts/redirect-<id>.conf`.
    pub fn host_conf(layout: &Layout, kind: HostKind, id: ProxyHostId) -> String {
        format!(
            "{}/hosts/{}-{id}.conf",
            layout.conf_dir.as_str(),
            kind.prefix()
        )
    }

    /// `<htpasswd_dir>/proxy-<id>.htpasswd`.
    pub fn htpasswd(layout: &Layout, id: ProxyHostId) -> String {
        layout.htpasswd_dir.join(&format!("proxy-{id}.htpasswd"))
    }

    /// `<log_dir>/<kind>-<id>.access.log`.
    pub fn access_log(layout: &Layout, kind: HostKind, id: ProxyHostId) -> String {
        layout
            .log_dir
            .join(&format!("{}-{id}.access.log", kind.prefix()))
    }

    /// The log stream an agent ships a host's access log on: `nginx:<kind>-<id>.access`
    /// (its access log's file name without `.log`).
    pub fn access_log_stream(kind: HostKind, id: ProxyHostId) -> String {
        format!("nginx:{}-{id}.access", kind.prefix())
    }

    /// `<log_dir>/<kind>-<id>.error.log`.
    pub fn error_log(layout: &Layout, kind: HostKind, id: ProxyHostId) -> String {
        layout
            .log_dir
            .join(&format!("{}-{id}.error.log", kind.prefix()))
    }

    /// The `limit_req` zone of a proxy host: `rl_<id without dashes>`.
    pub fn rate_limit_zone(id: ProxyHostId) -> String {
        format!("rl_{}", id.as_uuid().simple())
    }

    /// The variable holding the address of a host's upstream number `n` (0 is the host's own,
    /// 1.. its custom locations): `ip_upstream_<n>`.
    pub fn upstream_variable(n: usize) -> String {
        format!("ip_upstream_{n}")
    }
}
