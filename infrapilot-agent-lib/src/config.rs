//! The agent's settings: defaults, then `agent.toml` in the state directory, then the
//! environment. Each error names the setting and the value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::endpoint::{AgentEndpoint, EndpointError};

/// The log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// What `agent.toml` and the environment may set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// Replaces the endpoint stored at enrollment (`endpoint`, `INFRAPILOT_ENDPOINT`).
    pub endpoint: Option<AgentEndpoint>,
    /// Replaces the server's heartbeat interval (`heartbeat_secs`, `INFRAPILOT_HEARTBEAT_SECS`).
    pub heartbeat: Option<Duration>,
    /// The log format (`log_format`, `INFRAPILOT_LOG_FORMAT`: `text` or `json`).
    pub log_format: LogFormat,
    /// The Docker socket (`docker_socket`, `INFRAPILOT_DOCKER_SOCKET`); default
    /// `/var/run/docker.sock`.
    pub docker_socket: Option<PathBuf>,
}

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// `agent.toml` could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// `agent.toml` is not valid TOML or has unknown keys.
    #[error("{path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the key.
        message: String,
    },
    /// A setting has an invalid value.
    #[error("invalid value {value:?} for {setting}: {reason}")]
    Invalid {
        /// The setting's name (TOML key or environment variable).
        setting: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    endpoint: Option<String>,
    heartbeat_secs: Option<u64>,
    log_format: Option<LogFormat>,
    docker_socket: Option<PathBuf>,
}

impl Settings {
    /// Reads `agent.toml` in `state_dir` (if present), then applies `env` (pairs of name and
    /// value, e.g. from `std::env::vars()`), which wins.
    pub fn load(
        state_dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let path = state_dir.join("agent.toml");
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str::<FileSettings>(&text).map_err(|e| SettingsError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileSettings::default(),
            Err(source) => return Err(SettingsError::Read { path, source }),
        };
        let mut settings = Settings {
            endpoint: file
                .endpoint
                .map(|e| endpoint("endpoint", &e))
                .transpose()?,
            heartbeat: file
                .heartbeat_secs
                .map(|s| heartbeat("heartbeat_secs", &s.to_string()))
                .transpose()?,
            log_format: file.log_format.unwrap_or_default(),
            docker_socket: file.docker_socket,
        };
        for (name, value) in env {
            match name.as_str() {
                "INFRAPILOT_ENDPOINT" => settings.endpoint = Some(endpoint(&name, &value)?),
                "INFRAPILOT_HEARTBEAT_SECS" => settings.heartbeat = Some(heartbeat(&name, &value)?),
                "INFRAPILOT_LOG_FORMAT" => {
                    settings.log_format = match value.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => {
                            return Err(SettingsError::Invalid {
                                setting: name,
                                value,
                                reason: "must be text or json".to_owned(),
                            });
                        }
                    }
                }
                "INFRAPILOT_DOCKER_SOCKET" => settings.docker_socket = Some(PathBuf::from(value)),
                _ => {}
            }
        }
        Ok(settings)
    }
}

fn endpoint(setting: &str, value: &str) -> Result<AgentEndpoint, SettingsError> {
    AgentEndpoint::parse(value).map_err(|e: EndpointError| SettingsError::Invalid {
        setting: setting.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn heartbeat(setting: &str, value: &str) -> Result<Duration, SettingsError> {
    match value.parse::<u64>() {
        Ok(secs) if (1..=3600).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(SettingsError::Invalid {
            setting: setting.to_owned(),
            value: value.to_owned(),
            reason: "must be a whole number of seconds between 1 and 3600".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_over_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("agent.toml"),
            "endpoint = \"https://a.example:1\"\nheartbeat_secs = 5\nlog_format = \"json\"\n",
        )
        .unwrap();
        let s = Settings::load(tmp.path(), []).unwrap();
        assert_eq!(s.endpoint.unwrap().host(), "a.example");
        assert_eq!(s.heartbeat, Some(Duration::from_secs(5)));
        assert_eq!(s.log_format, LogFormat::Json);
        let s = Settings::load(
            tmp.path(),
            [(
                "INFRAPILOT_ENDPOINT".to_owned(),
                "https://b.example:2".to_owned(),
            )],
        )
        .unwrap();
        assert_eq!(s.endpoint.unwrap().host(), "b.example");
    }

    #[test]
    fn errors_name_the_setting_and_value() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Settings::load(
            tmp.path(),
            [("INFRAPILOT_HEARTBEAT_SECS".to_owned(), "0".to_owned())],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("INFRAPILOT_HEARTBEAT_SECS") && e.contains("\"0\""),
            "{e}"
        );
        std::fs::write(tmp.path().join("agent.toml"), "heartbeat = 5\n").unwrap();
        let e = Settings::load(tmp.path(), []).unwrap_err().to_string();
        assert!(e.contains("heartbeat"), "{e}");
    }
}
