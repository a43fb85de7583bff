//! The agent's settings: defaults, then `agent.toml` in the state directory, then the
//! environment. Each error names the setting and the value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use infrapilot_core::values::ContainerName;

use crate::endpoint::{AgentEndpoint, EndpointError};
use crate::logs::buffer::ParseFullPolicyError;
use crate::logs::{FullPolicy, LogConfig, Selection, SelectionError};
use crate::nginx::NginxPlacement;
use crate::nginx::container::{DEFAULT_CONTAINER_NAME, DEFAULT_IMAGE};

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
    /// The nginx the agent drives (`nginx_binary`, `INFRAPILOT_NGINX_BINARY`); default
    /// `/usr/sbin/nginx` when it exists, else no proxy. An empty value turns the proxy off.
    pub nginx_binary: Option<PathBuf>,
    /// nginx in a container the agent manages instead of the host's nginx (`nginx =
    /// "container"`, `INFRAPILOT_NGINX=container`; `host`, the default, or `off`).
    pub nginx_container: Option<NginxContainerSettings>,
    /// The ports nginx serves plain HTTP (and ACME HTTP-01) and HTTPS on (`nginx_http_port`,
    /// `INFRAPILOT_NGINX_HTTP_PORT`: 80; `nginx_https_port`, `INFRAPILOT_NGINX_HTTPS_PORT`: 443).
    pub nginx_ports: (u16, u16),
    /// A PEM file trusted for a private ACME server's TLS instead of the system's roots
    /// (`acme_ca_root`, `INFRAPILOT_ACME_CA_ROOT`).
    pub acme_ca_root: Option<PathBuf>,
    /// Log collection (`logs`, `log_buffer_mb`, `log_buffer_full`, `nginx_log_mb` and their
    /// `INFRAPILOT_…` variables).
    pub logs: LogSettings,
}

/// The container nginx runs in when the agent manages it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxContainerSettings {
    /// The container's name (`nginx_container`, `INFRAPILOT_NGINX_CONTAINER`:
    /// `infrapilot-nginx`).
    pub name: String,
    /// The image (`nginx_image`, `INFRAPILOT_NGINX_IMAGE`: `nginx:stable`).
    pub image: String,
    /// The agent's nginx directory as the Docker host sees it, when the agent runs in a
    /// container that mounts it from elsewhere (`nginx_host_root`,
    /// `INFRAPILOT_NGINX_HOST_ROOT`).
    pub host_root: Option<PathBuf>,
}

/// Which logs the agent collects and how much it buffers while the server is away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Which containers' output (`logs`, `INFRAPILOT_LOGS`: `all`, the default,
    /// `label:KEY`, `label:KEY=VALUE`, or `off`); `None` when off.
    pub selection: Option<Selection>,
    /// The buffer's bound in MiB (`log_buffer_mb`, `INFRAPILOT_LOG_BUFFER_MB`: 256).
    pub buffer_mb: u64,
    /// What happens when the buffer is full (`log_buffer_full`, `INFRAPILOT_LOG_BUFFER_FULL`:
    /// `drop_oldest`, the default, or `drop_newest`).
    pub when_full: FullPolicy,
    /// The size in MiB past which an nginx log file is rotated (`nginx_log_mb`,
    /// `INFRAPILOT_NGINX_LOG_MB`: 64; 0 never rotates).
    pub nginx_log_mb: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            selection: Some(Selection::All),
            buffer_mb: 256,
            when_full: FullPolicy::DropOldest,
            nginx_log_mb: 64,
        }
    }
}

impl LogSettings {
    /// Applies one setting by name (a TOML key or its environment variable); answers whether
    /// the name was a log setting.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<bool, SettingsError> {
        let invalid = |reason: String| SettingsError::Invalid {
            setting: name.to_owned(),
            value: value.to_owned(),
            reason,
        };
        match name {
            "logs" | "INFRAPILOT_LOGS" => {
                self.selection = match value {
                    "off" => None,
                    _ => Some(
                        value
                            .parse()
                            .map_err(|e: SelectionError| invalid(e.to_string()))?,
                    ),
                };
            }
            "log_buffer_mb" | "INFRAPILOT_LOG_BUFFER_MB" => {
                self.buffer_mb = value
                    .parse::<u64>()
                    .ok()
                    .filter(|mb| (1..=1_048_576).contains(mb))
                    .ok_or_else(|| invalid("must be a size in MiB from 1 to 1048576".to_owned()))?;
            }
            "log_buffer_full" | "INFRAPILOT_LOG_BUFFER_FULL" => {
                self.when_full = value
                    .parse()
                    .map_err(|e: ParseFullPolicyError| invalid(e.to_string()))?;
            }
            "nginx_log_mb" | "INFRAPILOT_NGINX_LOG_MB" => {
                self.nginx_log_mb = value
                    .parse::<u64>()
                    .ok()
                    .filter(|mb| *mb <= 1_048_576)
                    .ok_or_else(|| {
                        invalid("must be a size in MiB from 0 (never rotate) to 1048576".to_owned())
                    })?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The log configuration with the buffer in `buffer_dir`; `None` when logs are off.
    pub fn config(&self, buffer_dir: impl Into<PathBuf>) -> Option<LogConfig> {
        let selection = self.selection.clone()?;
        let mut config = LogConfig::new(buffer_dir);
        config.selection = selection;
        config.buffer.max_bytes = self.buffer_mb * 1024 * 1024;
        config.buffer.segment_bytes = config
            .buffer
            .segment_bytes
            .min(config.buffer.max_bytes / 4)
            .max(4096);
        config.buffer.when_full = self.when_full;
        Some(config)
    }

    /// The size past which nginx's log files are rotated; `None`: never. It applies also
    /// when log collection is off.
    pub fn nginx_rotate_bytes(&self) -> Option<u64> {
        (self.nginx_log_mb > 0).then_some(self.nginx_log_mb << 20)
    }
}

/// Where nginx is looked for when no setting names it.
pub const DEFAULT_NGINX_BINARY: &str = "/usr/sbin/nginx";

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
    nginx_binary: Option<PathBuf>,
    nginx_http_port: Option<u16>,
    nginx_https_port: Option<u16>,
    acme_ca_root: Option<PathBuf>,
    nginx: Option<String>,
    nginx_container: Option<String>,
    nginx_image: Option<String>,
    nginx_host_root: Option<PathBuf>,
    logs: Option<String>,
    log_buffer_mb: Option<u64>,
    log_buffer_full: Option<String>,
    nginx_log_mb: Option<u64>,
}

impl Settings {
    /// Where nginx runs: in the agent's container when `nginx_container` is set, else the
    /// host's `nginx_binary`; `None` when the proxy is off.
    pub fn nginx_placement(&self) -> Option<NginxPlacement> {
        match (&self.nginx_container, &self.nginx_binary) {
            (Some(c), _) => Some(NginxPlacement::Container {
                name: c.name.clone(),
                image: c.image.clone(),
                host_root: c.host_root.clone(),
                labels: Default::default(),
            }),
            (None, Some(binary)) => Some(NginxPlacement::Host {
                binary: binary.clone(),
            }),
            (None, None) => None,
        }
    }

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
            nginx_binary: file.nginx_binary.or_else(|| {
                let default = PathBuf::from(DEFAULT_NGINX_BINARY);
                default.exists().then_some(default)
            }),
            nginx_ports: (
                file.nginx_http_port.unwrap_or(80),
                file.nginx_https_port.unwrap_or(443),
            ),
            acme_ca_root: file.acme_ca_root,
            nginx_container: None,
            logs: LogSettings::default(),
        };
        let mut placement = file.nginx.map(|v| ("nginx".to_owned(), v));
        let mut container_name = file
            .nginx_container
            .map(|v| ("nginx_container".to_owned(), v));
        let mut image = file.nginx_image.map(|v| ("nginx_image".to_owned(), v));
        let mut host_root = file.nginx_host_root;
        for (key, value) in [
            ("logs", file.logs),
            ("log_buffer_mb", file.log_buffer_mb.map(|m| m.to_string())),
            ("log_buffer_full", file.log_buffer_full),
            ("nginx_log_mb", file.nginx_log_mb.map(|m| m.to_string())),
        ] {
            if let Some(value) = value {
                settings.logs.apply(key, &value)?;
            }
        }
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
                "INFRAPILOT_NGINX_BINARY" => {
                    settings.nginx_binary = (!value.is_empty()).then(|| PathBuf::from(value));
                }
                "INFRAPILOT_NGINX_HTTP_PORT" => settings.nginx_ports.0 = port(&name, &value)?,
                "INFRAPILOT_NGINX_HTTPS_PORT" => settings.nginx_ports.1 = port(&name, &value)?,
                "INFRAPILOT_NGINX" => placement = Some((name, value)),
                "INFRAPILOT_NGINX_CONTAINER" => container_name = Some((name, value)),
                "INFRAPILOT_NGINX_IMAGE" => image = Some((name, value)),
                "INFRAPILOT_NGINX_HOST_ROOT" => {
                    host_root = (!value.is_empty()).then(|| PathBuf::from(value));
                }
                "INFRAPILOT_ACME_CA_ROOT" => {
                    settings.acme_ca_root = (!value.is_empty()).then(|| PathBuf::from(value));
                }
                _ => {
                    settings.logs.apply(&name, &value)?;
                }
            }
        }
        match placement {
            None => {}
            Some((_, v)) if v == "host" => {}
            Some((_, v)) if v == "off" => settings.nginx_binary = None,
            Some((_, v)) if v == "container" => {
                let name = match container_name {
                    Some((setting, value)) => ContainerName::parse(&value)
                        .map_err(|e| SettingsError::Invalid {
                            setting,
                            value: value.clone(),
                            reason: e.reason().to_owned(),
                        })?
                        .as_str()
                        .to_owned(),
                    None => DEFAULT_CONTAINER_NAME.to_owned(),
                };
                let image = match image {
                    Some((setting, value)) => image_reference(setting, value)?,
                    None => DEFAULT_IMAGE.to_owned(),
                };
                settings.nginx_container = Some(NginxContainerSettings {
                    name,
                    image,
                    host_root,
                });
            }
            Some((setting, value)) => {
                return Err(SettingsError::Invalid {
                    setting,
                    value,
                    reason: "must be host, container or off".to_owned(),
                });
            }
        }
        Ok(settings)
    }
}

/// An image reference as Docker writes them (`name[:tag][@digest]`, registry and path
/// included): letters, digits and `._-/:@`, at most 255 characters.
fn image_reference(setting: String, value: String) -> Result<String, SettingsError> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(value)
    } else {
        Err(SettingsError::Invalid {
            setting,
            value,
            reason:
                "must be an image reference such as nginx:stable or registry.example/nginx:1.27"
                    .to_owned(),
        })
    }
}

fn endpoint(setting: &str, value: &str) -> Result<AgentEndpoint, SettingsError> {
    AgentEndpoint::parse(value).map_err(|e: EndpointError| SettingsError::Invalid {
        setting: setting.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn port(setting: &str, value: &str) -> Result<u16, SettingsError> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(SettingsError::Invalid {
            setting: setting.to_owned(),
            value: value.to_owned(),
            reason: "must be a port (1-65535)".to_owned(),
        }),
    }
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
        std::fs::write(
            tmp.path().join("agent.toml"),
            "nginx_binary = \"/opt/nginx\"\nnginx_http_port = 8080\n",
        )
        .unwrap();
        let s = Settings::load(
            tmp.path(),
            [("INFRAPILOT_NGINX_HTTPS_PORT".to_owned(), "8443".to_owned())],
        )
        .unwrap();
        assert_eq!(s.nginx_binary, Some(PathBuf::from("/opt/nginx")));
        assert_eq!(s.nginx_ports, (8080, 8443));
        let s = Settings::load(
            tmp.path(),
            [("INFRAPILOT_NGINX_BINARY".to_owned(), String::new())],
        )
        .unwrap();
        assert_eq!(s.nginx_binary, None, "an empty value turns the proxy off");

        // nginx's log rotation: 64 MiB, set in the file, overridden, or turned off with 0.
        let rotate = |s: &Settings| s.logs.nginx_rotate_bytes();
        assert_eq!(rotate(&s), Some(64 << 20));
        std::fs::write(tmp.path().join("agent.toml"), "nginx_log_mb = 8\n").unwrap();
        assert_eq!(
            rotate(&Settings::load(tmp.path(), []).unwrap()),
            Some(8 << 20)
        );
        let off = [("INFRAPILOT_NGINX_LOG_MB".to_owned(), "0".to_owned())];
        assert_eq!(rotate(&Settings::load(tmp.path(), off).unwrap()), None);
        let bad = [("INFRAPILOT_NGINX_LOG_MB".to_owned(), "-1".to_owned())];
        let e = Settings::load(tmp.path(), bad).unwrap_err().to_string();
        assert!(
            e.contains("INFRAPILOT_NGINX_LOG_MB") && e.contains("\"-1\""),
            "{e}"
        );
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
        let e = Settings::load(
            tmp.path(),
            [("INFRAPILOT_NGINX_HTTP_PORT".to_owned(), "80;".to_owned())],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("INFRAPILOT_NGINX_HTTP_PORT"), "{e}");
        std::fs::write(tmp.path().join("agent.toml"), "heartbeat = 5\n").unwrap();
        let e = Settings::load(tmp.path(), []).unwrap_err().to_string();
        assert!(e.contains("heartbeat"), "{e}");
    }

    #[test]
    fn nginx_in_a_container_is_chosen_and_validated() {
        let tmp = tempfile::tempdir().unwrap();
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let s = Settings::load(tmp.path(), env(&[("INFRAPILOT_NGINX", "container")])).unwrap();
        assert_eq!(
            s.nginx_container,
            Some(NginxContainerSettings {
                name: "infrapilot-nginx".into(),
                image: "nginx:stable".into(),
                host_root: None,
            })
        );
        std::fs::write(
            tmp.path().join("agent.toml"),
            "nginx = \"container\"\nnginx_image = \"registry.example/nginx:1.27\"\n",
        )
        .unwrap();
        let s = Settings::load(
            tmp.path(),
            env(&[
                ("INFRAPILOT_NGINX_CONTAINER", "edge-nginx"),
                ("INFRAPILOT_NGINX_HOST_ROOT", "/srv/infrapilot/nginx"),
            ]),
        )
        .unwrap();
        let c = s.nginx_container.unwrap();
        assert_eq!(c.name, "edge-nginx");
        assert_eq!(c.image, "registry.example/nginx:1.27");
        assert_eq!(c.host_root, Some(PathBuf::from("/srv/infrapilot/nginx")));
        std::fs::remove_file(tmp.path().join("agent.toml")).unwrap();
        let s = Settings::load(tmp.path(), env(&[("INFRAPILOT_NGINX", "off")])).unwrap();
        assert_eq!((s.nginx_binary, s.nginx_container), (None, None));
        for (name, value) in [
            ("INFRAPILOT_NGINX", "docker"),
            ("INFRAPILOT_NGINX_IMAGE", "nginx; rm -rf /"),
            ("INFRAPILOT_NGINX_CONTAINER", "-bad name"),
        ] {
            let e = Settings::load(
                tmp.path(),
                env(&[("INFRAPILOT_NGINX", "container"), (name, value)]),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(name) && e.contains(value), "{e}");
        }
    }
}
