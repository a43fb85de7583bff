//! The Docker operations the control plane asks an agent for.
//!
//! A [`DockerRequest`] travels as JSON inside the protocol's `Docker` command; the agent answers
//! with the JSON of the matching model type (named on each variant). Streaming operations
//! (`logs` with `follow`, `stats` with `stream`, interactive `exec`) send chunks before their
//! final reply; the chunk formats are described on the variants.

use serde::{Deserialize, Serialize};

use super::refs::{
    ContainerPath, ContainerRef, ExecCommand, ExecUser, ImageRef, NetworkRef, ProjectName,
    VolumeRef,
};
use crate::values::Labels;

/// The most log lines one request may ask for.
pub const MAX_LOG_TAIL: u32 = 10_000;
/// The default number of log lines.
pub const DEFAULT_LOG_TAIL: u32 = 200;
/// The most output one-shot exec captures per stream, bytes; the rest is cut and flagged.
pub const MAX_EXEC_OUTPUT: usize = 1 << 20;
/// The longest stop timeout, seconds.
pub const MAX_STOP_TIMEOUT: u32 = 600;

/// One Docker operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum DockerRequest {
    /// Lists containers. Reply: `Vec<ContainerSummary>`.
    ListContainers {
        /// Stopped containers too (default true).
        #[serde(default = "yes")]
        all: bool,
    },
    /// One container in detail. Reply: [`super::ContainerDetail`].
    InspectContainer {
        /// The container.
        container: ContainerRef,
    },
    /// Starts a container. Reply: [`super::ActionReport`].
    StartContainer {
        /// The container.
        container: ContainerRef,
    },
    /// Stops a container. Reply: [`super::ActionReport`].
    StopContainer {
        /// The container.
        container: ContainerRef,
        /// Seconds to wait after SIGTERM before SIGKILL (Docker's default when absent).
        #[serde(default)]
        timeout_secs: Option<u32>,
    },
    /// Restarts a container. Reply: [`super::ActionReport`].
    RestartContainer {
        /// The container.
        container: ContainerRef,
        /// Seconds to wait after SIGTERM before SIGKILL.
        #[serde(default)]
        timeout_secs: Option<u32>,
    },
    /// Removes a container. Reply: [`super::ActionReport`].
    RemoveContainer {
        /// The container.
        container: ContainerRef,
        /// Kill it first if it runs.
        #[serde(default)]
        force: bool,
        /// Remove its anonymous volumes too.
        #[serde(default)]
        volumes: bool,
    },
    /// Resource usage. With `stream`, chunks of one [`super::StatsSample`] JSON each, about one
    /// a second, until cancelled; without, the reply is one [`super::StatsSample`].
    Stats {
        /// The container.
        container: ContainerRef,
        /// Keep sending samples.
        #[serde(default)]
        stream: bool,
    },
    /// Log lines. Reply: [`super::LogsPage`]. With `follow`, the last `tail` lines and then
    /// new lines arrive as chunks, each a JSON array of [`super::LogLine`], until cancelled.
    Logs {
        /// The container.
        container: ContainerRef,
        /// How many lines from the end (default 200, at most 10,000).
        #[serde(default)]
        tail: Option<u32>,
        /// Only lines at or after this time, unix seconds.
        #[serde(default)]
        since: Option<i64>,
        /// Only lines before this time, unix seconds.
        #[serde(default)]
        until: Option<i64>,
        /// Keep streaming new lines.
        #[serde(default)]
        follow: bool,
    },
    /// Runs a process in a running container.
    ///
    /// One-shot (`interactive` false): the reply is an [`super::ExecResult`] with the captured
    /// output. Interactive: the agent streams output as chunks — the first byte names the
    /// stream (1 stdout, 2 stderr; with a TTY everything is 1), the rest is raw bytes — takes
    /// stdin and terminal resizes from the command's input messages, and replies with an
    /// [`super::ExecResult`] holding only the exit code when the process ends.
    Exec {
        /// The container.
        container: ContainerRef,
        /// The argument vector.
        cmd: ExecCommand,
        /// Allocate a pseudo-terminal.
        #[serde(default)]
        tty: bool,
        /// Stream output and accept input (a terminal session).
        #[serde(default)]
        interactive: bool,
        /// The user to run as (the container's user when absent).
        #[serde(default)]
        user: Option<ExecUser>,
        /// The working directory (the container's when absent).
        #[serde(default)]
        workdir: Option<ContainerPath>,
        /// The initial terminal size, rows.
        #[serde(default)]
        rows: Option<u16>,
        /// The initial terminal size, columns.
        #[serde(default)]
        cols: Option<u16>,
    },
    /// Compose projects on the host with their containers. Reply: `Vec<Stack>`.
    ListStacks,
    /// Starts, stops or restarts every container of a compose project. Reply:
    /// [`super::StackReport`].
    StackAction {
        /// The compose project.
        project: ProjectName,
        /// What to do.
        action: StackVerb,
    },
    /// Lists networks. Reply: `Vec<NetworkSummary>`.
    ListNetworks,
    /// One network with its containers. Reply: [`super::NetworkDetail`].
    InspectNetwork {
        /// The network.
        network: NetworkRef,
    },
    /// Connects a container to a network. Host, none and swarm-scoped networks are refused
    /// (see [`super::connectable`]). Reply: [`super::ActionReport`].
    ConnectNetwork {
        /// The network.
        network: NetworkRef,
        /// The container.
        container: ContainerRef,
        /// Extra DNS names of the container on this network.
        #[serde(default)]
        aliases: Vec<ContainerRef>,
    },
    /// Disconnects a container from a network. Reply: [`super::ActionReport`].
    DisconnectNetwork {
        /// The network.
        network: NetworkRef,
        /// The container.
        container: ContainerRef,
        /// Disconnect even if the container is not running.
        #[serde(default)]
        force: bool,
    },
    /// Lists images. Reply: `Vec<ImageSummary>`.
    ListImages,
    /// One image. Reply: [`super::ImageDetail`].
    InspectImage {
        /// The image.
        image: ImageRef,
    },
    /// Removes an image. Reply: [`super::PruneReport`] (what was untagged and deleted).
    RemoveImage {
        /// The image.
        image: ImageRef,
        /// Remove it even if stopped containers use it, and all its tags.
        #[serde(default)]
        force: bool,
    },
    /// Removes unused images: dangling ones, or every image no container uses with `all`.
    /// Reply: [`super::PruneReport`].
    PruneImages {
        /// Every unused image, not only dangling ones.
        #[serde(default)]
        all: bool,
        /// Only images carrying every one of these labels (Docker's `label=key=value` prune
        /// filter); absent: no restriction. Added after the first release: absent from older
        /// senders' JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<Labels>,
    },
    /// Lists volumes. Reply: `Vec<VolumeSummary>`.
    ListVolumes,
    /// One volume. Reply: [`super::VolumeSummary`].
    InspectVolume {
        /// The volume.
        volume: VolumeRef,
    },
    /// Removes a volume. Reply: [`super::ActionReport`].
    RemoveVolume {
        /// The volume.
        volume: VolumeRef,
        /// Remove it even if it is in use.
        #[serde(default)]
        force: bool,
    },
    /// Removes volumes no container uses (named ones too with `all`). Reply:
    /// [`super::PruneReport`].
    PruneVolumes {
        /// Named volumes too, not only anonymous ones.
        #[serde(default)]
        all: bool,
        /// Only volumes carrying every one of these labels (Docker's `label=key=value` prune
        /// filter); absent: no restriction. Added after the first release: absent from older
        /// senders' JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<Labels>,
    },
}

fn yes() -> bool {
    true
}

/// What to do to a whole compose project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StackVerb {
    /// Start every container.
    Start,
    /// Stop every container.
    Stop,
    /// Restart every container.
    Restart,
}

impl DockerRequest {
    /// The operation's name, e.g. `start_container`, for logs, metrics and audit entries.
    pub fn op(&self) -> &'static str {
        match self {
            Self::ListContainers { .. } => "list_containers",
            Self::InspectContainer { .. } => "inspect_container",
            Self::StartContainer { .. } => "start_container",
            Self::StopContainer { .. } => "stop_container",
            Self::RestartContainer { .. } => "restart_container",
            Self::RemoveContainer { .. } => "remove_container",
            Self::Stats { .. } => "stats",
            Self::Logs { .. } => "logs",
            Self::Exec { .. } => "exec",
            Self::ListStacks => "list_stacks",
            Self::StackAction { .. } => "stack_action",
            Self::ListNetworks => "list_networks",
            Self::InspectNetwork { .. } => "inspect_network",
            Self::ConnectNetwork { .. } => "connect_network",
            Self::DisconnectNetwork { .. } => "disconnect_network",
            Self::ListImages => "list_images",
            Self::InspectImage { .. } => "inspect_image",
            Self::RemoveImage { .. } => "remove_image",
            Self::PruneImages { .. } => "prune_images",
            Self::ListVolumes => "list_volumes",
            Self::InspectVolume { .. } => "inspect_volume",
            Self::RemoveVolume { .. } => "remove_volume",
            Self::PruneVolumes { .. } => "prune_volumes",
        }
    }

    /// Whether the operation changes the host (and so is gated, audited and needs the
    /// operator role).
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Self::StartContainer { .. }
                | Self::StopContainer { .. }
                | Self::RestartContainer { .. }
                | Self::RemoveContainer { .. }
                | Self::Exec { .. }
                | Self::StackAction { .. }
                | Self::ConnectNetwork { .. }
                | Self::DisconnectNetwork { .. }
                | Self::RemoveImage { .. }
                | Self::PruneImages { .. }
                | Self::RemoveVolume { .. }
                | Self::PruneVolumes { .. }
        )
    }

    /// Whether the reply may be preceded by chunks.
    pub fn is_streaming(&self) -> bool {
        match self {
            Self::Logs { follow, .. } => *follow,
            Self::Stats { stream, .. } => *stream,
            Self::Exec { interactive, .. } => *interactive,
            _ => false,
        }
    }

    /// The serialized request, as the `Docker` command carries it.
    pub fn to_json(&self) -> Vec<u8> {
        // A request holds only strings, numbers and booleans: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One frame of interactive exec output: the stream byte and the data.
pub fn exec_frame(stream: ExecStream, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(stream as u8);
    frame.extend_from_slice(data);
    frame
}

/// Splits an interactive exec frame into its stream and data; `None` for an empty or unknown
/// frame.
pub fn split_exec_frame(frame: &[u8]) -> Option<(ExecStream, &[u8])> {
    let (first, rest) = frame.split_first()?;
    let stream = match first {
        1 => ExecStream::Stdout,
        2 => ExecStream::Stderr,
        _ => return None,
    };
    Some((stream, rest))
}

/// Which output stream a frame or log line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ExecStream {
    /// Standard output (and a TTY's merged output).
    Stdout = 1,
    /// Standard error.
    Stderr = 2,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_round_trip_through_json_and_refuse_bad_references() {
        let request: DockerRequest = serde_json::from_value(json!({
            "op": "stop_container", "container": "web", "timeout_secs": 5
        }))
        .unwrap();
        assert_eq!(request.op(), "stop_container");
        assert!(request.is_mutating());
        let back: DockerRequest = serde_json::from_slice(&request.to_json()).unwrap();
        assert_eq!(back, request);
        let bad = serde_json::from_value::<DockerRequest>(json!({
            "op": "start_container", "container": "web; rm -rf /"
        }));
        assert!(bad.unwrap_err().to_string().contains("container"));
        let unknown = serde_json::from_value::<DockerRequest>(json!({
            "op": "start_container", "container": "web", "privileged": true
        }));
        assert!(unknown.is_err());
        let list: DockerRequest = serde_json::from_value(json!({"op": "list_containers"})).unwrap();
        assert_eq!(list, DockerRequest::ListContainers { all: true });
        assert!(!list.is_mutating());
    }

    #[test]
    fn prune_label_filters_are_optional_on_the_wire() {
        let old: DockerRequest =
            serde_json::from_value(json!({"op": "prune_volumes", "all": true})).unwrap();
        assert_eq!(
            old,
            DockerRequest::PruneVolumes {
                all: true,
                labels: None
            }
        );
        assert_eq!(
            serde_json::to_value(&old).unwrap(),
            json!({"op": "prune_volumes", "all": true})
        );
        let scoped: DockerRequest = serde_json::from_value(json!({
            "op": "prune_images", "labels": {"infrapilot.test": "run-1"}
        }))
        .unwrap();
        let DockerRequest::PruneImages { all, labels } = &scoped else {
            panic!("{scoped:?}");
        };
        assert!(!all);
        assert_eq!(
            labels
                .as_ref()
                .and_then(|l| l.get("infrapilot.test"))
                .map(|v| v.as_str()),
            Some("run-1")
        );
        assert!(
            serde_json::from_value::<DockerRequest>(json!({
                "op": "prune_images", "labels": {"bad key!": "x"}
            }))
            .is_err()
        );
    }

    #[test]
    fn exec_frames_carry_their_stream() {
        let frame = exec_frame(ExecStream::Stderr, b"oops");
        assert_eq!(
            split_exec_frame(&frame),
            Some((ExecStream::Stderr, &b"oops"[..]))
        );
        assert_eq!(split_exec_frame(&[]), None);
        assert_eq!(split_exec_frame(&[9, 1]), None);
    }
}
