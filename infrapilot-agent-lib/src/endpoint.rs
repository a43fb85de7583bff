//! The server's agent endpoint, `https://host:port`.

use std::fmt;
use std::str::FromStr;

use rustls_pki_types::ServerName;

/// Where the agent dials the control plane: an `https://host:port` URL, validated.
///
/// The host is both what the agent connects to and the name it checks the server's
/// certificate against (a DNS name or an IP address). The port defaults to 443.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEndpoint {
    host: String,
    port: u16,
    url: String,
    server_name: ServerName<'static>,
}

/// Why an endpoint URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The URL does not start with `https://`.
    #[error("the endpoint {input:?} must start with https:// (the agent only speaks TLS 1.3)")]
    NotHttps {
        /// The URL given.
        input: String,
    },
    /// The host part is missing or not a valid DNS name or IP address.
    #[error("the endpoint {input:?} has no valid host name or IP address")]
    InvalidHost {
        /// The URL given.
        input: String,
    },
    /// The port is not a number between 1 and 65535.
    #[error("the endpoint {input:?} has an invalid port {port:?}")]
    InvalidPort {
        /// The URL given.
        input: String,
        /// The port part.
        port: String,
    },
    /// The URL has a path, query or credentials, which the agent endpoint never has.
    #[error("the endpoint {input:?} must be only https://host:port, without a path or query")]
    UnexpectedPath {
        /// The URL given.
        input: String,
    },
}

impl AgentEndpoint {
    /// Parses `https://host[:port][/]`. IPv6 addresses are written in brackets.
    pub fn parse(input: &str) -> Result<Self, EndpointError> {
        let trimmed = input.trim();
        let rest = trimmed
            .strip_prefix("https://")
            .ok_or_else(|| EndpointError::NotHttps {
                input: input.to_owned(),
            })?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(EndpointError::UnexpectedPath {
                input: input.to_owned(),
            });
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) =
                bracketed
                    .split_once(']')
                    .ok_or_else(|| EndpointError::InvalidHost {
                        input: input.to_owned(),
                    })?;
            (host, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => 443,
            Some(port) => match port.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => {
                    return Err(EndpointError::InvalidPort {
                        input: input.to_owned(),
                        port: port.to_owned(),
                    });
                }
            },
        };
        let server_name = ServerName::try_from(host.to_owned())
            .ok()
            .filter(|_| !host.is_empty())
            .ok_or_else(|| EndpointError::InvalidHost {
                input: input.to_owned(),
            })?;
        Ok(Self {
            host: host.to_owned(),
            port,
            url: trimmed.trim_end_matches('/').to_owned(),
            server_name,
        })
    }

    /// The host name or IP address (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The name the server's certificate must carry.
    pub fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }

    /// The `host:port` string to connect to.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for AgentEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl FromStr for AgentEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_accepted_forms_and_refuses_the_rest() {
        let ok = [
            ("https://cp.example.com:8443", "cp.example.com", 8443),
            ("https://cp.example.com", "cp.example.com", 443),
            ("https://127.0.0.1:50051/", "127.0.0.1", 50051),
            ("https://[::1]:9000", "::1", 9000),
        ];
        for (input, host, port) in ok {
            let e = AgentEndpoint::parse(input).unwrap();
            assert_eq!((e.host(), e.port()), (host, port), "{input}");
        }
        assert!(matches!(
            AgentEndpoint::parse("http://x:1"),
            Err(EndpointError::NotHttps { .. })
        ));
        assert!(matches!(
            AgentEndpoint::parse("https://x:0"),
            Err(EndpointError::InvalidPort { .. })
        ));
        assert!(matches!(
            AgentEndpoint::parse("https://x:1/api"),
            Err(EndpointError::UnexpectedPath { .. })
        ));
        assert!(matches!(
            AgentEndpoint::parse("https://:1"),
            Err(EndpointError::InvalidHost { .. })
        ));
        assert_eq!(
            AgentEndpoint::parse("https://[::1]:9000")
                .unwrap()
                .authority(),
            "[::1]:9000"
        );
    }
}
