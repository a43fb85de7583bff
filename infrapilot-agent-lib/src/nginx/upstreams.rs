//! Container upstreams on the agent: finds the containers a site forwards to, decides with the
//! core ([`infrapilot_core::nginx::upstreams::reach`]) how nginx reaches each, writes
//! addresses into the site where nginx uses one, and — nginx in its own container — connects
//! nginx to the networks it needs and disconnects the ones it connected that no host needs
//! any more. Networks the agent did not connect (the default bridge, ones an operator added)
//! are never disconnected; the ones it did are remembered in a file beside the configuration.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, NetworkConnectRequest, NetworkDisconnectRequest};
use bollard::query_parameters::{InspectContainerOptions, InspectNetworkOptions};
use infrapilot_core::nginx::Site;
use infrapilot_core::nginx::upstreams::{
    AttachedNetwork, Placement, Reach, UpstreamNetworkStatus, container_upstreams, reach,
    with_addresses,
};

use super::write_atomic;

/// Finds and connects upstream containers for one nginx.
#[derive(Debug, Clone)]
pub struct UpstreamNetworks {
    docker: Docker,
    placement: Placement,
    /// The managed nginx container's name (container placement).
    nginx: Option<String>,
    /// The networks the agent connected nginx to (JSON list of names).
    state_file: PathBuf,
}

/// A site with its container upstreams decided.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The site to render: upstreams reached by address carry it.
    pub site: Site,
    /// Per container, how nginx reaches it (or why it cannot).
    pub statuses: Vec<UpstreamNetworkStatus>,
    /// The networks nginx must be on to reach containers by name.
    wanted: BTreeSet<String>,
    /// The networks the agent had connected nginx to when the site was resolved.
    connected: BTreeSet<String>,
}

impl Resolved {
    /// The site as given, every container upstream reported with `error` (no Docker to look
    /// the containers up with).
    pub fn unresolved(site: &Site, error: &str) -> Self {
        let statuses = container_upstreams(site)
            .into_iter()
            .map(|(name, hosts)| UpstreamNetworkStatus {
                container: name.as_str().to_owned(),
                hosts,
                network: None,
                address: None,
                connected_by_agent: false,
                error: Some(error.to_owned()),
            })
            .collect();
        Self {
            site: site.clone(),
            statuses,
            wanted: BTreeSet::new(),
            connected: BTreeSet::new(),
        }
    }
}

impl UpstreamNetworks {
    /// For the host's nginx: containers are reached by address.
    pub fn host(docker: Docker, state_file: PathBuf) -> Self {
        Self {
            docker,
            placement: Placement::Host,
            nginx: None,
            state_file,
        }
    }

    /// For nginx in the container `nginx`: containers are reached by name over shared
    /// networks, which the agent connects nginx to.
    pub fn container(docker: Docker, nginx: impl Into<String>, state_file: PathBuf) -> Self {
        Self {
            docker,
            placement: Placement::Container,
            nginx: Some(nginx.into()),
            state_file,
        }
    }

    /// The Docker engine.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Decides how nginx reaches each container `site` forwards to.
    pub async fn resolve(&self, site: &Site) -> Resolved {
        let used = container_upstreams(site);
        // Only nginx's own container is ever connected to networks.
        let connected = match &self.nginx {
            Some(_) => self.connected_by_agent().await,
            None => BTreeSet::new(),
        };
        if used.is_empty() {
            return Resolved {
                site: site.clone(),
                statuses: Vec::new(),
                wanted: BTreeSet::new(),
                connected,
            };
        }
        let nginx_networks = match &self.nginx {
            // A container not created yet starts on the default bridge.
            Some(name) => self
                .container_networks(name)
                .await
                .unwrap_or_else(|| BTreeSet::from(["bridge".to_owned()])),
            None => BTreeSet::new(),
        };
        let mut networks: HashMap<String, (String, String, bool)> = HashMap::new();
        let mut addresses = BTreeMap::new();
        let mut statuses = Vec::new();
        let mut wanted = BTreeSet::new();
        for (name, hosts) in used {
            let mut status = UpstreamNetworkStatus {
                container: name.as_str().to_owned(),
                hosts,
                network: None,
                address: None,
                connected_by_agent: false,
                error: None,
            };
            let inspect = self
                .docker
                .inspect_container(name.as_str(), None::<InspectContainerOptions>)
                .await;
            let decided = match inspect {
                Ok(container) => {
                    let (attached, running) =
                        self.attached_networks(&container, &mut networks).await;
                    reach(self.placement, &attached, running, &nginx_networks)
                }
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Err("no container of that name on this host".to_owned()),
                Err(e) => Err(format!("inspecting the container: {e}")),
            };
            match decided {
                Ok(Reach::ByAddress { network, address }) => {
                    addresses.insert(name.clone(), address);
                    status.address = Some(address.to_string());
                    status.network = Some(network);
                }
                Ok(Reach::ByName { network, connect }) => {
                    status.connected_by_agent = connect || connected.contains(&network);
                    wanted.insert(network.clone());
                    status.network = Some(network);
                }
                Err(reason) => {
                    status.error = Some(format!(
                        "nginx cannot reach the container {}: {reason}",
                        name.as_str()
                    ));
                }
            }
            statuses.push(status);
        }
        Resolved {
            site: with_addresses(site, &addresses),
            statuses,
            wanted,
            connected,
        }
    }

    /// Connects nginx's container to the networks `resolved` needs and disconnects those the
    /// agent connected that nothing needs any more; returns the final statuses. The host's
    /// nginx needs no networks.
    pub async fn attach(&self, resolved: Resolved) -> Vec<UpstreamNetworkStatus> {
        let Some(nginx) = &self.nginx else {
            return resolved.statuses;
        };
        let mut statuses = resolved.statuses;
        let mut connected = resolved.connected;
        let before = connected.clone();
        let current = self.container_networks(nginx).await.unwrap_or_default();
        for network in &resolved.wanted {
            if current.contains(network) {
                continue;
            }
            let request = NetworkConnectRequest {
                container: Some(nginx.clone()),
                endpoint_config: None,
            };
            match self.docker.connect_network(network, request).await {
                Ok(()) => {
                    tracing::info!(%network, container = %nginx, "connected nginx to an upstream's network");
                    connected.insert(network.clone());
                    for s in statuses
                        .iter_mut()
                        .filter(|s| s.network.as_deref() == Some(network))
                    {
                        s.connected_by_agent = true;
                    }
                }
                Err(e) => {
                    for s in statuses
                        .iter_mut()
                        .filter(|s| s.network.as_deref() == Some(network))
                    {
                        s.error = Some(format!("connecting nginx to the network {network}: {e}"));
                    }
                }
            }
        }
        let stale: Vec<String> = connected.difference(&resolved.wanted).cloned().collect();
        for network in stale {
            if current.contains(&network) {
                let request = NetworkDisconnectRequest {
                    container: Some(nginx.clone()),
                    force: Some(false),
                };
                if let Err(e) = self.docker.disconnect_network(&network, request).await {
                    // A network removed meanwhile, or nginx already gone from it: forget it.
                    tracing::debug!(%network, error = %e, "disconnecting nginx");
                } else {
                    tracing::info!(%network, container = %nginx, "disconnected nginx from a network no host needs");
                }
            }
            connected.remove(&network);
        }
        if connected != before {
            let list: Vec<&String> = connected.iter().collect();
            let json = serde_json::to_vec(&list).unwrap_or_default();
            if let Err(e) = write_atomic(&self.state_file, &json).await {
                tracing::warn!(error = %e, "recording the networks nginx was connected to");
            }
        }
        statuses
    }

    /// The networks the agent connected nginx to.
    async fn connected_by_agent(&self) -> BTreeSet<String> {
        tokio::fs::read(&self.state_file)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The names of the networks a container is attached to; `None` when it does not exist.
    async fn container_networks(&self, name: &str) -> Option<BTreeSet<String>> {
        let container = self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .ok()?;
        Some(
            container
                .network_settings
                .and_then(|n| n.networks)
                .map(|n| n.into_keys().collect())
                .unwrap_or_default(),
        )
    }

    /// A container's networks with each network's driver, scope and attachability (looked up
    /// once per network per resolve), and whether it runs.
    async fn attached_networks(
        &self,
        container: &ContainerInspectResponse,
        cache: &mut HashMap<String, (String, String, bool)>,
    ) -> (Vec<AttachedNetwork>, bool) {
        let running = container.state.as_ref().and_then(|s| s.running) == Some(true);
        let mode = container
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.clone())
            .unwrap_or_default();
        let endpoints = container
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        if mode == "host" {
            out.push(AttachedNetwork {
                name: "host".to_owned(),
                driver: "host".to_owned(),
                scope: "local".to_owned(),
                attachable: false,
                address: None,
            });
        }
        for (name, endpoint) in endpoints {
            if name == "host" {
                continue;
            }
            if !cache.contains_key(&name) {
                let info = self
                    .docker
                    .inspect_network(&name, None::<InspectNetworkOptions>)
                    .await
                    .map(|n| {
                        (
                            n.driver.unwrap_or_default(),
                            n.scope.unwrap_or_default(),
                            n.attachable.unwrap_or(false),
                        )
                    })
                    .unwrap_or_else(|_| ("bridge".to_owned(), "local".to_owned(), false));
                cache.insert(name.clone(), info);
            }
            let (driver, scope, attachable) = cache[&name].clone();
            let address = endpoint
                .ip_address
                .filter(|a| !a.is_empty())
                .and_then(|a| a.parse::<IpAddr>().ok());
            out.push(AttachedNetwork {
                name,
                driver,
                scope,
                attachable,
                address,
            });
        }
        (out, running)
    }
}
