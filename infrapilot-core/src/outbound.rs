//! Which addresses the control plane may call when a tenant chose the destination.
//!
//! Alert channels (and later SSO providers, forwarding destinations, billing) make the server
//! call an address a tenant typed. Such a call must never reach the server's own network:
//! loopback, private and shared ranges, link-local (where cloud metadata lives,
//! `169.254.169.254` and `fd00:ec2::254`), unique-local, unspecified, multicast, documentation
//! and reserved ranges. [`OutboundPolicy::check`] answers for one address, after the shell has
//! resolved the name — the shell checks every address it is about to connect to, so a name that
//! resolves differently the second time (DNS rebinding) gains nothing. IPv4 addresses carried
//! inside IPv6 (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged
//! by the IPv4 address they carry. An explicit allow-list (empty by default) opens internal
//! networks for self-hosted installations whose receivers live there.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::values::{Cidr, ValueError};

/// Host names that are cloud metadata services whatever they resolve to.
const METADATA_NAMES: [&str; 3] = ["metadata.google.internal", "metadata.goog", "metadata"];

/// Why an outbound call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundRefusal {
    /// The address is internal and not on the allow-list.
    #[error(
        "{address} is {kind}: outbound calls go only to public addresses (an administrator can open internal networks with INFRAPILOT_OUTBOUND_ALLOW)"
    )]
    Internal {
        /// The address refused.
        address: IpAddr,
        /// What kind of address it is (`a loopback address`, …).
        kind: &'static str,
    },
    /// The host name is a cloud metadata service.
    #[error("{name} is a cloud metadata service; outbound calls never go there")]
    Metadata {
        /// The name refused.
        name: String,
    },
}

/// The outbound address policy: internal addresses are refused unless an allow-list network
/// holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allow: Vec<Cidr>,
}

impl OutboundPolicy {
    /// A policy that opens the networks in `allow` (and refuses every other internal address).
    pub fn new(allow: Vec<Cidr>) -> Self {
        OutboundPolicy { allow }
    }

    /// Parses a comma-separated list of networks (`10.0.0.0/8, 127.0.0.1/32`); an empty text
    /// is the default policy. Errors name `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, ValueError> {
        let allow = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Cidr::parse(s).map_err(|e| e.at(field)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OutboundPolicy { allow })
    }

    /// The networks opened.
    pub fn allowed(&self) -> &[Cidr] {
        &self.allow
    }

    /// Refuses `address` when it is internal and no allow-list network holds it.
    pub fn check(&self, address: IpAddr) -> Result<(), OutboundRefusal> {
        let canonical = canonical(address);
        let Some(kind) = internal_kind(canonical) else {
            return Ok(());
        };
        if self
            .allow
            .iter()
            .any(|net| net.contains(address) || net.contains(canonical))
        {
            return Ok(());
        }
        Err(OutboundRefusal::Internal {
            address: canonical,
            kind,
        })
    }

    /// Refuses a host name that names a cloud metadata service (before it is resolved; its
    /// addresses are checked too). Names are compared without case and without a final dot.
    pub fn check_name(&self, name: &str) -> Result<(), OutboundRefusal> {
        let normal = name.trim_end_matches('.').to_ascii_lowercase();
        if METADATA_NAMES.contains(&normal.as_str()) {
            return Err(OutboundRefusal::Metadata { name: normal });
        }
        Ok(())
    }
}

/// The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), or the address itself.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => embedded_v4(v6).map_or(address, IpAddr::V4),
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    // NAT64 well-known prefix 64:ff9b::/96.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    // 6to4 2002:AABB:CCDD::/48.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    // IPv4-compatible ::a.b.c.d (deprecated; still routed to the IPv4 address by some stacks).
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    None
}

/// What kind of internal address `address` is, or `None` for a public one.
pub fn internal_kind(address: IpAddr) -> Option<&'static str> {
    match canonical(address) {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "an unspecified address",
        (127, _, _) => "a loopback address",
        (10, _, _) | (192, 168, _) => "a private address",
        (172, 16..=31, _) => "a private address",
        (169, 254, _) => "a link-local address (cloud metadata lives here)",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved address",
        _ => return None,
    })
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    Some(match s[0] {
        0xfc00..=0xfdff => "a unique-local address (cloud metadata lives here too)",
        0xfe80..=0xfebf => "a link-local address",
        0xfec0..=0xfeff => "a site-local address",
        0xff00..=0xffff => "a multicast address",
        0x2001 if s[1] == 0x0db8 => "a documentation address",
        0x0100 if s[1..4] == [0, 0, 0] => "a discard address",
        // Everything else outside 2000::/3 is not globally routed.
        0x2000..=0x3fff => return None,
        _ => "a reserved address",
    })
}

impl fmt::Display for OutboundPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<&str> = self.allow.iter().map(Cidr::as_str).collect();
        f.write_str(&nets.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn every_internal_spelling_is_refused() {
        let policy = OutboundPolicy::default();
        for text in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "::127.0.0.1",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(policy.check(ip(text)).is_err(), "{text} must be refused");
        }
        for text in [
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "2606:4700:4700::1111",
        ] {
            assert!(policy.check(ip(text)).is_ok(), "{text} is public");
        }
        assert!(policy.check_name("metadata.google.internal.").is_err());
        assert!(policy.check_name("Metadata.Google.Internal").is_err());
        assert!(policy.check_name("hooks.example.com").is_ok());
    }

    #[test]
    fn the_allow_list_opens_exactly_its_networks() {
        let policy = OutboundPolicy::parse("allow", "127.0.0.0/8, 10.1.0.0/16").unwrap();
        assert!(policy.check(ip("127.0.0.1")).is_ok());
        assert!(policy.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(policy.check(ip("10.1.2.3")).is_ok());
        assert!(policy.check(ip("10.2.0.1")).is_err());
        assert!(policy.check(ip("169.254.169.254")).is_err());
        let err =
            OutboundPolicy::parse("INFRAPILOT_OUTBOUND_ALLOW", "10.0.0.0/8, nope").unwrap_err();
        assert_eq!(err.field(), "INFRAPILOT_OUTBOUND_ALLOW");
        assert_eq!(
            OutboundPolicy::parse("x", " ").unwrap(),
            OutboundPolicy::default()
        );
    }

    #[test]
    fn refusals_say_what_the_address_is() {
        let err = OutboundPolicy::default()
            .check(ip("::ffff:127.0.0.1"))
            .unwrap_err();
        assert_eq!(
            err,
            OutboundRefusal::Internal {
                address: ip("127.0.0.1"),
                kind: "a loopback address"
            }
        );
        assert!(err.to_string().contains("INFRAPILOT_OUTBOUND_ALLOW"));
    }

    proptest! {
        /// An IPv4 address and every IPv6 spelling that carries it get the same answer.
        #[test]
        fn carried_ipv4_is_judged_as_itself(raw in any::<u32>()) {
            let v4 = Ipv4Addr::from(raw);
            let policy = OutboundPolicy::default();
            let expected = policy.check(IpAddr::V4(v4)).is_ok();
            let o = v4.octets();
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([o[0], o[1]]), u16::from_be_bytes([o[2], o[3]]));
            for v6 in [v4.to_ipv6_mapped(), nat64] {
                prop_assert_eq!(policy.check(IpAddr::V6(v6)).is_ok(), expected);
            }
        }
    }
}
