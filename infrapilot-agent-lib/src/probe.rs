//! What the agent reports about its host: CPU, memory, disk, uptime and load from the
//! kernel (via `sysinfo`), and the containers from the local Docker engine (via `bollard`).
//!
//! Docker is optional: without a reachable engine the container list is empty and
//! [`DockerStatus::available`] is false. That is a state to report, never an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, StatsOptions};
use futures_util::StreamExt;
use infrapilot_proto::v1::{ContainerSummary, HostMetrics};
use serde::Serialize;
use sysinfo::{Disks, System};
use tokio::sync::OnceCell;

use crate::docker::convert::{CpuReading, cpu_between, cpu_reading, memory_used};

/// How many containers are sampled at once for a heartbeat.
const SAMPLING: usize = 16;

/// The default Docker socket.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// How long a Docker API call may take before the engine is reported unavailable.
const DOCKER_TIMEOUT_SECS: u64 = 5;

/// Whether a Docker engine answers, and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerStatus {
    /// Whether the engine answered.
    pub available: bool,
    /// The engine's version (`docker version`'s server version) when it answered.
    pub version: Option<String>,
    /// Why it is unavailable, in the engine client's own words, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads the host's metrics and the local Docker engine's containers.
///
/// One probe is shared by the heartbeat and the `Inspect` command; CPU usage is measured
/// between two consecutive calls of [`HostProbe::host_metrics`].
#[derive(Debug)]
pub struct HostProbe {
    system: Mutex<System>,
    disk_path: PathBuf,
    docker_socket: Option<PathBuf>,
    docker: OnceCell<Option<Docker>>,
    /// Each running container's CPU counters at the last heartbeat, for the next one's share.
    cpu: Mutex<HashMap<String, CpuReading>>,
}

impl HostProbe {
    /// A probe that reports the disk holding `disk_path` (the state directory, or `/`) and
    /// talks to the Docker engine at `docker_socket` (`None`: never look for Docker).
    pub fn new(disk_path: impl Into<PathBuf>, docker_socket: Option<PathBuf>) -> Self {
        let mut system = System::new();
        system.refresh_cpu_usage();
        Self {
            system: Mutex::new(system),
            disk_path: disk_path.into(),
            docker_socket,
            docker: OnceCell::new(),
            cpu: Mutex::new(HashMap::new()),
        }
    }

    /// A probe of the root file system and no Docker engine.
    pub fn without_docker() -> Self {
        Self::new("/", None)
    }

    /// CPU, memory, disk, uptime and load of the host, now.
    pub fn host_metrics(&self) -> HostMetrics {
        let (cpu_percent, cpus, memory_total_bytes, memory_used_bytes) = match self.system.lock() {
            Ok(mut system) => {
                system.refresh_cpu_usage();
                system.refresh_memory();
                (
                    f64::from(system.global_cpu_usage()),
                    system.cpus().len(),
                    system.total_memory(),
                    system.used_memory(),
                )
            }
            Err(_) => (0.0, 0, 0, 0),
        };
        let cpus = if cpus == 0 {
            std::thread::available_parallelism().map_or(0, usize::from)
        } else {
            cpus
        };
        let (disk_total_bytes, disk_used_bytes) = disk_usage(&self.disk_path);
        HostMetrics {
            cpu_percent,
            cpus: u32::try_from(cpus).unwrap_or(u32::MAX),
            memory_total_bytes,
            memory_used_bytes,
            disk_total_bytes,
            disk_used_bytes,
            uptime_secs: System::uptime(),
            load1: System::load_average().one,
        }
    }

    /// The containers of the local engine (running and stopped), the running ones with their
    /// CPU and memory use (one stats reading each, a few containers at once; the CPU
    /// share is over the time since the previous call); empty without Docker.
    pub async fn containers(&self) -> Vec<ContainerSummary> {
        let Some(docker) = self.docker().await else {
            return Vec::new();
        };
        let options = ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let list = match docker.list_containers(Some(options)).await {
            Ok(list) => list,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list containers");
                return Vec::new();
            }
        };
        let summaries: Vec<ContainerSummary> = futures_util::stream::iter(list)
            .map(|c| self.sampled(docker, container_summary(c)))
            .buffered(SAMPLING)
            .collect()
            .await;
        // Forget the readings of containers that stopped or went away.
        if let Ok(mut cpu) = self.cpu.lock() {
            cpu.retain(|id, _| {
                summaries
                    .iter()
                    .any(|c| &c.id == id && c.state == "running")
            });
        }
        summaries
    }

    /// `summary` with its use, when it runs and Docker answers.
    async fn sampled(&self, docker: &Docker, mut summary: ContainerSummary) -> ContainerSummary {
        if summary.state != "running" {
            return summary;
        }
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let Some(Ok(stats)) = docker.stats(&summary.id, Some(options)).next().await else {
            return summary;
        };
        if let Some(memory) = &stats.memory_stats {
            summary.memory_bytes = memory_used(memory);
            summary.memory_limit_bytes = memory.limit;
        }
        if let Some(now) = cpu_reading(stats.cpu_stats.as_ref()) {
            let before = self
                .cpu
                .lock()
                .ok()
                .and_then(|mut c| c.insert(summary.id.clone(), now));
            summary.cpu_percent = before.and_then(|b| cpu_between(b, now));
        }
        summary
    }

    /// Whether the Docker engine answers, and its version.
    pub async fn docker_status(&self) -> DockerStatus {
        let Some(docker) = self.docker().await else {
            return DockerStatus {
                available: false,
                version: None,
                error: Some(match &self.docker_socket {
                    Some(socket) => format!("no Docker engine at {}", socket.display()),
                    None => "Docker is disabled for this agent".to_owned(),
                }),
            };
        };
        match docker.version().await {
            Ok(v) => DockerStatus {
                available: true,
                version: v.version,
                error: None,
            },
            Err(e) => DockerStatus {
                available: false,
                version: None,
                error: Some(e.to_string()),
            },
        }
    }

    /// The Docker client (a cheap clone sharing the connection pool) and the socket, or why
    /// there is none, for the Docker commands.
    pub(crate) async fn docker_client(&self) -> Result<Docker, String> {
        match (self.docker().await, &self.docker_socket) {
            (Some(docker), _) => Ok(docker.clone()),
            (None, Some(socket)) => {
                Err(format!("no Docker engine answers at {}", socket.display()))
            }
            (None, None) => Err("Docker is disabled for this agent".to_owned()),
        }
    }

    /// The Docker client, connected and version-negotiated on first use; `None` when there
    /// is no socket or the engine does not answer. A missing engine is looked for again on
    /// the next call only if it was never found: once found, the client is kept.
    async fn docker(&self) -> Option<&Docker> {
        let socket = self.docker_socket.as_ref()?;
        if let Some(found) = self.docker.get() {
            return found.as_ref();
        }
        let docker = connect_docker(socket).await?;
        self.docker
            .get_or_init(|| async { Some(docker) })
            .await
            .as_ref()
    }
}

/// A client for the engine at `socket`, speaking its API version; `None` when no engine
/// answers there.
pub async fn connect_docker(socket: &Path) -> Option<Docker> {
    if !socket.exists() {
        return None;
    }
    let path = socket.to_string_lossy();
    let docker =
        Docker::connect_with_unix(&path, DOCKER_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION).ok()?;
    // Speak the engine's API version when it is older than the client's.
    match tokio::time::timeout(
        Duration::from_secs(DOCKER_TIMEOUT_SECS),
        docker.clone().negotiate_version(),
    )
    .await
    {
        Ok(Ok(negotiated)) => Some(negotiated),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "the Docker engine does not answer");
            None
        }
        Err(_) => None,
    }
}

fn container_summary(c: bollard::models::ContainerSummary) -> ContainerSummary {
    let status = c.status.unwrap_or_default();
    ContainerSummary {
        id: c.id.unwrap_or_default(),
        name: container_name(c.names.as_deref()),
        image: c.image.unwrap_or_default(),
        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
        health: health_from_status(&status).to_owned(),
        cpu_percent: None,
        memory_bytes: None,
        memory_limit_bytes: None,
    }
}

/// A listed container's name: the first of its names, without Docker's leading `/`.
pub(crate) fn container_name(names: Option<&[String]>) -> String {
    names
        .and_then(|names| names.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_default()
}

/// The health Docker writes in a container's status line (`Up 5 minutes (healthy)`), or ""
/// when the container has no health check.
pub(crate) fn health_from_status(status: &str) -> &'static str {
    if status.contains("(healthy)") {
        "healthy"
    } else if status.contains("(unhealthy)") {
        "unhealthy"
    } else if status.contains("(health: starting)") {
        "starting"
    } else {
        ""
    }
}

/// Total and used bytes of the file system holding `path`: the mount point that is the
/// longest prefix of it.
fn disk_usage(path: &Path) -> (u64, u64) {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let disks = Disks::new_with_refreshed_list();
    disks
        .list()
        .iter()
        .filter(|d| path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map_or((0, 0), |d| {
            (
                d.total_space(),
                d.total_space().saturating_sub(d.available_space()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_metrics_are_plausible() {
        let probe = HostProbe::without_docker();
        let m = probe.host_metrics();
        assert!(m.cpus >= 1);
        assert!(m.memory_total_bytes > 0);
        assert!(m.memory_used_bytes <= m.memory_total_bytes);
        assert!(m.uptime_secs > 0);
        assert!((0.0..=100.0 * f64::from(m.cpus)).contains(&m.cpu_percent));
    }

    #[test]
    fn health_is_read_from_the_status_line() {
        assert_eq!(health_from_status("Up 2 minutes (healthy)"), "healthy");
        assert_eq!(health_from_status("Up 2 minutes (unhealthy)"), "unhealthy");
        assert_eq!(
            health_from_status("Up 1 second (health: starting)"),
            "starting"
        );
        assert_eq!(health_from_status("Exited (0) 3 hours ago"), "");
    }

    #[tokio::test]
    async fn a_missing_socket_means_no_docker_not_an_error() {
        let probe = HostProbe::new("/", Some(PathBuf::from("/nonexistent/docker.sock")));
        assert!(probe.containers().await.is_empty());
        let status = probe.docker_status().await;
        assert!(!status.available);
        assert!(status.error.unwrap().contains("/nonexistent/docker.sock"));
    }
}
