//! Containers: list (with restart count, CPU and memory), inspect, start, stop, restart,
//! remove, stats.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    RestartContainerOptions, StartContainerOptions, StatsOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use infrapilot_core::docker::{ActionReport, ContainerDetail, ContainerRef, ContainerSummary};

use super::convert::{self, CpuReading};
use super::error::{docker_error, is_not_found};
use super::json;
use crate::command::{CommandError, ErrorCode, Replies};

/// How many containers a list inspects and samples at once. Docker's stats collector answers
/// every one-shot stats request at its next tick (about a second), so requests made together
/// wait for one tick, while requests made in batches of 16 wait for one tick per batch (a list
/// of 200 containers took 13.7 s that way, and takes one tick this way).
const LIST_CONCURRENCY: usize = 256;

/// The last CPU counters of each running container, by id.
#[derive(Debug, Default)]
pub(super) struct CpuCache(Mutex<HashMap<String, CpuReading>>);

impl CpuCache {
    /// Every container (or the running ones), each inspected for its restart count and health
    /// and, when running, sampled once for CPU and memory — at most [`LIST_CONCURRENCY`] at a
    /// time.
    pub(super) async fn list(
        &self,
        docker: &Docker,
        all: bool,
    ) -> Result<Vec<ContainerSummary>, CommandError> {
        let options = ListContainersOptions {
            all,
            ..Default::default()
        };
        let list = docker
            .list_containers(Some(options))
            .await
            .map_err(docker_error)?;
        let summaries: Vec<ContainerSummary> = futures_util::stream::iter(list)
            .map(|c| self.enrich(docker, convert::summary(c), None))
            .buffered(LIST_CONCURRENCY)
            .filter_map(|c| async move { c })
            .collect()
            .await;
        // Forget containers that stopped or went away.
        let running: HashSet<&str> = summaries
            .iter()
            .filter(|c| c.state == "running")
            .map(|c| c.id.as_str())
            .collect();
        if let Ok(mut cache) = self.0.lock() {
            cache.retain(|id, _| running.contains(id.as_str()));
        }
        Ok(summaries)
    }

    /// One container in detail.
    pub(super) async fn detail(
        &self,
        docker: &Docker,
        container: &ContainerRef,
    ) -> Result<ContainerDetail, CommandError> {
        let inspect = inspect(docker, container.as_str()).await?;
        let id = inspect.id.clone().unwrap_or_default();
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("id".to_owned(), vec![id.clone()])])),
            ..Default::default()
        };
        let listed = docker
            .list_containers(Some(options))
            .await
            .map_err(docker_error)?
            .into_iter()
            .find(|c| c.id.as_deref() == Some(id.as_str()))
            .ok_or_else(|| gone(container))?;
        let summary = self
            .enrich(docker, convert::summary(listed), Some(inspect.clone()))
            .await
            .ok_or_else(|| gone(container))?;
        Ok(convert::detail(summary, inspect))
    }

    /// Adds the restart count and health (from `inspect`, or inspecting now) and, for a
    /// running container, CPU and memory from a one-shot stats reading. `None` when the
    /// container went away meanwhile.
    async fn enrich(
        &self,
        docker: &Docker,
        mut summary: ContainerSummary,
        inspect: Option<ContainerInspectResponse>,
    ) -> Option<ContainerSummary> {
        let id = summary.id.clone();
        let running = summary.state == "running";
        let inspected = async {
            match inspect {
                Some(i) => Ok(i),
                None => {
                    docker
                        .inspect_container(&id, None::<InspectContainerOptions>)
                        .await
                }
            }
        };
        let sampled = async {
            if !running {
                return None;
            }
            let options = StatsOptions {
                stream: false,
                one_shot: true,
            };
            docker.stats(&id, Some(options)).next().await
        };
        let (inspected, sampled) = tokio::join!(inspected, sampled);
        match inspected {
            Ok(i) => convert::apply_inspect(&mut summary, &i),
            Err(e) if is_not_found(&e) => return None,
            Err(e) => tracing::debug!(container = %id, error = %e, "inspect failed"),
        }
        if let Some(Ok(stats)) = sampled {
            if let Some(memory) = &stats.memory_stats {
                summary.memory_bytes = convert::memory_used(memory);
                summary.memory_limit_bytes = memory.limit;
            }
            if let Some(now) = convert::cpu_reading(stats.cpu_stats.as_ref()) {
                let before = self.0.lock().ok().and_then(|mut c| c.insert(id, now));
                summary.cpu_percent = before.and_then(|b| convert::cpu_between(b, now));
            }
        }
        Some(summary)
    }
}

/// Starts a container; one already running is left alone (`changed: false`).
pub(super) async fn start(
    docker: &Docker,
    container: &ContainerRef,
) -> Result<ActionReport, CommandError> {
    let (id, before) = resolve(docker, container).await?;
    if status(&before) == Some(ContainerStateStatusEnum::RUNNING) {
        return Ok(report(id, false, "running"));
    }
    // Docker answers 304 (which bollard counts as success) when it already runs.
    docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
        .map_err(docker_error)?;
    after(docker, id, true).await
}

/// Stops a container; one that is not running is left alone (`changed: false`).
pub(super) async fn stop(
    docker: &Docker,
    container: &ContainerRef,
    timeout_secs: Option<u32>,
) -> Result<ActionReport, CommandError> {
    let (id, before) = resolve(docker, container).await?;
    if let Some(
        s @ (ContainerStateStatusEnum::CREATED
        | ContainerStateStatusEnum::EXITED
        | ContainerStateStatusEnum::DEAD),
    ) = status(&before)
    {
        return Ok(report(id, false, s.as_ref()));
    }
    let options = StopContainerOptions {
        t: seconds(timeout_secs),
        signal: None,
    };
    docker
        .stop_container(&id, Some(options))
        .await
        .map_err(docker_error)?;
    after(docker, id, true).await
}

/// Restarts a container.
pub(super) async fn restart(
    docker: &Docker,
    container: &ContainerRef,
    timeout_secs: Option<u32>,
) -> Result<ActionReport, CommandError> {
    let (id, _) = resolve(docker, container).await?;
    let options = RestartContainerOptions {
        t: seconds(timeout_secs),
        signal: None,
    };
    docker
        .restart_container(&id, Some(options))
        .await
        .map_err(docker_error)?;
    after(docker, id, true).await
}

/// Removes a container (killing it first with `force`, its anonymous volumes with `volumes`).
pub(super) async fn remove(
    docker: &Docker,
    container: &ContainerRef,
    force: bool,
    volumes: bool,
) -> Result<ActionReport, CommandError> {
    let (id, _) = resolve(docker, container).await?;
    let options = RemoveContainerOptions {
        force,
        v: volumes,
        link: false,
    };
    docker
        .remove_container(&id, Some(options))
        .await
        .map_err(docker_error)?;
    Ok(ActionReport {
        id,
        changed: true,
        state: None,
    })
}

/// One stats sample (Docker takes about a second to measure CPU), or with `stream` a sample
/// per chunk about every second until cancelled; the final reply is the last sample.
pub(super) async fn stats(
    docker: &Docker,
    container: &ContainerRef,
    stream: bool,
    replies: &Replies,
) -> Result<Vec<u8>, CommandError> {
    let options = StatsOptions {
        stream,
        one_shot: false,
    };
    let mut samples = docker.stats(container.as_str(), Some(options));
    let mut last = None;
    while let Some(reading) = samples.next().await {
        let sample = convert::stats_sample(&reading.map_err(docker_error)?);
        if !stream {
            return json(&sample);
        }
        replies.chunk(json(&sample)?).await?;
        last = Some(sample);
    }
    // The engine ends a stream when the container goes away.
    match last {
        Some(sample) => json(&sample),
        None => Err(gone(container)),
    }
}

pub(super) async fn inspect(
    docker: &Docker,
    container: &str,
) -> Result<ContainerInspectResponse, CommandError> {
    docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .map_err(docker_error)
}

/// The container's full id (actions use it, so a name reused meanwhile is not hit) and its
/// inspect.
async fn resolve(
    docker: &Docker,
    container: &ContainerRef,
) -> Result<(String, ContainerInspectResponse), CommandError> {
    let inspected = inspect(docker, container.as_str()).await?;
    let id = inspected
        .id
        .clone()
        .unwrap_or_else(|| container.as_str().to_owned());
    Ok((id, inspected))
}

/// A stop timeout as Docker takes it.
fn seconds(timeout_secs: Option<u32>) -> Option<i32> {
    timeout_secs.map(|t| i32::try_from(t).unwrap_or(i32::MAX))
}

fn status(inspect: &ContainerInspectResponse) -> Option<ContainerStateStatusEnum> {
    inspect.state.as_ref().and_then(|s| s.status)
}

/// The report of an action on `id`, with its state read afterwards.
async fn after(docker: &Docker, id: String, changed: bool) -> Result<ActionReport, CommandError> {
    let state = inspect(docker, &id)
        .await
        .ok()
        .and_then(|i| status(&i))
        .map(|s| s.to_string());
    Ok(ActionReport { id, changed, state })
}

fn report(id: String, changed: bool, state: &str) -> ActionReport {
    ActionReport {
        id,
        changed,
        state: Some(state.to_owned()),
    }
}

fn gone(container: &ContainerRef) -> CommandError {
    CommandError::new(
        ErrorCode::NotFound,
        format!("No such container: {}", container.as_str()),
    )
}
