use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Domain, ValueError, string_value_serde};

/// Where a proxy host sends its traffic.
///
/// Either a URL (`http://app.internal:8080/base`) or a container on the same Docker host
/// (`container:web:8080`), which the agent resolves by joining nginx to one of the container's
/// networks. The textual form round-trips through [`Upstream::from_str`] and `Display`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// A URL with scheme, host, port and an optional base path.
    Url {
        /// `http` or `https`.
        scheme: Scheme,
        /// A DNS name or an IP address.
        host: UpstreamHost,
        /// The TCP port (defaults to the scheme's port when parsing).
        port: u16,
        /// The base path requests are forwarded under; `None` keeps the request's path.
        path: Option<UpstreamPath>,
    },
    /// A container on the agent's Docker host, reached over a shared network.
    Container {
        /// The container's name.
        name: ContainerName,
        /// The port the container listens on.
        port: u16,
    },
}

/// The scheme of a URL upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port used when a URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// The host part of a URL upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UpstreamHost {
    /// A DNS name (never a wildcard).
    Name(Domain),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address, written in brackets in URLs.
    Ipv6(Ipv6Addr),
}

impl fmt::Display for UpstreamHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamHost::Name(d) => f.write_str(d.as_str()),
            UpstreamHost::Ipv4(ip) => write!(f, "{ip}"),
            UpstreamHost::Ipv6(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// A URL path: starts with `/`, made only of unreserved characters, `/`, and percent escapes.
///
/// Characters that mean something to nginx (`;`, `{`, `}`, `#`, `$`, quotes, backslashes,
/// whitespace) and query strings are refused, so a path can be written into a config verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamPath(String);

impl UpstreamPath {
    /// Validates a path.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("path", input, reason);
        if !input.starts_with('/') {
            return Err(err("must start with '/'"));
        }
        if input.len() > 1024 {
            return Err(err("must be at most 1024 characters long"));
        }
        let bytes = input.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let ok = b.is_ascii_alphanumeric() || b"-._~/+=:@,!".contains(&b);
            if b == b'%' {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return Err(err("'%' must start a two-digit escape such as %20"));
                }
            } else if !ok {
                return Err(err(&format!(
                    "contains {:?}; only letters, digits, '-._~/+=:@,!' and %XX escapes are allowed",
                    char::from(b)
                )));
            }
        }
        Ok(Self(input.to_owned()))
    }

    /// The path as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UpstreamPath {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(UpstreamPath, "UpstreamPath", "A URL path starting with '/'");

/// A Docker container name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerName(String);

impl ContainerName {
    /// Validates a container name; a leading `/` (as Docker reports names) is dropped.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("container", input, reason);
        let name = input.strip_prefix('/').unwrap_or(input);
        let mut chars = name.chars();
        match chars.next() {
            None => return Err(err("must not be empty")),
            Some(c) if !c.is_ascii_alphanumeric() => {
                return Err(err("must start with a letter or digit"));
            }
            Some(_) => {}
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c))) {
            return Err(err(&format!(
                "contains {bad:?}; only letters, digits, '_', '.' and '-' are allowed"
            )));
        }
        if name.len() > 128 {
            return Err(err("must be at most 128 characters long"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name, without a leading `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerName {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(ContainerName, "ContainerName", "A Docker container name");

const FIELD: &str = "upstream";

impl Upstream {
    /// Parses `http[s]://host[:port][/path]` or `container:NAME:PORT`.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: String| ValueError::new(FIELD, input, reason);
        let inner = |e: ValueError| err(format!("{}: {}", e.field(), e.reason()));
        if let Some(rest) = input.strip_prefix("container:") {
            let (name, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| err("a container upstream is written container:NAME:PORT".into()))?;
            return Ok(Upstream::Container {
                name: ContainerName::parse(name).map_err(inner)?,
                port: parse_port(port).map_err(inner)?,
            });
        }
        let (scheme, rest) = if let Some(rest) = input.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = input.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            return Err(err(
                "must start with http:// or https:// (or be container:NAME:PORT)".into(),
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        if authority.contains('@') {
            return Err(err("must not contain credentials (user@host)".into()));
        }
        let (host, port) = split_host_port(authority).map_err(err)?;
        let host = parse_host(host).map_err(inner)?;
        let port = match port {
            Some(p) => parse_port(p).map_err(inner)?,
            None => scheme.default_port(),
        };
        let path = match path {
            None | Some("/") => None,
            Some(p) => Some(UpstreamPath::parse(p).map_err(inner)?),
        };
        Ok(Upstream::Url {
            scheme,
            host,
            port,
            path,
        })
    }

    /// The port traffic goes to.
    pub fn port(&self) -> u16 {
        match self {
            Upstream::Url { port, .. } | Upstream::Container { port, .. } => *port,
        }
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if authority.is_empty() {
        return Err("has no host".into());
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 address needs a closing ']'".to_owned())?;
        return match after {
            "" => Ok((ip, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((ip, Some(port))),
                None => Err("after ']' only ':PORT' may follow".into()),
            },
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn parse_host(host: &str) -> Result<UpstreamHost, ValueError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(match ip {
            IpAddr::V4(v4) => UpstreamHost::Ipv4(v4),
            IpAddr::V6(v6) => UpstreamHost::Ipv6(v6),
        });
    }
    let domain = Domain::parse(host).map_err(|e| e.at("host"))?;
    if domain.is_wildcard() {
        return Err(ValueError::new(
            "host",
            host,
            "an upstream host cannot be a wildcard",
        ));
    }
    Ok(UpstreamHost::Name(domain))
}

fn parse_port(port: &str) -> Result<u16, ValueError> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(ValueError::new(
            "port",
            port,
            "must be a number from 1 to 65535",
        )),
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Url {
                scheme,
                host,
                port,
                path,
            } => {
                write!(f, "{}://{host}:{port}", scheme.as_str())?;
                if let Some(path) = path {
                    f.write_str(path.as_str())?;
                }
                Ok(())
            }
            Upstream::Container { name, port } => write!(f, "container:{}:{port}", name.as_str()),
        }
    }
}

impl FromStr for Upstream {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Upstream {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Upstream {
    fn schema_name() -> String {
        "Upstream".to_owned()
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut schema = String::json_schema(generator).into_object();
        schema.metadata().description =
            Some("http[s]://host[:port][/path] or container:NAME:PORT".to_owned());
        schema.into()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        match (Upstream::parse(input), expected) {
            (Ok(u), Ok(want)) => assert_eq!(u.to_string(), want, "{input:?}"),
            (Err(e), Err(reason)) => {
                assert!(e.reason().contains(reason), "{input:?}: {e}");
                assert_eq!(e.field(), "upstream");
            }
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parses_urls_and_containers() {
        check("http://app:8080", Ok("http://app:8080"));
        check("https://App.Internal", Ok("https://app.internal:443"));
        check(
            "http://10.0.0.5:3000/api/v1",
            Ok("http://10.0.0.5:3000/api/v1"),
        );
        check("http://[::1]:9000/", Ok("http://[::1]:9000"));
        check("container:web-1:80", Ok("container:web-1:80"));
        check("container:/web:80", Ok("container:web:80"));
    }

    #[test]
    fn refuses_with_reasons() {
        check("ftp://a", Err("http://"));
        check("http://", Err("no host"));
        check("http://a:0", Err("1 to 65535"));
        check("http://a:99999", Err("1 to 65535"));
        check("http://a:+80", Err("1 to 65535"));
        check("http://u:p@a", Err("credentials"));
        check("http://a/b;c", Err("';'"));
        check("http://a/b?x=1", Err("'?'"));
        check("http://a/$host", Err("'$'"));
        check("http://a/%zz", Err("escape"));
        check("http://*.a.com", Err("wildcard"));
        check("http://a b", Err("whitespace"));
        check("container:web", Err("container:NAME:PORT"));
        check("container:-x:80", Err("start with"));
        check("container:a{b:80", Err("only letters"));
    }

    proptest! {
        #[test]
        fn display_round_trips(input in "(http|https)://[a-z]{1,8}(\\.[a-z]{1,8}){0,2}(:[0-9]{1,5})?(/[a-z0-9%._-]{0,10}){0,3}") {
            if let Ok(u) = Upstream::parse(&input) {
                prop_assert_eq!(Upstream::parse(&u.to_string()).unwrap(), u);
            }
        }

        #[test]
        fn accepted_upstreams_carry_no_config_syntax(input in "\\PC{0,60}") {
            if let Ok(u) = Upstream::parse(&input) {
                let text = u.to_string();
                prop_assert!(!text.chars().any(|c| ";{}#$'\"\\ \t\n\r".contains(c)), "{}", text);
            }
        }
    }
}
