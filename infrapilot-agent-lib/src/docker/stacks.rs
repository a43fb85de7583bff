//! Compose stacks: containers grouped by their compose project label.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, RestartContainerOptions, StartContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use infrapilot_core::docker::{
    COMPOSE_PROJECT, ContainerSummary, ProjectName, Stack, StackMemberOutcome, StackReport,
    StackVerb, group_stacks,
};

use super::CONCURRENCY;
use super::convert;
use super::error::docker_error;
use crate::command::{CommandError, ErrorCode};

/// The compose projects on the host, with running/total counts.
pub(super) async fn list(docker: &Docker) -> Result<Vec<Stack>, CommandError> {
    Ok(group_stacks(&members(docker, COMPOSE_PROJECT).await?))
}

/// Starts, stops or restarts every container of `project` (each with its own stop timeout),
/// a few at a time; one container's failure does not stop the others.
pub(super) async fn action(
    docker: &Docker,
    project: &ProjectName,
    verb: StackVerb,
) -> Result<StackReport, CommandError> {
    let label = format!("{COMPOSE_PROJECT}={}", project.as_str());
    let containers = members(docker, &label).await?;
    if containers.is_empty() {
        return Err(CommandError::new(
            ErrorCode::NotFound,
            format!(
                "no container belongs to the compose project {}",
                project.as_str()
            ),
        ));
    }
    let mut outcomes: Vec<StackMemberOutcome> = futures_util::stream::iter(containers)
        .map(|c| async move {
            let id = c.id.as_str();
            let result = match verb {
                StackVerb::Start => {
                    docker
                        .start_container(id, None::<StartContainerOptions>)
                        .await
                }
                StackVerb::Stop => {
                    docker
                        .stop_container(id, None::<StopContainerOptions>)
                        .await
                }
                StackVerb::Restart => {
                    docker
                        .restart_container(id, None::<RestartContainerOptions>)
                        .await
                }
            };
            let error = result.err().map(|e| docker_error(e).message);
            StackMemberOutcome {
                ok: error.is_none(),
                error,
                id: c.id,
                name: c.name,
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(StackReport {
        project: project.as_str().to_owned(),
        containers: outcomes,
    })
}

/// Every container (running or not) carrying the label filter `label`.
async fn members(docker: &Docker, label: &str) -> Result<Vec<ContainerSummary>, CommandError> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![label.to_owned()],
        )])),
        ..Default::default()
    };
    Ok(docker
        .list_containers(Some(options))
        .await
        .map_err(docker_error)?
        .into_iter()
        .map(convert::summary)
        .collect())
}
