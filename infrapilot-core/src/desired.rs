//! Desired state: what the server wants an agent to run, and what the agent reports back.
//!
//! The server keeps one revision per agent, raised by every change. The agent persists the
//! last state it received with its revision, applies it (idempotently, so a replay is
//! harmless), reports its revision when it connects, and keeps running it while the server is
//! away.

use serde::{Deserialize, Serialize};

use crate::acme::{AcmeSettings, CertificateRecord};
use crate::ids::{CertificateId, ProxyHostId};
use crate::nginx::{HostKind, Site};

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
