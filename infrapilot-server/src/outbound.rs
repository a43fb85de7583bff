//! The one client for calls to addresses a tenant chose (alert channels today; SSO providers,
//! forwarding destinations and billing later).
//!
//! [`Outbound`] holds the core's [`OutboundPolicy`] and an HTTP client built around it:
//!
//! - every host name is resolved by `GuardedResolver`, which drops each address the policy
//!   refuses and fails when none is left, so the client connects only to addresses that were
//!   checked — the check happens at connect time, and a name that resolves to a public address
//!   once and an internal one the next time (DNS rebinding) gains nothing;
//! - an IP literal in a URL (which the client connects to without resolving) is checked by
//!   [`Outbound::check_url`] before the request;
//! - redirects are never followed, no proxy from the environment is used, and every call has a
//!   connect timeout and a total timeout.
//!
//! Clients that connect by themselves (SMTP) resolve through [`Outbound::resolve`] and connect
//! to the address it returns. What a remote answered is reported as its status and a short
//! reason, never its body (see `alerts::channels`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use infrapilot_core::outbound::{OutboundPolicy, OutboundRefusal};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Url, redirect};

/// The longest an outbound HTTP call may take, connect and answer included.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an outbound call did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// The destination is not allowed.
    #[error(transparent)]
    Refused(#[from] OutboundRefusal),
    /// The name did not resolve.
    #[error("{host} did not resolve: {message}")]
    Unresolved {
        /// The host name.
        host: String,
        /// The resolver's words.
        message: String,
    },
}

/// The outbound client (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    policy: Arc<OutboundPolicy>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("allow", &self.policy.to_string())
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// A client that enforces `policy`. Fails only when the TLS backend cannot start; there is
    /// no fallback to an unguarded client.
    pub fn new(policy: OutboundPolicy) -> Result<Outbound, reqwest::Error> {
        let policy = Arc::new(policy);
        let resolver = Arc::new(GuardedResolver {
            policy: Arc::clone(&policy),
        });
        let http = reqwest::Client::builder()
            .dns_resolver(resolver)
            .redirect(redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(HTTP_TIMEOUT)
            .build()?;
        Ok(Outbound { policy, http })
    }

    /// The policy.
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// The HTTP client. Check a URL with [`Outbound::check_url`] before each request.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Refuses a URL whose host is an IP literal the policy refuses, or a metadata service's
    /// name; other names are checked when the client resolves them.
    pub fn check_url(&self, url: &Url) -> Result<(), OutboundRefusal> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.policy.check(ip.into()),
            Some(url::Host::Ipv6(ip)) => self.policy.check(ip.into()),
            Some(url::Host::Domain(name)) => self.policy.check_name(name),
            None => Ok(()),
        }
    }

    /// Resolves `host` (a name or an IP literal) and returns the first address the policy
    /// allows, for clients that connect by themselves.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, OutboundError> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
            self.policy.check(ip)?;
            return Ok(SocketAddr::new(ip, port));
        }
        self.policy.check_name(host)?;
        let addresses = allowed(&self.policy, host, port).await?;
        addresses
            .into_iter()
            .next()
            .ok_or_else(|| OutboundError::Unresolved {
                host: host.to_owned(),
                message: "no address".to_owned(),
            })
    }
}

/// Resolves `host`, keeping the addresses `policy` allows; fails with the first refusal when
/// none is left.
async fn allowed(
    policy: &OutboundPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, OutboundError> {
    let resolved =
        tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| OutboundError::Unresolved {
                host: host.to_owned(),
                message: e.to_string(),
            })?;
    let mut kept = Vec::new();
    let mut refusal = None;
    for address in resolved {
        match policy.check(address.ip()) {
            Ok(()) => kept.push(address),
            Err(e) => {
                refusal.get_or_insert(e);
            }
        }
    }
    match (kept.is_empty(), refusal) {
        (true, Some(refusal)) => Err(OutboundError::Refused(refusal)),
        _ => Ok(kept),
    }
}

/// The HTTP client's resolver: only addresses the policy allows come out of it.
struct GuardedResolver {
    policy: Arc<OutboundPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            policy.check_name(name.as_str())?;
            let kept = allowed(&policy, name.as_str(), 0).await?;
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

/// The outbound refusal somewhere in `error`'s chain of causes, if the call was refused.
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a OutboundRefusal> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refusal) = e.downcast_ref::<OutboundRefusal>() {
            return Some(refusal);
        }
        if let Some(OutboundError::Refused(refusal)) = e.downcast_ref::<OutboundError>() {
            return Some(refusal);
        }
        current = e.source();
    }
    None
}
