//! What an agent reports about its Docker engine: the replies to [`super::DockerRequest`].
//!
//! Field names are snake_case. Environment variables appear by **name only**: their values
//! never leave the host.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::request::ExecStream;

/// A container in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerSummary {
    /// The full id.
    pub id: String,
    /// The name, without Docker's leading `/`.
    pub name: String,
    /// The image as the container was created from it (`nginx:1.25`).
    pub image: String,
    /// The image id.
    pub image_id: String,
    /// The command line, for display.
    pub command: String,
    /// Creation time, unix seconds.
    pub created: i64,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub state: String,
    /// Docker's human status (`Up 5 minutes (healthy)`).
    pub status: String,
    /// `healthy`, `unhealthy` or `starting`; absent without a health check.
    pub health: Option<String>,
    /// How often Docker restarted it.
    pub restart_count: u64,
    /// Published and exposed ports.
    pub ports: Vec<PortMapping>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its compose project and service, from the compose labels.
    pub compose: Option<ComposeRef>,
    /// CPU use, percent of one core; absent until measured (stopped containers, first list).
    pub cpu_percent: Option<f64>,
    /// Memory in use, bytes (running containers).
    pub memory_bytes: Option<u64>,
    /// The memory limit, bytes (the host's memory when unlimited).
    pub memory_limit_bytes: Option<u64>,
    /// The networks it is attached to, by name.
    pub networks: Vec<String>,
}

/// A port of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortMapping {
    /// The port inside the container.
    pub private_port: u16,
    /// The host port it is published on, if it is.
    pub public_port: Option<u16>,
    /// The host address it is published on.
    pub ip: Option<String>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// A container's compose project and service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComposeRef {
    /// `com.docker.compose.project`.
    pub project: String,
    /// `com.docker.compose.service`.
    pub service: Option<String>,
}

/// A container in detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerDetail {
    /// The list view of the container.
    pub summary: ContainerSummary,
    /// When it last started, RFC 3339 (absent if never).
    pub started_at: Option<String>,
    /// When it last stopped, RFC 3339 (absent if never).
    pub finished_at: Option<String>,
    /// The last exit code.
    pub exit_code: Option<i64>,
    /// Whether the kernel killed it for memory.
    pub oom_killed: bool,
    /// Its main process id on the host while running.
    pub pid: Option<i64>,
    /// Its configuration.
    pub config: ContainerConfigView,
    /// Its host configuration.
    pub host_config: HostConfigView,
    /// Its mounts.
    pub mounts: Vec<MountView>,
    /// Its network attachments.
    pub network_attachments: Vec<NetworkAttachment>,
}

/// A container's configuration, with environment variable names only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerConfigView {
    /// The user it runs as (empty: the image's, usually root).
    pub user: String,
    /// The host name inside.
    pub hostname: String,
    /// The working directory.
    pub working_dir: String,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// The command.
    pub cmd: Vec<String>,
    /// The names of the environment variables; values stay on the host.
    pub env_names: Vec<String>,
    /// Exposed ports (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// Whether it has a TTY.
    pub tty: bool,
    /// Its health check.
    pub healthcheck: Option<HealthcheckView>,
}

/// A health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthcheckView {
    /// The test (`["CMD", "curl", …]`; `["NONE"]` disables).
    pub test: Vec<String>,
    /// Seconds between checks.
    pub interval_secs: Option<u64>,
    /// Seconds a check may take.
    pub timeout_secs: Option<u64>,
    /// Failures before unhealthy.
    pub retries: Option<i64>,
}

/// The host side of a container's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostConfigView {
    /// Whether it is privileged.
    pub privileged: bool,
    /// `bridge`, `host`, `none`, `container:<id>` or a network name.
    pub network_mode: String,
    /// The restart policy's name (`no`, `always`, `unless-stopped`, `on-failure`).
    pub restart_policy: String,
    /// Retries for `on-failure`.
    pub restart_max_retries: Option<i64>,
    /// The memory limit, bytes (0: unlimited).
    pub memory: i64,
    /// The CPU limit in billionths of a CPU (0: unlimited).
    pub nano_cpus: i64,
    /// Whether the root file system is read-only.
    pub readonly_rootfs: bool,
    /// Added capabilities.
    pub cap_add: Vec<String>,
    /// Dropped capabilities.
    pub cap_drop: Vec<String>,
    /// The PID namespace mode.
    pub pid_mode: String,
}

/// A mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MountView {
    /// `bind`, `volume`, `tmpfs`, `npipe` or `cluster`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The volume's name, for volumes.
    pub name: Option<String>,
    /// The host path or volume path.
    pub source: String,
    /// The path inside the container.
    pub destination: String,
    /// Whether it is writable.
    pub rw: bool,
}

/// A container's attachment to a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkAttachment {
    /// The network's name.
    pub network: String,
    /// The network's id.
    pub network_id: String,
    /// The container's IPv4 address there.
    pub ip_address: Option<String>,
    /// Its gateway.
    pub gateway: Option<String>,
    /// The container's DNS aliases there.
    pub aliases: Vec<String>,
}

/// One resource-usage sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsSample {
    /// When Docker read it, RFC 3339.
    pub read: String,
    /// CPU use, percent of one core (200 = two cores busy).
    pub cpu_percent: f64,
    /// CPUs the container may use.
    pub online_cpus: u32,
    /// Memory in use (without page cache), bytes.
    pub memory_bytes: u64,
    /// The memory limit, bytes.
    pub memory_limit_bytes: u64,
    /// `memory_bytes` as a percent of the limit.
    pub memory_percent: f64,
    /// Bytes received over all networks.
    pub network_rx_bytes: u64,
    /// Bytes sent over all networks.
    pub network_tx_bytes: u64,
    /// Bytes read from block devices.
    pub block_read_bytes: u64,
    /// Bytes written to block devices.
    pub block_write_bytes: u64,
    /// Processes and threads.
    pub pids: u64,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// stdout or stderr.
    pub stream: ExecStream,
    /// Docker's timestamp, RFC 3339 with nanoseconds.
    pub timestamp: Option<String>,
    /// The line, without its newline; invalid UTF-8 replaced.
    pub line: String,
}

/// Log lines of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogsPage {
    /// The lines, oldest first.
    pub lines: Vec<LogLine>,
}

/// The result of an exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecResult {
    /// The process's exit code.
    pub exit_code: Option<i64>,
    /// Captured standard output (one-shot exec; a TTY merges stderr into it).
    pub stdout: String,
    /// Captured standard error (one-shot exec without a TTY).
    pub stderr: String,
    /// Whether output past 1 MiB per stream was cut.
    pub truncated: bool,
}

/// The outcome of a single action on a Docker object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionReport {
    /// The object's id or name as Docker reported it.
    pub id: String,
    /// Whether anything changed (`false`: it already was in the asked state).
    pub changed: bool,
    /// The container's state afterwards, for container actions.
    pub state: Option<String>,
}

/// A compose project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stack {
    /// The project name.
    pub project: String,
    /// The project's working directory, from the compose labels.
    pub working_dir: Option<String>,
    /// Its services, sorted.
    pub services: Vec<String>,
    /// How many of its containers run.
    pub running: usize,
    /// How many containers it has.
    pub total: usize,
    /// Its containers.
    pub containers: Vec<StackMember>,
}

/// A container of a stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StackMember {
    /// The container id.
    pub id: String,
    /// The container name.
    pub name: String,
    /// The service.
    pub service: Option<String>,
    /// The container's state.
    pub state: String,
}

/// What a stack action did to each container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StackReport {
    /// The project.
    pub project: String,
    /// One entry per container.
    pub containers: Vec<StackMemberOutcome>,
}

/// One container's outcome in a stack action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StackMemberOutcome {
    /// The container id.
    pub id: String,
    /// The container name.
    pub name: String,
    /// Whether the action succeeded.
    pub ok: bool,
    /// Docker's message when it did not.
    pub error: Option<String>,
}

/// A network in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkSummary {
    /// The id.
    pub id: String,
    /// The name.
    pub name: String,
    /// `bridge`, `host`, `null`, `overlay`, `macvlan`, …
    pub driver: String,
    /// `local` or `swarm`.
    pub scope: String,
    /// Whether it has no outside connectivity.
    pub internal: bool,
    /// Whether containers may be attached manually (swarm networks).
    pub attachable: bool,
    /// Its subnets.
    pub subnets: Vec<String>,
    /// Creation time, RFC 3339.
    pub created: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Whether InfraPilot may attach containers to it; see [`super::connectable`].
    pub connectable: bool,
}

/// A network with its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkDetail {
    /// The list view.
    pub summary: NetworkSummary,
    /// The attached containers.
    pub containers: Vec<NetworkMember>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
}

/// A container attached to a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkMember {
    /// The container id.
    pub id: String,
    /// The container name.
    pub name: String,
    /// Its IPv4 address with prefix.
    pub ipv4_address: Option<String>,
}

/// An image in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageSummary {
    /// The id (`sha256:…`).
    pub id: String,
    /// Its tags (`nginx:1.25`).
    pub tags: Vec<String>,
    /// Its repository digests.
    pub digests: Vec<String>,
    /// Size, bytes.
    pub size: i64,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Containers using it (−1: Docker did not count).
    pub containers: i64,
    /// Whether it has no tag.
    pub dangling: bool,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// An image in detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageDetail {
    /// The list view.
    pub summary: ImageSummary,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `linux`, …
    pub os: String,
    /// The default user.
    pub user: String,
    /// The default command.
    pub cmd: Vec<String>,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// Names of the environment variables it sets; values stay on the host.
    pub env_names: Vec<String>,
    /// Exposed ports.
    pub exposed_ports: Vec<String>,
    /// Number of layers.
    pub layers: usize,
}

/// A volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VolumeSummary {
    /// The name.
    pub name: String,
    /// The driver.
    pub driver: String,
    /// Where it lives on the host.
    pub mountpoint: String,
    /// Creation time, RFC 3339.
    pub created: Option<String>,
    /// `local` or `global`.
    pub scope: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Containers using it (listing with usage only).
    pub in_use_by: Vec<String>,
}

/// What a removal or prune deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PruneReport {
    /// Removed objects (ids or names).
    pub deleted: Vec<String>,
    /// Removed tags.
    pub untagged: Vec<String>,
    /// Bytes freed.
    pub space_reclaimed: u64,
}
