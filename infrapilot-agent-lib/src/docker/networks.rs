//! Networks: list, inspect, connect and disconnect a container — refusing the networks
//! InfraPilot does not attach containers to (see [`connectable`]) before asking Docker.

use bollard::Docker;
use bollard::models::{EndpointSettings, Network, NetworkConnectRequest, NetworkDisconnectRequest};
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptions};
use infrapilot_core::docker::{
    ActionReport, ContainerRef, NetworkDetail, NetworkRef, NetworkSummary, connectable,
};

use super::containers::inspect as inspect_container;
use super::convert;
use super::error::docker_error;
use crate::command::{CommandError, ErrorCode};

/// Every network, by name.
pub(super) async fn list(docker: &Docker) -> Result<Vec<NetworkSummary>, CommandError> {
    let mut networks: Vec<NetworkSummary> = docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .map_err(docker_error)?
        .iter()
        .map(convert::network_summary)
        .collect();
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(networks)
}

/// One network with its containers.
pub(super) async fn inspect(
    docker: &Docker,
    network: &NetworkRef,
) -> Result<NetworkDetail, CommandError> {
    Ok(convert::network_detail(raw(docker, network).await?))
}

/// Connects `container` to `network` with extra DNS `aliases`; `changed: false` when it is
/// already attached.
pub(super) async fn connect(
    docker: &Docker,
    network: &NetworkRef,
    container: &ContainerRef,
    aliases: &[ContainerRef],
) -> Result<ActionReport, CommandError> {
    let (network, container_id, attached) = prepare(docker, network, container).await?;
    if attached {
        return Ok(unchanged(container_id));
    }
    let request = NetworkConnectRequest {
        container: Some(container_id.clone()),
        endpoint_config: Some(EndpointSettings {
            aliases: (!aliases.is_empty())
                .then(|| aliases.iter().map(|a| a.as_str().to_owned()).collect()),
            ..Default::default()
        }),
    };
    docker
        .connect_network(&network, request)
        .await
        .map_err(docker_error)?;
    Ok(changed(container_id))
}

/// Disconnects `container` from `network`; `changed: false` when it is not attached.
pub(super) async fn disconnect(
    docker: &Docker,
    network: &NetworkRef,
    container: &ContainerRef,
    force: bool,
) -> Result<ActionReport, CommandError> {
    let (network, container_id, attached) = prepare(docker, network, container).await?;
    if !attached {
        return Ok(unchanged(container_id));
    }
    let request = NetworkDisconnectRequest {
        container: Some(container_id.clone()),
        force: Some(force),
    };
    docker
        .disconnect_network(&network, request)
        .await
        .map_err(docker_error)?;
    Ok(changed(container_id))
}

/// Checks the network may be used and the container exists: the network's id, the
/// container's id, and whether the container is attached to the network.
async fn prepare(
    docker: &Docker,
    network: &NetworkRef,
    container: &ContainerRef,
) -> Result<(String, String, bool), CommandError> {
    let net = raw(docker, network).await?;
    let summary = convert::network_summary(&net);
    connectable(
        &summary.name,
        &summary.driver,
        &summary.scope,
        summary.attachable,
    )
    .map_err(|reason| CommandError::new(ErrorCode::Invalid, reason))?;
    // The container's own view: a network lists only its running containers.
    let inspected = inspect_container(docker, container.as_str()).await?;
    let container_id = inspected
        .id
        .unwrap_or_else(|| container.as_str().to_owned());
    let attached = inspected
        .network_settings
        .and_then(|n| n.networks)
        .is_some_and(|networks| {
            networks.iter().any(|(name, endpoint)| {
                *name == summary.name || endpoint.network_id.as_deref() == Some(summary.id.as_str())
            })
        });
    Ok((summary.id, container_id, attached))
}

async fn raw(docker: &Docker, network: &NetworkRef) -> Result<Network, CommandError> {
    docker
        .inspect_network(network.as_str(), None::<InspectNetworkOptions>)
        .await
        .map_err(docker_error)
}

fn changed(id: String) -> ActionReport {
    ActionReport {
        id,
        changed: true,
        state: None,
    }
}

fn unchanged(id: String) -> ActionReport {
    ActionReport {
        id,
        changed: false,
        state: None,
    }
}
