use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::{ValueError, string_value_serde};

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`).
///
/// A bare address is read as a single-host network (`/32` or `/128`). An address with host
/// bits set under its prefix (`10.0.0.1/8`) is refused with the network it probably meant,
/// because nginx would silently widen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
    text: CidrText,
}

/// The canonical text, kept so `as_str` can hand out a `&str` (at most 43 bytes for IPv6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct CidrText {
    len: u8,
    bytes: [u8; 43],
}

impl fmt::Debug for CidrText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CidrText {
    fn new(s: &str) -> Self {
        let mut bytes = [0u8; 43];
        let len = s.len().min(43);
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        Self {
            len: len as u8,
            bytes,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare address.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: String| ValueError::new("cidr", input, reason);
        let (addr, prefix) = match input.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (input, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| err("is not an IPv4 or IPv6 address (expected e.g. 10.0.0.0/8)".into()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(err(format!(
                        "the prefix length must be a number from 0 to {max}"
                    )));
                }
            },
        };
        let network = mask(addr, prefix);
        if network != addr {
            return Err(err(format!(
                "has host bits set under /{prefix}; the network is {network}/{prefix}"
            )));
        }
        Ok(Self {
            addr,
            prefix,
            text: CidrText::new(&format!("{addr}/{prefix}")),
        })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }

    /// The canonical `ADDR/PREFIX` text.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    Cidr,
    "Cidr",
    "An IP network in CIDR notation, e.g. 10.0.0.0/8"
);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().as_str(), "10.0.0.0/8");
        assert_eq!(
            Cidr::parse("192.168.1.7").unwrap().as_str(),
            "192.168.1.7/32"
        );
        assert_eq!(
            Cidr::parse("2001:db8::/32").unwrap().as_str(),
            "2001:db8::/32"
        );
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().as_str(), "0.0.0.0/0");
        let e = Cidr::parse("10.0.0.1/8").unwrap_err();
        assert!(e.reason().contains("10.0.0.0/8"), "{e}");
        assert!(
            Cidr::parse("10.0.0.0/33")
                .unwrap_err()
                .reason()
                .contains("0 to 32")
        );
        assert!(Cidr::parse("10.0.0.0/+8").is_err());
        assert!(Cidr::parse("all").is_err());
        assert!(Cidr::parse("10.0.0.0/8; allow all").is_err());
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
    }

    proptest! {
        #[test]
        fn masked_networks_round_trip(a in any::<u32>(), p in 0u8..=32) {
            let net = mask(IpAddr::V4(a.into()), p);
            let c = Cidr::parse(&format!("{net}/{p}")).unwrap();
            prop_assert_eq!(Cidr::parse(c.as_str()).unwrap(), c);
            prop_assert!(c.contains(net));
        }

        #[test]
        fn v6_round_trips(a in any::<u128>(), p in 0u8..=128) {
            let net = mask(IpAddr::V6(a.into()), p);
            let c = Cidr::parse(&format!("{net}/{p}")).unwrap();
            prop_assert_eq!(c.as_str().parse::<Cidr>().unwrap(), c);
        }
    }
}
