//! Agents: the gRPC endpoint agents dial (enrollment, the session stream, certificate
//! renewal), and the hub that holds the live sessions and routes commands to them.
//!
//! An agent's stream lives on one server replica. The hub keeps, per connected agent, the
//! sender half of its outgoing stream and the pending commands by request id; a command waits
//! for its reply with a deadline. An agent is **online** only while a replica holds its stream
//! and its last heartbeat is recent ([`is_online`]), so a dead agent (or a dead replica) is
//! never shown as online.
//!
//! In the community edition the server also runs a [`builtin`] agent in-process.

pub mod builtin;
mod hub;
mod identity;
mod relay;
mod relay_stream;
mod service;
mod tls;

pub use hub::{AgentHub, CommandError, CommandInputSender, CommandStream, StreamEvent};
pub use identity::{AgentIdentity, identity_from_der};
pub use relay::{RelayWaiters, listen as listen_for_relays, open_stream, send_command};
pub use relay_stream::RelayStreams;
pub use service::AgentEndpoint;
pub use tls::serve;

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod logs_tests;

/// Whether an agent counts as online: a replica holds its stream and it was heard from within
/// two heartbeat intervals plus ten seconds.
pub fn is_online(
    connected_replica: Option<&str>,
    last_seen_at: Option<i64>,
    now: i64,
    heartbeat: std::time::Duration,
) -> bool {
    let grace = i64::try_from(heartbeat.as_micros())
        .unwrap_or(i64::MAX / 4)
        .saturating_mul(2)
        + 10_000_000;
    connected_replica.is_some() && last_seen_at.is_some_and(|t| now - t <= grace)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn online_needs_a_stream_and_a_recent_heartbeat() {
        let hb = Duration::from_secs(30);
        let now = 1_000_000_000_000;
        assert!(is_online(Some("r1"), Some(now - 5_000_000), now, hb));
        assert!(is_online(Some("r1"), Some(now - 69_000_000), now, hb));
        assert!(
            !is_online(Some("r1"), Some(now - 71_000_000), now, hb),
            "missed heartbeats"
        );
        assert!(!is_online(None, Some(now), now, hb), "no stream");
        assert!(!is_online(Some("r1"), None, now, hb));
    }
}
