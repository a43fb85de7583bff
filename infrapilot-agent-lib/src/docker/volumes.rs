//! Volumes: list (with the containers using each), inspect, remove, prune.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::models::MountPointTypeEnum;
use bollard::query_parameters::{
    ListContainersOptions, ListVolumesOptions, PruneVolumesOptions, RemoveVolumeOptions,
};
use infrapilot_core::docker::{ActionReport, PruneReport, VolumeRef, VolumeSummary};
use infrapilot_core::values::Labels;

use super::error::docker_error;
use super::{convert, label_filters};
use crate::command::CommandError;
use crate::probe::container_name;

/// Every volume by name, each with the names of the containers (running or not) that mount it.
pub(super) async fn list(docker: &Docker) -> Result<Vec<VolumeSummary>, CommandError> {
    let (volumes, users) = tokio::join!(
        docker.list_volumes(None::<ListVolumesOptions>),
        users(docker, None)
    );
    let mut users = users?;
    let mut volumes: Vec<VolumeSummary> = volumes
        .map_err(docker_error)?
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            let in_use_by = users.remove(&v.name).unwrap_or_default();
            convert::volume_summary(v, in_use_by)
        })
        .collect();
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(volumes)
}

/// One volume with the containers that mount it.
pub(super) async fn inspect(
    docker: &Docker,
    volume: &VolumeRef,
) -> Result<VolumeSummary, CommandError> {
    let found = docker
        .inspect_volume(volume.as_str())
        .await
        .map_err(docker_error)?;
    let in_use_by = users(docker, Some(&found.name))
        .await?
        .remove(&found.name)
        .unwrap_or_default();
    Ok(convert::volume_summary(found, in_use_by))
}

/// Removes a volume (with `force`, also one in use).
pub(super) async fn remove(
    docker: &Docker,
    volume: &VolumeRef,
    force: bool,
) -> Result<ActionReport, CommandError> {
    docker
        .remove_volume(volume.as_str(), Some(RemoveVolumeOptions { force }))
        .await
        .map_err(docker_error)?;
    Ok(ActionReport {
        id: volume.as_str().to_owned(),
        changed: true,
        state: None,
    })
}

/// Removes the anonymous volumes no container uses, or with `all` the named ones too; only
/// those carrying `labels` when given.
///
/// Engines before API 1.42 (Docker 23) prune named volumes too and know no `all` filter: for
/// them, `all` is their prune, and without it the unused anonymous volumes (those with a
/// generated 64-hex-digit name) are removed one by one.
pub(super) async fn prune(
    docker: &Docker,
    all: bool,
    labels: Option<&Labels>,
) -> Result<PruneReport, CommandError> {
    let version = docker.client_version();
    let knows_all = (version.major_version, version.minor_version) >= (1, 42);
    if !knows_all && !all {
        return prune_anonymous(docker, labels).await;
    }
    let extra: &[(&str, &str)] = if all && knows_all {
        &[("all", "true")]
    } else {
        &[]
    };
    let options = PruneVolumesOptions {
        filters: Some(label_filters(labels, extra)),
    };
    let pruned = docker
        .prune_volumes(Some(options))
        .await
        .map_err(docker_error)?;
    Ok(PruneReport {
        deleted: pruned.volumes_deleted.unwrap_or_default(),
        untagged: Vec::new(),
        space_reclaimed: pruned
            .space_reclaimed
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0),
    })
}

/// The anonymous-only prune for engines that cannot be asked for it.
async fn prune_anonymous(
    docker: &Docker,
    labels: Option<&Labels>,
) -> Result<PruneReport, CommandError> {
    let options = ListVolumesOptions {
        filters: Some(label_filters(labels, &[("dangling", "true")])),
    };
    let unused = docker
        .list_volumes(Some(options))
        .await
        .map_err(docker_error)?
        .volumes
        .unwrap_or_default();
    let mut report = PruneReport::default();
    for volume in unused.into_iter().filter(|v| is_anonymous(&v.name)) {
        match docker
            .remove_volume(&volume.name, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => report.deleted.push(volume.name),
            // Taken into use since it was listed: not unused any more.
            Err(e) => tracing::debug!(volume = %volume.name, error = %e, "not pruned"),
        }
    }
    Ok(report)
}

/// Whether Docker generated the name (an anonymous volume): 64 lowercase hex digits.
fn is_anonymous(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Volume name → names of the containers mounting it (only `volume`'s when given).
async fn users(
    docker: &Docker,
    volume: Option<&str>,
) -> Result<HashMap<String, Vec<String>>, CommandError> {
    let options = ListContainersOptions {
        all: true,
        filters: volume.map(|v| HashMap::from([("volume".to_owned(), vec![v.to_owned()])])),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(docker_error)?;
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in containers {
        let name = container_name(c.names.as_deref());
        for mount in c.mounts.unwrap_or_default() {
            if mount.typ == Some(MountPointTypeEnum::VOLUME)
                && let Some(volume) = mount.name
            {
                users.entry(volume).or_default().push(name.clone());
            }
        }
    }
    Ok(users
        .into_iter()
        .map(|(volume, mut names)| {
            names.sort();
            (volume, names)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_volumes_have_generated_names() {
        assert!(is_anonymous(&"0f".repeat(32)));
        assert!(!is_anonymous("data"));
        assert!(!is_anonymous(&"0F".repeat(32)));
    }
}
