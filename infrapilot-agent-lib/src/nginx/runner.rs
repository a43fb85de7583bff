//! Running nginx: `nginx -t`, reload, start.

use std::path::{Path, PathBuf};

use infrapilot_core::nginx::Layout;
use tokio::process::Command;

use super::NginxError;
use super::container::NginxContainer;

/// The nginx binary a controller drives.
#[derive(Debug, Clone)]
pub enum NginxRunner {
    /// The host's nginx (e.g. Debian's `/usr/sbin/nginx`), run directly by the agent.
    Host {
        /// The binary.
        binary: PathBuf,
    },
    /// nginx in the container the agent manages ([`NginxContainer`]).
    Container(Box<NginxContainer>),
}

/// What one nginx invocation said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its standard error and output, verbatim.
    pub output: String,
}

impl NginxRunner {
    /// The host's nginx at `binary`.
    pub fn host(binary: impl Into<PathBuf>) -> Self {
        NginxRunner::Host {
            binary: binary.into(),
        }
    }

    /// The managed container's name, when nginx runs in one.
    pub fn container_name(&self) -> Option<&str> {
        match self {
            NginxRunner::Host { .. } => None,
            NginxRunner::Container(c) => Some(&c.settings().name),
        }
    }

    /// `nginx -t` of the configuration whose main file is `main`.
    pub async fn test(&self, main: &Path) -> Result<RunOutput, NginxError> {
        self.run(&["-t", "-q", "-c", &main.to_string_lossy()]).await
    }

    /// Whether the nginx of `layout` runs: its pid file names a live process (host), or the
    /// managed container runs as the settings want it.
    pub async fn is_running(&self, layout: &Layout) -> bool {
        if let NginxRunner::Container(c) = self {
            return c.is_running().await;
        }
        let Ok(pid) = tokio::fs::read_to_string(layout.pid_file.as_str()).await else {
            return false;
        };
        let pid = pid.trim();
        !pid.is_empty()
            && pid.chars().all(|c| c.is_ascii_digit())
            && tokio::fs::try_exists(format!("/proc/{pid}"))
                .await
                .unwrap_or(false)
    }

    /// Reloads the running nginx with the configuration at `main`, or starts it.
    pub async fn reload_or_start(
        &self,
        main: &Path,
        layout: &Layout,
    ) -> Result<RunOutput, NginxError> {
        let main = main.to_string_lossy();
        if let NginxRunner::Container(c) = self {
            return c
                .reload_or_start(&["-q", "-c", &main, "-s", "reload"])
                .await
                .map_err(|e| docker(&c.settings().name, "nginx -s reload", e));
        }
        if self.is_running(layout).await {
            self.run(&["-q", "-c", &main, "-s", "reload"]).await
        } else {
            self.run(&["-q", "-c", &main]).await
        }
    }

    /// Makes the nginx of `layout` reopen its log files (`nginx -s reopen`), if it runs.
    pub async fn reopen_logs(&self, layout: &Layout) -> Result<RunOutput, NginxError> {
        let main = layout.main_conf_path();
        if !self.is_running(layout).await {
            return Ok(RunOutput {
                success: true,
                output: String::new(),
            });
        }
        self.run(&["-q", "-c", &main, "-s", "reopen"]).await
    }

    /// Stops the nginx of `layout` (`nginx -s quit`), if it runs.
    pub async fn stop(&self, main: &Path, layout: &Layout) -> Result<RunOutput, NginxError> {
        if let NginxRunner::Container(c) = self {
            return c
                .stop()
                .await
                .map_err(|e| docker(&c.settings().name, "stop", e));
        }
        if !self.is_running(layout).await {
            return Ok(RunOutput {
                success: true,
                output: String::new(),
            });
        }
        self.run(&["-q", "-c", &main.to_string_lossy(), "-s", "quit"])
            .await
    }

    async fn run(&self, args: &[&str]) -> Result<RunOutput, NginxError> {
        match self {
            NginxRunner::Host { binary } => {
                let out = Command::new(binary)
                    .args(args)
                    .kill_on_drop(true)
                    .output()
                    .await
                    .map_err(|source| NginxError::Spawn {
                        command: format!("{} {}", binary.display(), args.join(" ")),
                        source,
                    })?;
                let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
                output.push_str(&String::from_utf8_lossy(&out.stdout));
                Ok(RunOutput {
                    success: out.status.success(),
                    output,
                })
            }
            NginxRunner::Container(c) => c
                .run(args)
                .await
                .map_err(|e| docker(&c.settings().name, &format!("nginx {}", args.join(" ")), e)),
        }
    }
}

fn docker(container: &str, action: &str, message: String) -> NginxError {
    NginxError::Docker {
        action: format!("{action} in the container {container}"),
        message,
    }
}
