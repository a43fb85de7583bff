//! Desired state: what the server wants an agent to run, and what the agent reports back.
//!
//! The server keeps one revision per agent, raised by every change. The agent persists the
//! last state it received with its revision, applies it (idempotently, so a replay is
//! harmless), reports its revision when it connects, and keeps running it while the server is
//! away.

use serde::{Deserialize, Serialize};

use crate::acme::{AcmeSettings, CertificateRecord};
use crate::ids::{CertificateId, ProxyHostId};
use crate::nginx::upstreams::UpstreamNetworkStatus;
use crate::nginx::{HostKind, Layout, Site};

/// The declarative configuration of one agent at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// Raised by every change on the server; never reused.
    pub revision: u64,
    /// The proxy hosts (and default server) nginx should serve.
    pub proxy: Site,
    /// The certificates the hosts use, written to the layout's `cert_dir` before nginx sees
    /// the hosts.
    #[serde(default)]
    pub certificates: Vec<CertificateFiles>,
    /// Where the agent obtains the certificates of `lets_encrypt` hosts; `None` leaves such
    /// hosts quarantined until it is configured.
    #[serde(default)]
    pub acme: Option<AcmeSettings>,
}

/// One certificate's files, as the agent writes them (`<cert_dir>/<id>/fullchain.pem` and
/// `privkey.pem`, the key readable by its owner only).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateFiles {
    /// The certificate's id (hosts refer to it).
    pub id: CertificateId,
    /// The certificate followed by its chain, PEM.
    pub fullchain: String,
    /// The private key, PEM.
    pub privkey: String,
}

impl std::fmt::Debug for CertificateFiles {
    /// Never prints the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateFiles")
            .field("id", &self.id)
            .field("fullchain", &format_args!("{} bytes", self.fullchain.len()))
            .field("privkey", &"<redacted>")
            .finish()
    }
}

/// How an apply went on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// The revision that was applied.
    pub revision: u64,
    /// Every host of the state, in order.
    pub hosts: Vec<HostStatus>,
    /// Whether nginx was reloaded or started (false when nothing changed).
    pub reloaded: bool,
    /// Why the apply failed as a whole (the shared configuration failed `nginx -t`, the reload
    /// failed, nginx is not installed): nginx's own words. The last good configuration keeps
    /// being served.
    pub error: Option<String>,
    /// The Let's Encrypt certificates the agent manages for these hosts.
    #[serde(default)]
    pub certificates: Vec<ManagedCertificateStatus>,
    /// How nginx reaches each container the hosts forward to.
    #[serde(default)]
    pub networks: Vec<UpstreamNetworkStatus>,
    /// Where the agent's nginx keeps its files and which ports it serves on, so the server's
    /// config preview shows what this agent's nginx is really given (absent from agents that
    /// predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
}

/// One Let's Encrypt certificate as the agent holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedCertificateStatus {
    /// The id its hosts name.
    pub id: CertificateId,
    /// The names it must cover.
    pub domains: Vec<String>,
    /// What the agent has: the stored certificate, the failures since, the next attempt.
    pub record: CertificateRecord,
}

impl ApplyReport {
    /// The hosts that were left out, with the reason.
    pub fn quarantined(&self) -> impl Iterator<Item = &HostStatus> {
        self.hosts
            .iter()
            .filter(|h| h.state == HostState::Quarantined)
    }
}

/// One host's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// Which host.
    pub id: ProxyHostId,
    /// Proxy or redirection host.
    pub kind: HostKind,
    /// Served, left out, or not applied.
    pub state: HostState,
    /// Why the host is not served: nginx's own message, or the missing file.
    pub error: Option<String>,
}

/// Whether a host is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Its configuration is live.
    Applied,
    /// Its configuration could not load and was left out; every other host is served.
    Quarantined,
    /// The apply failed as a whole; the host's last good configuration (if any) is served.
    Failed,
}

impl HostState {
    /// The state's name, as stored and shown (`applied`, `quarantined`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Applied => "applied",
            HostState::Quarantined => "quarantined",
            HostState::Failed => "failed",
        }
    }
}

/// One request the agent sends through its own nginx to check a host (`GET path` with
/// `Host: domain`, over HTTPS when `https`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCheck {
    /// The host's name, sent as `Host` (and SNI).
    pub domain: String,
    /// Whether the request goes to nginx's HTTPS port.
    pub https: bool,
    /// The path requested: starts with `/`, visible ASCII only, at most 1,024 bytes.
    pub path: String,
}

impl HostCheck {
    /// Why the check cannot be sent as an HTTP request line, if it cannot: the field and the
    /// reason (nothing reaches the request unescaped).
    pub fn invalid(&self) -> Option<(&'static str, &'static str)> {
        let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if !self.path.starts_with('/') || self.path.len() > 1024 || !visible(&self.path) {
            return Some((
                "path",
                "must start with / and hold at most 1024 visible ASCII characters",
            ));
        }
        if self.domain.is_empty() || self.domain.len() > 253 || !visible(&self.domain) {
            return Some(("domain", "must be a host name"));
        }
        None
    }
}

/// What the agent saw when it checked a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCheckResult {
    /// The HTTP status nginx answered with, if it answered.
    pub status: Option<u16>,
    /// From connecting to the end of the answer, in milliseconds.
    pub latency_ms: u64,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
    /// The certificate nginx presented (HTTPS), as read by the agent.
    pub certificate: Option<ServedCertificate>,
    /// Why there is no answer (connection refused, handshake failed, timeout).
    pub error: Option<String>,
}

/// A certificate as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedCertificate {
    /// Its DNS names.
    pub names: Vec<String>,
    /// Its issuer's distinguished name.
    pub issuer: String,
    /// When it expires (Unix seconds).
    pub not_after: i64,
}

#[cfg(test)]
mod check_tests {
    use super::HostCheck;

    #[test]
    fn nothing_can_break_out_of_the_request_line() {
        let check = |domain: &str, path: &str| {
            HostCheck {
                domain: domain.into(),
                https: false,
                path: path.into(),
            }
            .invalid()
            .map(|(field, _)| field)
        };
        assert_eq!(check("app.example.com", "/health?x=1"), None);
        assert_eq!(check("app.example.com", "/a b"), Some("path"));
        assert_eq!(check("app.example.com", "/a\r\nHost: evil"), Some("path"));
        assert_eq!(check("app.example.com", "health"), Some("path"));
        assert_eq!(check("app.example.com\r\nX: y", "/"), Some("domain"));
        assert_eq!(check("", "/"), Some("domain"));
    }
}
