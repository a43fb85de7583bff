//! Configuration: environment variables over an optional TOML file over defaults, validated
//! at start with messages that name the setting.
//!
//! | variable | TOML key | default |
//! |---|---|---|
//! | `INFRAPILOT_CONFIG` | — | none: path of a TOML file with the keys below |
//! | `INFRAPILOT_BIND` | `bind` | `127.0.0.1:8080` |
//! | `INFRAPILOT_DATA_DIR` | `data_dir` | `./infrapilot-data` |
//! | `DATABASE_URL` | `database_url` | `sqlite://<data_dir>/infrapilot.db` |
//! | `DATABASE_MIGRATION_URL` | `database_migration_url` | none (PostgreSQL only: the table owner) |
//! | `DATABASE_MAX_CONNECTIONS` | `database_max_connections` | `16` |
//! | `INFRAPILOT_EDITION` | `edition` | `community` (`community` or `saas`) |
//! | `INFRAPILOT_PUBLIC_URL` | `public_url` | `http://<bind>` |
//! | `INFRAPILOT_CORS_ORIGINS` | `cors_origins` | none (comma-separated origins) |
//! | `INFRAPILOT_SECRET_KEY` | — | none: base64 of 32 random bytes |
//! | `INFRAPILOT_SECRET_KEY_FILE` | `secret_key_file` | `<data_dir>/secret.key`, created 0600 on first start |
//! | `INFRAPILOT_LOG_FORMAT` | `log_format` | `text` (`text` or `json`) |
//! | `INFRAPILOT_REQUEST_TIMEOUT_SECS` | `request_timeout_secs` | `30` |
//! | `INFRAPILOT_MAX_BODY_BYTES` | `max_body_bytes` | `1048576` |
//! | `INFRAPILOT_ACCESS_TOKEN_TTL_SECS` | `access_token_ttl_secs` | `900` |
//! | `INFRAPILOT_REFRESH_TOKEN_TTL_SECS` | `refresh_token_ttl_secs` | `2592000` (30 days) |
//! | `INFRAPILOT_AGENT_BIND` | `agent_bind` | `127.0.0.1:8443` |
//! | `INFRAPILOT_AGENT_URL` | `agent_url` | `https://<public host>:<agent port>` |
//! | `INFRAPILOT_AGENT_HOSTNAMES` | `agent_hostnames` | `localhost,127.0.0.1` plus the hosts of both URLs |
//! | `INFRAPILOT_HEARTBEAT_SECS` | `heartbeat_secs` | `30` |
//! | `INFRAPILOT_AGENT_CERT_DAYS` | `agent_cert_days` | `7` |
//! | `INFRAPILOT_ACME_DIRECTORY_URL` | `acme_directory_url` | Let's Encrypt's production directory |
//! | `INFRAPILOT_ACME_EMAIL` | `acme_email` | none: the ACME account's contact address |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::store::DatabaseConfig;

/// Which shape of the product runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    /// Self-hosted, single organization, no sign-up.
    Community,
    /// Many organizations with sign-up.
    Saas,
}

/// Where the server's master secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// Given inline (`INFRAPILOT_SECRET_KEY`).
    Inline(String),
    /// Read from (or, when missing, created in) a file.
    File(PathBuf),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address to listen on.
    pub bind: SocketAddr,
    /// Where the SQLite database, the secret key and agent binaries live.
    pub data_dir: PathBuf,
    /// The database.
    pub database: DatabaseConfig,
    /// Community or SaaS.
    pub edition: Edition,
    /// The URL agents and browsers reach this server at.
    pub public_url: String,
    /// Origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// The master secret.
    pub secret: SecretSource,
    /// `text` or `json` logs.
    pub json_logs: bool,
    /// The longest a request may take.
    pub request_timeout: Duration,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// The API's connections: how many at once, and how long a request head may take.
    pub connections: crate::serve::ConnectionLimits,
    /// The agent endpoint's connections: how many at once, and how long one may stay
    /// silent (the endpoint pings agents over HTTP/2 at a third of it, at most every 20 s, so
    /// a live one never is).
    pub agent_connections: AgentConnectionLimits,
    /// Lifetime of an access token.
    pub access_token_ttl: Duration,
    /// Absolute lifetime of a refresh-token family.
    pub refresh_token_ttl: Duration,
    /// Where the agent endpoint (gRPC over TLS 1.3) listens.
    pub agent_bind: SocketAddr,
    /// The agent endpoint's URL as agents dial it.
    pub agent_url: String,
    /// The names and addresses the agent endpoint's certificate covers.
    pub agent_hostnames: Vec<String>,
    /// How often agents send a heartbeat.
    pub heartbeat: Duration,
    /// How long an agent's client certificate is valid (renewed at two thirds).
    pub agent_cert_lifetime: Duration,
    /// Where agents obtain the certificates of `lets_encrypt` hosts.
    pub acme: infrapilot_core::acme::AcmeSettings,
    /// The internal networks outbound calls to tenant-chosen addresses may reach (none by
    /// default: alert channels and every later integration reach public addresses only).
    pub outbound: infrapilot_core::outbound::OutboundPolicy,
}

/// The bounds on the agent endpoint's connections.
#[derive(Debug, Clone, Copy)]
pub struct AgentConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a connection may send nothing (its TLS handshake included) before it is
    /// closed.
    pub idle_timeout: Duration,
    /// How long a connection without a client certificate may stay open, busy or not: it can
    /// only enrol, which takes one call.
    pub enroll_window: Duration,
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {setting}: {reason}")]
pub struct ConfigError {
    /// The variable or key.
    pub setting: String,
    /// What is wrong and what to do.
    pub reason: String,
}

fn bad(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    database_migration_url: Option<String>,
    database_max_connections: Option<u32>,
    edition: Option<String>,
    public_url: Option<String>,
    cors_origins: Option<Vec<String>>,
    secret_key_file: Option<String>,
    log_format: Option<String>,
    request_timeout_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    agent_bind: Option<String>,
    agent_url: Option<String>,
    agent_hostnames: Option<Vec<String>>,
    heartbeat_secs: Option<u64>,
    agent_cert_days: Option<u64>,
    acme_directory_url: Option<String>,
    acme_email: Option<String>,
    outbound_allow: Option<String>,
    max_connections: Option<u64>,
    header_timeout_secs: Option<u64>,
    agent_max_connections: Option<u64>,
    agent_idle_secs: Option<u64>,
    agent_enroll_secs: Option<u64>,
}

impl Config {
    /// Reads the process environment (and the TOML file it names).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Builds a configuration from variables, as [`Config::from_env`] does.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let file = match vars.get("INFRAPILOT_CONFIG") {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad("INFRAPILOT_CONFIG", format!("cannot read {path}: {e}")))?;
                toml::from_str(&text)
                    .map_err(|e| bad("INFRAPILOT_CONFIG", format!("{path} is not valid: {e}")))?
            }
        };
        let get = |var: &str, file_value: Option<String>| -> Option<String> {
            vars.get(var)
                .cloned()
                .filter(|v| !v.is_empty())
                .or(file_value)
        };
        let number =
            |var: &str, file_value: Option<u64>, default: u64| -> Result<u64, ConfigError> {
                match vars.get(var).filter(|v| !v.is_empty()) {
                    Some(text) => text
                        .parse()
                        .map_err(|_| bad(var, format!("must be a whole number, got {text:?}"))),
                    None => Ok(file_value.unwrap_or(default)),
                }
            };

        let bind_text =
            get("INFRAPILOT_BIND", file.bind).unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            bad(
                "INFRAPILOT_BIND",
                format!("must be ADDRESS:PORT such as 127.0.0.1:8080, got {bind_text:?}"),
            )
        })?;
        let data_dir = PathBuf::from(
            get("INFRAPILOT_DATA_DIR", file.data_dir).unwrap_or_else(|| "./infrapilot-data".into()),
        );
        let url = get("DATABASE_URL", file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("infrapilot.db").display()));
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(bad(
                "DATABASE_URL",
                "must start with sqlite:// or postgres://",
            ));
        }
        let max_connections = number(
            "DATABASE_MAX_CONNECTIONS",
            file.database_max_connections.map(u64::from),
            16,
        )?;
        let max_connections = u32::try_from(max_connections)
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| bad("DATABASE_MAX_CONNECTIONS", "must be from 1 to 1000"))?;
        let edition = match get("INFRAPILOT_EDITION", file.edition).as_deref() {
            None | Some("community") => Edition::Community,
            Some("saas") => Edition::Saas,
            Some(other) => {
                return Err(bad(
                    "INFRAPILOT_EDITION",
                    format!("must be community or saas, got {other:?}"),
                ));
            }
        };
        let public_url = get("INFRAPILOT_PUBLIC_URL", file.public_url)
            .unwrap_or_else(|| format!("http://{bind}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(bad(
                "INFRAPILOT_PUBLIC_URL",
                "must start with http:// or https://",
            ));
        }
        let cors_origins = match vars
            .get("INFRAPILOT_CORS_ORIGINS")
            .filter(|v| !v.is_empty())
        {
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file.cors_origins.unwrap_or_default(),
        };
        for origin in &cors_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
            {
                return Err(bad(
                    "INFRAPILOT_CORS_ORIGINS",
                    format!("{origin:?} must be an origin such as https://app.example.com"),
                ));
            }
        }
        let secret = match vars.get("INFRAPILOT_SECRET_KEY").filter(|v| !v.is_empty()) {
            Some(inline) => SecretSource::Inline(inline.clone()),
            None => SecretSource::File(
                get("INFRAPILOT_SECRET_KEY_FILE", file.secret_key_file)
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join("secret.key")),
            ),
        };
        let json_logs = match get("INFRAPILOT_LOG_FORMAT", file.log_format).as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(bad(
                    "INFRAPILOT_LOG_FORMAT",
                    format!("must be text or json, got {other:?}"),
                ));
            }
        };
        let request_timeout = number(
            "INFRAPILOT_REQUEST_TIMEOUT_SECS",
            file.request_timeout_secs,
            30,
        )?;
        if request_timeout == 0 {
            return Err(bad("INFRAPILOT_REQUEST_TIMEOUT_SECS", "must be at least 1"));
        }
        let max_body_bytes = number(
            "INFRAPILOT_MAX_BODY_BYTES",
            file.max_body_bytes.map(|n| n as u64),
            1024 * 1024,
        )?;
        let access_ttl = number(
            "INFRAPILOT_ACCESS_TOKEN_TTL_SECS",
            file.access_token_ttl_secs,
            900,
        )?;
        let refresh_ttl = number(
            "INFRAPILOT_REFRESH_TOKEN_TTL_SECS",
            file.refresh_token_ttl_secs,
            30 * 24 * 3600,
        )?;
        if !(60..=86_400).contains(&access_ttl) {
            return Err(bad(
                "INFRAPILOT_ACCESS_TOKEN_TTL_SECS",
                "must be from 60 to 86400 seconds",
            ));
        }
        if refresh_ttl < access_ttl {
            return Err(bad(
                "INFRAPILOT_REFRESH_TOKEN_TTL_SECS",
                "must not be shorter than the access-token lifetime",
            ));
        }
        let agent_bind_text = get("INFRAPILOT_AGENT_BIND", file.agent_bind)
            .unwrap_or_else(|| "127.0.0.1:8443".into());
        let agent_bind: SocketAddr = agent_bind_text.parse().map_err(|_| {
            bad(
                "INFRAPILOT_AGENT_BIND",
                format!("must be ADDRESS:PORT such as 0.0.0.0:8443, got {agent_bind_text:?}"),
            )
        })?;
        let public_host = url_host(&public_url);
        let agent_url = get("INFRAPILOT_AGENT_URL", file.agent_url)
            .unwrap_or_else(|| format!("https://{}:{}", public_host, agent_bind.port()))
            .trim_end_matches('/')
            .to_owned();
        if !agent_url.starts_with("https://") {
            return Err(bad(
                "INFRAPILOT_AGENT_URL",
                "must start with https:// (agents only speak TLS)",
            ));
        }
        let mut agent_hostnames: Vec<String> = match vars
            .get("INFRAPILOT_AGENT_HOSTNAMES")
            .filter(|v| !v.is_empty())
        {
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file
                .agent_hostnames
                .unwrap_or_else(|| vec!["localhost".into(), "127.0.0.1".into()]),
        };
        for host in [public_host, url_host(&agent_url)] {
            if !agent_hostnames.contains(&host) {
                agent_hostnames.push(host);
            }
        }
        for host in &agent_hostnames {
            if host.parse::<std::net::IpAddr>().is_err() {
                infrapilot_core::values::Domain::parse(host)
                    .map_err(|e| bad("INFRAPILOT_AGENT_HOSTNAMES", e.to_string()))?;
            }
        }
        let heartbeat = number("INFRAPILOT_HEARTBEAT_SECS", file.heartbeat_secs, 30)?;
        if !(1..=600).contains(&heartbeat) {
            return Err(bad("INFRAPILOT_HEARTBEAT_SECS", "must be from 1 to 600"));
        }
        let cert_days = number("INFRAPILOT_AGENT_CERT_DAYS", file.agent_cert_days, 7)?;
        if !(1..=365).contains(&cert_days) {
            return Err(bad("INFRAPILOT_AGENT_CERT_DAYS", "must be from 1 to 365"));
        }
        let acme_directory_url = get("INFRAPILOT_ACME_DIRECTORY_URL", file.acme_directory_url)
            .unwrap_or_else(|| infrapilot_core::acme::LETS_ENCRYPT_PRODUCTION.to_owned());
        if !acme_directory_url.starts_with("https://") {
            return Err(bad(
                "INFRAPILOT_ACME_DIRECTORY_URL",
                "must start with https:// (ACME is only spoken over TLS)",
            ));
        }
        let acme_email = get("INFRAPILOT_ACME_EMAIL", file.acme_email)
            .map(|e| {
                infrapilot_core::values::Email::parse(&e)
                    .map(|e| e.as_str().to_owned())
                    .map_err(|err| bad("INFRAPILOT_ACME_EMAIL", err.to_string()))
            })
            .transpose()?;
        let outbound = infrapilot_core::outbound::OutboundPolicy::parse(
            "INFRAPILOT_OUTBOUND_ALLOW",
            &get("INFRAPILOT_OUTBOUND_ALLOW", file.outbound_allow).unwrap_or_default(),
        )
        .map_err(|e| bad("INFRAPILOT_OUTBOUND_ALLOW", e.to_string()))?;
        let bounded = |var: &str, value: u64, range: std::ops::RangeInclusive<u64>| {
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(bad(
                    var,
                    format!("must be from {} to {}", range.start(), range.end()),
                ))
            }
        };
        let connections = crate::serve::ConnectionLimits {
            max_connections: usize::try_from(bounded(
                "INFRAPILOT_MAX_CONNECTIONS",
                number("INFRAPILOT_MAX_CONNECTIONS", file.max_connections, 4096)?,
                1..=1_000_000,
            )?)
            .unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_secs(bounded(
                "INFRAPILOT_HEADER_TIMEOUT_SECS",
                number(
                    "INFRAPILOT_HEADER_TIMEOUT_SECS",
                    file.header_timeout_secs,
                    20,
                )?,
                1..=600,
            )?),
        };
        let agent_connections = AgentConnectionLimits {
            max_connections: usize::try_from(bounded(
                "INFRAPILOT_AGENT_MAX_CONNECTIONS",
                number(
                    "INFRAPILOT_AGENT_MAX_CONNECTIONS",
                    file.agent_max_connections,
                    10_000,
                )?,
                1..=1_000_000,
            )?)
            .unwrap_or(usize::MAX),
            idle_timeout: Duration::from_secs(bounded(
                "INFRAPILOT_AGENT_IDLE_SECS",
                number("INFRAPILOT_AGENT_IDLE_SECS", file.agent_idle_secs, 90)?,
                1..=3600,
            )?),
            enroll_window: Duration::from_secs(bounded(
                "INFRAPILOT_AGENT_ENROLL_SECS",
                number("INFRAPILOT_AGENT_ENROLL_SECS", file.agent_enroll_secs, 60)?,
                1..=600,
            )?),
        };
        Ok(Config {
            connections,
            agent_connections,
            outbound,
            acme: infrapilot_core::acme::AcmeSettings {
                directory_url: acme_directory_url,
                contact_email: acme_email,
            },
            agent_bind,
            agent_url,
            agent_hostnames,
            heartbeat: Duration::from_secs(heartbeat),
            agent_cert_lifetime: Duration::from_secs(cert_days * 86_400),
            bind,
            data_dir,
            database: DatabaseConfig {
                url,
                migration_url: get("DATABASE_MIGRATION_URL", file.database_migration_url),
                max_connections,
            },
            edition,
            public_url,
            cors_origins,
            secret,
            json_logs,
            request_timeout: Duration::from_secs(request_timeout),
            max_body_bytes: usize::try_from(max_body_bytes)
                .map_err(|_| bad("INFRAPILOT_MAX_BODY_BYTES", "is too large"))?,
            access_token_ttl: Duration::from_secs(access_ttl),
            refresh_token_ttl: Duration::from_secs(refresh_ttl),
        })
    }
}

/// The host of an `http(s)://host[:port][/…]` URL (IPv6 brackets removed).
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6).to_owned();
    }
    authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_give_a_community_sqlite_server_on_loopback() {
        let c = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.edition, Edition::Community);
        assert_eq!(c.database.url, "sqlite://./infrapilot-data/infrapilot.db");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn bad_settings_are_named() {
        for (pairs, setting) in [
            (vec![("INFRAPILOT_BIND", "8080")], "INFRAPILOT_BIND"),
            (vec![("INFRAPILOT_EDITION", "pro")], "INFRAPILOT_EDITION"),
            (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (
                vec![("INFRAPILOT_CORS_ORIGINS", "example.com")],
                "INFRAPILOT_CORS_ORIGINS",
            ),
            (
                vec![("INFRAPILOT_REQUEST_TIMEOUT_SECS", "soon")],
                "INFRAPILOT_REQUEST_TIMEOUT_SECS",
            ),
            (
                vec![("INFRAPILOT_CONFIG", "/nonexistent.toml")],
                "INFRAPILOT_CONFIG",
            ),
        ] {
            let err = Config::from_vars(&vars(&pairs)).unwrap_err();
            assert_eq!(err.setting, setting, "{err}");
        }
    }

    #[test]
    fn toml_file_is_read_and_env_wins() {
        let dir = std::env::temp_dir().join(format!("ip-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "edition = \"saas\"\nbind = \"0.0.0.0:9000\"\n").unwrap();
        let p = path.to_string_lossy().into_owned();
        let c = Config::from_vars(&vars(&[("INFRAPILOT_CONFIG", &p)])).unwrap();
        assert_eq!(c.edition, Edition::Saas);
        assert_eq!(c.bind.port(), 9000);
        let c = Config::from_vars(&vars(&[
            ("INFRAPILOT_CONFIG", &p),
            ("INFRAPILOT_BIND", "127.0.0.1:1"),
        ]))
        .unwrap();
        assert_eq!(c.bind.port(), 1);
        std::fs::write(&path, "colour = \"blue\"\n").unwrap();
        let err = Config::from_vars(&vars(&[("INFRAPILOT_CONFIG", &p)])).unwrap_err();
        assert!(err.reason.contains("colour"), "{err}");
    }
}
