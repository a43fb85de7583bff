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

    /// The group nginx's workers run as, read from the running workers themselves (`None`
    /// when nginx does not run or its workers cannot be seen).
    ///
    /// The rendered `nginx.conf` names no `user`: an nginx started by root runs its workers as
    /// the user and group it was built with (`nobody` and `nogroup` for Debian's, `nginx` for
    /// the official image, each with its own ids inside a container), and one started by
    /// anyone else runs them as that user. Asking the workers is the one answer that holds
    /// for every build and placement: the host's nginx through `/proc` (its master's pid from
    /// the pid file), a container's through the Docker engine (`docker top`), whose ids are
    /// those the files on the bind mount are checked against. Root's group is no answer: it
    /// is a worker just forked that has not switched yet (or workers that read any file).
    pub async fn worker_gid(&self, layout: &Layout) -> Option<u32> {
        if let NginxRunner::Container(c) = self {
            return c.worker_gid().await;
        }
        let pid = tokio::fs::read_to_string(layout.pid_file.as_str())
            .await
            .ok()?;
        let master: u32 = pid.trim().parse().ok()?;
        tokio::task::spawn_blocking(move || workers_gid_in_proc(master))
            .await
            .ok()
            .flatten()
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

/// The effective group of a child of `master` in `/proc`. Root's group does not count: a
/// worker just forked has not switched yet, and workers that do run as root read any file.
fn workers_gid_in_proc(master: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter_map(|status| parent_and_gid(&status))
        .find(|(parent, gid)| *parent == master && *gid != 0)
        .map(|(_, gid)| gid)
}

/// A `/proc/<pid>/status` file's parent pid (`PPid:`) and effective group (`Gid:`'s second
/// field).
fn parent_and_gid(status: &str) -> Option<(u32, u32)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
    };
    let parent = field("PPid:")?.first()?.parse().ok()?;
    let gid = field("Gid:")?.get(1)?.parse().ok()?;
    Some((parent, gid))
}

fn docker(container: &str, action: &str, message: String) -> NginxError {
    NginxError::Docker {
        action: format!("{action} in the container {container}"),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_file_gives_the_parent_and_the_effective_group() {
        let status = "Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t812\n\
                      Ngid:\t0\nPid:\t812\nPPid:\t811\nTracerPid:\t0\n\
                      Uid:\t65534\t65534\t65534\t65534\nGid:\t0\t65534\t65534\t65534\n";
        assert_eq!(parent_and_gid(status), Some((811, 65534)));
        assert_eq!(parent_and_gid("PPid:\t1\n"), None, "no Gid line");
        assert_eq!(parent_and_gid("Gid:\t1\t2\t3\t4\n"), None, "no PPid line");
        assert_eq!(parent_and_gid("PPid:\tx\nGid:\t1\t2\n"), None);
    }

    #[test]
    fn the_workers_of_this_process_are_found_in_proc() {
        use std::os::unix::process::CommandExt as _;

        // A child of the test process stands in for a worker; run by root, it switches to
        // `nogroup` as nginx's workers do.
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        let (_, own_gid) = parent_and_gid(&own).unwrap();
        let worker_gid = if own_gid == 0 { 65534 } else { own_gid };
        let mut command = std::process::Command::new("sleep");
        command.arg("5");
        if own_gid == 0 {
            command.gid(worker_gid);
        }
        let mut child = command.spawn().unwrap();
        assert_eq!(workers_gid_in_proc(std::process::id()), Some(worker_gid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(workers_gid_in_proc(u32::MAX), None, "no such master");
    }
}
