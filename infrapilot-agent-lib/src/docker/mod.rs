//! Docker operations: [`DockerCommands`] runs the protocol's `Docker` commands against the
//! local engine with bollard.
//!
//! A command carries the JSON of an [`infrapilot_core::docker::DockerRequest`]; the reply is
//! the JSON of the model type the request names, and streaming requests send chunks first
//! (their formats are documented on the request's variants). Docker's errors keep Docker's
//! message: 404 → `not_found`, 409 → `conflict`, 400 → `invalid`, an unreachable engine →
//! `unavailable`, other failures → `internal`.
//!
//! Every operation is safe to cancel at any await: the session drops the future, which drops
//! the connection to the engine (ending a log follow, a stats stream or an exec's attachment).

mod containers;
pub(crate) mod convert;
pub(crate) mod error;
mod exec;
mod images;
mod logs;
mod networks;
mod stacks;
mod volumes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use infrapilot_core::docker::{DockerRequest, MAX_STOP_TIMEOUT};
use infrapilot_core::values::Labels;
use infrapilot_proto::v1::command::Kind;
use serde::Serialize;

use crate::command::{CommandError, CommandHandler, ErrorCode, HandlerFuture, Replies, kind_name};
use crate::probe::HostProbe;

/// How long one ordinary Docker call may take before the engine counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a prune or an action on many containers may take.
const LONG_CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How many containers are inspected (and sampled) at once when listing.
const CONCURRENCY: usize = 16;

/// Runs `Docker` commands against the engine the [`HostProbe`] talks to (sharing its client).
///
/// Holds the last CPU counters of each running container, so that a container list shows a
/// CPU percentage from the second list on (Docker's one-shot stats carry one reading only).
#[derive(Debug)]
pub struct DockerCommands {
    probe: Arc<HostProbe>,
    cpu: containers::CpuCache,
}

impl DockerCommands {
    /// Docker commands over the probe's engine connection.
    pub fn new(probe: Arc<HostProbe>) -> Self {
        Self {
            probe,
            cpu: containers::CpuCache::default(),
        }
    }

    /// Runs one request, sending any streamed chunks through `replies`; the result is the
    /// reply's JSON.
    pub async fn execute(
        &self,
        request: &DockerRequest,
        replies: &Replies,
    ) -> Result<Vec<u8>, CommandError> {
        let docker = self
            .probe
            .docker_client()
            .await
            .map_err(|reason| CommandError::new(ErrorCode::Unavailable, reason))?
            .with_timeout(CALL_TIMEOUT);
        let d = &docker;
        match request {
            DockerRequest::ListContainers { all } => json(&self.cpu.list(d, *all).await?),
            DockerRequest::InspectContainer { container } => {
                json(&self.cpu.detail(d, container).await?)
            }
            DockerRequest::StartContainer { container } => {
                json(&containers::start(d, container).await?)
            }
            DockerRequest::StopContainer {
                container,
                timeout_secs,
            } => json(
                &containers::stop(
                    &with_stop_timeout(d, *timeout_secs)?,
                    container,
                    *timeout_secs,
                )
                .await?,
            ),
            DockerRequest::RestartContainer {
                container,
                timeout_secs,
            } => json(
                &containers::restart(
                    &with_stop_timeout(d, *timeout_secs)?,
                    container,
                    *timeout_secs,
                )
                .await?,
            ),
            DockerRequest::RemoveContainer {
                container,
                force,
                volumes,
            } => json(&containers::remove(d, container, *force, *volumes).await?),
            DockerRequest::Stats { container, stream } => {
                containers::stats(d, container, *stream, replies).await
            }
            DockerRequest::Logs {
                container,
                tail,
                since,
                until,
                follow,
            } => {
                let query = logs::LogQuery {
                    tail: *tail,
                    since: *since,
                    until: *until,
                    follow: *follow,
                };
                json(&logs::logs(d, container, query, replies).await?)
            }
            DockerRequest::Exec {
                container,
                cmd,
                tty,
                interactive,
                user,
                workdir,
                rows,
                cols,
            } => {
                let spec = exec::ExecSpec {
                    cmd,
                    tty: *tty,
                    interactive: *interactive,
                    user: user.as_ref(),
                    workdir: workdir.as_ref(),
                    size: rows.zip(*cols),
                };
                json(&exec::exec(d, container, spec, replies).await?)
            }
            DockerRequest::ListStacks => json(&stacks::list(d).await?),
            DockerRequest::StackAction { project, action } => {
                let d = docker.clone().with_timeout(LONG_CALL_TIMEOUT);
                json(&stacks::action(&d, project, *action).await?)
            }
            DockerRequest::ListNetworks => json(&networks::list(d).await?),
            DockerRequest::InspectNetwork { network } => {
                json(&networks::inspect(d, network).await?)
            }
            DockerRequest::ConnectNetwork {
                network,
                container,
                aliases,
            } => json(&networks::connect(d, network, container, aliases).await?),
            DockerRequest::DisconnectNetwork {
                network,
                container,
                force,
            } => json(&networks::disconnect(d, network, container, *force).await?),
            DockerRequest::ListImages => json(&images::list(d).await?),
            DockerRequest::InspectImage { image } => json(&images::inspect(d, image).await?),
            DockerRequest::RemoveImage { image, force } => {
                json(&images::remove(d, image, *force).await?)
            }
            DockerRequest::PruneImages { all, labels } => {
                let d = docker.clone().with_timeout(LONG_CALL_TIMEOUT);
                json(&images::prune(&d, *all, labels.as_ref()).await?)
            }
            DockerRequest::ListVolumes => json(&volumes::list(d).await?),
            DockerRequest::InspectVolume { volume } => json(&volumes::inspect(d, volume).await?),
            DockerRequest::RemoveVolume { volume, force } => {
                json(&volumes::remove(d, volume, *force).await?)
            }
            DockerRequest::PruneVolumes { all, labels } => {
                let d = docker.clone().with_timeout(LONG_CALL_TIMEOUT);
                json(&volumes::prune(&d, *all, labels.as_ref()).await?)
            }
        }
    }
}

impl CommandHandler for DockerCommands {
    fn handle<'a>(&'a self, kind: &'a Kind, replies: &'a Replies) -> HandlerFuture<'a> {
        Box::pin(async move {
            let Kind::Docker(docker) = kind else {
                return Err(CommandError::unsupported(kind_name(kind)));
            };
            let request: DockerRequest = serde_json::from_slice(&docker.request_json)
                .map_err(|e| CommandError::new(ErrorCode::Invalid, e.to_string()))?;
            self.execute(&request, replies).await
        })
    }
}

/// The reply's JSON.
fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, CommandError> {
    serde_json::to_vec(value).map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))
}

/// A client that waits long enough for a stop with `timeout_secs` (the container's own stop
/// timeout, up to the maximum, when absent).
fn with_stop_timeout(docker: &Docker, timeout_secs: Option<u32>) -> Result<Docker, CommandError> {
    let secs = timeout_secs.unwrap_or(MAX_STOP_TIMEOUT);
    if secs > MAX_STOP_TIMEOUT {
        return Err(CommandError::new(
            ErrorCode::Invalid,
            format!("timeout_secs must be at most {MAX_STOP_TIMEOUT}"),
        ));
    }
    Ok(docker
        .clone()
        .with_timeout(Duration::from_secs(u64::from(secs)) + CALL_TIMEOUT))
}

/// Docker's `label` filter for `labels` (every one must match), plus `extra` filters.
fn label_filters(labels: Option<&Labels>, extra: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut filters: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in labels.iter().flat_map(|l| l.iter()) {
        filters.entry("label".to_owned()).or_default().push(format!(
            "{}={}",
            k.as_str(),
            v.as_str()
        ));
    }
    for (k, v) in extra {
        filters
            .entry((*k).to_owned())
            .or_default()
            .push((*v).to_owned());
    }
    filters
}
