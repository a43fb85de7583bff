//! Images: list, inspect, remove, prune.

use bollard::Docker;
use bollard::query_parameters::{ListImagesOptions, PruneImagesOptions, RemoveImageOptions};
use infrapilot_core::docker::{ImageDetail, ImageRef, ImageSummary, PruneReport};
use infrapilot_core::values::Labels;

use super::error::docker_error;
use super::{convert, label_filters};
use crate::command::CommandError;

/// The tagged images and their untagged (dangling) tops, newest first as Docker lists them.
pub(super) async fn list(docker: &Docker) -> Result<Vec<ImageSummary>, CommandError> {
    Ok(docker
        .list_images(None::<ListImagesOptions>)
        .await
        .map_err(docker_error)?
        .into_iter()
        .map(convert::image_summary)
        .collect())
}

/// One image, environment variable names only.
pub(super) async fn inspect(
    docker: &Docker,
    image: &ImageRef,
) -> Result<ImageDetail, CommandError> {
    Ok(convert::image_detail(
        docker
            .inspect_image(image.as_str())
            .await
            .map_err(docker_error)?,
    ))
}

/// Removes an image (with `force`, also when stopped containers use it, and all its tags).
pub(super) async fn remove(
    docker: &Docker,
    image: &ImageRef,
    force: bool,
) -> Result<PruneReport, CommandError> {
    let size = docker
        .inspect_image(image.as_str())
        .await
        .map_err(docker_error)?
        .size
        .unwrap_or(0);
    let options = RemoveImageOptions {
        force,
        noprune: false,
    };
    let items = docker
        .remove_image(image.as_str(), Some(options), None)
        .await
        .map_err(docker_error)?;
    let mut report = PruneReport::default();
    for item in items {
        report.deleted.extend(item.deleted);
        report.untagged.extend(item.untagged);
    }
    if !report.deleted.is_empty() {
        report.space_reclaimed = u64::try_from(size).unwrap_or(0);
    }
    Ok(report)
}

/// Removes dangling images no container uses, or with `all` every image no container uses;
/// only those carrying `labels` when given.
pub(super) async fn prune(
    docker: &Docker,
    all: bool,
    labels: Option<&Labels>,
) -> Result<PruneReport, CommandError> {
    let dangling = if all { "false" } else { "true" };
    let options = PruneImagesOptions {
        filters: Some(label_filters(labels, &[("dangling", dangling)])),
    };
    let pruned = docker
        .prune_images(Some(options))
        .await
        .map_err(docker_error)?;
    let mut report = PruneReport {
        space_reclaimed: pruned
            .space_reclaimed
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0),
        ..PruneReport::default()
    };
    for item in pruned.images_deleted.unwrap_or_default() {
        report.deleted.extend(item.deleted);
        report.untagged.extend(item.untagged);
    }
    Ok(report)
}
