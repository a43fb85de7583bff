//! Container upstreams: which containers a site forwards to, how nginx reaches each one, and
//! the site with those decisions written in.
//!
//! The agent inspects the containers (I/O); these functions decide (pure):
//!
//! - nginx in a container of its own ([`Placement::Container`]) reaches a container **by
//!   name** over a user-defined network they share, connecting nginx to one of the target's
//!   networks when they share none (Docker resolves names on user-defined networks only);
//!   a target only on the default `bridge` network is reached by its address there.
//! - the host's nginx ([`Placement::Host`]) reaches a container **by address**: the host
//!   routes to every bridge network, and a container on the host network listens on
//!   `127.0.0.1`.
//!
//! Networks InfraPilot may not join follow [`crate::docker::connectable`] (never `host`,
//! `none` or a swarm network).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::model::Site;
use crate::docker::connectable;
use crate::ids::ProxyHostId;
use crate::values::{ContainerName, Scheme, Upstream, UpstreamHost};

/// Docker's default bridge network: no name resolution between containers.
pub const DEFAULT_BRIDGE: &str = "bridge";

/// Where nginx runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// The host's nginx.
    Host,
    /// nginx in a container the agent manages.
    Container,
}

/// One network a container is attached to, as Docker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedNetwork {
    /// The network's name.
    pub name: String,
    /// Its driver (`bridge`, `overlay`, `host`, `null`, …).
    pub driver: String,
    /// Its scope (`local`, `swarm`).
    pub scope: String,
    /// Whether a standalone container may attach to it (swarm overlays).
    pub attachable: bool,
    /// The container's address on it, while it runs.
    pub address: Option<IpAddr>,
}

/// How nginx reaches one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// By the container's name, over `network`; `connect` when nginx must join it first.
    ByName {
        /// The shared (or to be shared) network.
        network: String,
        /// Whether nginx is not on it yet.
        connect: bool,
    },
    /// By the container's address on `network`.
    ByAddress {
        /// The network the address belongs to (`host` for a container on the host network).
        network: String,
        /// The address.
        address: IpAddr,
    },
}

impl Reach {
    /// The network nginx reaches the container over.
    pub fn network(&self) -> &str {
        match self {
            Reach::ByName { network, .. } | Reach::ByAddress { network, .. } => network,
        }
    }
}

/// Decides how nginx (at `placement`, attached to `nginx_networks` when it is a container)
/// reaches a container attached to `target`, or says why it cannot. `running` is whether the
/// target runs (an address is only known while it does; a name resolves once it starts).
pub fn reach(
    placement: Placement,
    target: &[AttachedNetwork],
    running: bool,
    nginx_networks: &BTreeSet<String>,
) -> Result<Reach, String> {
    let mut sorted: Vec<&AttachedNetwork> = target.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let on_host_network = sorted
        .iter()
        .any(|n| n.name == "host" || n.driver == "host");
    match placement {
        Placement::Host => {
            if on_host_network {
                return Ok(Reach::ByAddress {
                    network: "host".to_owned(),
                    address: IpAddr::V4(Ipv4Addr::LOCALHOST),
                });
            }
            if !running {
                return Err("the container is not running, so it has no address".to_owned());
            }
            sorted
                .iter()
                .filter(|n| connectable(&n.name, &n.driver, &n.scope, n.attachable).is_ok())
                .find_map(|n| {
                    n.address.map(|address| Reach::ByAddress {
                        network: n.name.clone(),
                        address,
                    })
                })
                .ok_or_else(|| "the container has no address on a bridge network".to_owned())
        }
        Placement::Container => {
            if on_host_network {
                return Err(
                    "the container uses the host network, which nginx's container cannot join; \
                     publish its port or attach it to a user-defined network"
                        .to_owned(),
                );
            }
            let usable: Vec<&&AttachedNetwork> = sorted
                .iter()
                .filter(|n| n.name != DEFAULT_BRIDGE)
                .filter(|n| connectable(&n.name, &n.driver, &n.scope, n.attachable).is_ok())
                .collect();
            if let Some(shared) = usable.iter().find(|n| nginx_networks.contains(&n.name)) {
                return Ok(Reach::ByName {
                    network: shared.name.clone(),
                    connect: false,
                });
            }
            if let Some(first) = usable.first() {
                return Ok(Reach::ByName {
                    network: first.name.clone(),
                    connect: true,
                });
            }
            if let Some(bridge) = sorted.iter().find(|n| n.name == DEFAULT_BRIDGE) {
                if !nginx_networks.contains(DEFAULT_BRIDGE) {
                    return Err(
                        "the container is only on the default bridge network, which nginx's \
                         container is not on; attach it to a user-defined network"
                            .to_owned(),
                    );
                }
                return match (running, bridge.address) {
                    (true, Some(address)) => Ok(Reach::ByAddress {
                        network: DEFAULT_BRIDGE.to_owned(),
                        address,
                    }),
                    _ => Err(
                        "the container is not running, and on the default bridge network \
                              (no name resolution) it has no address until it does"
                            .to_owned(),
                    ),
                };
            }
            let reasons: Vec<String> = sorted
                .iter()
                .filter_map(|n| connectable(&n.name, &n.driver, &n.scope, n.attachable).err())
                .collect();
            Err(if reasons.is_empty() {
                "the container is attached to no network".to_owned()
            } else {
                format!("no network nginx may join: {}", reasons.join("; "))
            })
        }
    }
}

/// Every container a site forwards to, with the hosts that use it (hosts in site order).
pub fn container_upstreams(site: &Site) -> BTreeMap<ContainerName, Vec<ProxyHostId>> {
    let mut out: BTreeMap<ContainerName, Vec<ProxyHostId>> = BTreeMap::new();
    for host in &site.proxy_hosts {
        let upstreams = std::iter::once(&host.upstream)
            .chain(host.locations.as_slice().iter().map(|l| &l.upstream));
        for upstream in upstreams {
            if let Upstream::Container { name, .. } = upstream {
                let hosts = out.entry(name.clone()).or_default();
                if !hosts.contains(&host.id) {
                    hosts.push(host.id);
                }
            }
        }
    }
    out
}

/// The site with each container upstream that is reached by address (`addresses`) written as
/// `http://ADDRESS:PORT`; the others keep the container's name.
pub fn with_addresses(site: &Site, addresses: &BTreeMap<ContainerName, IpAddr>) -> Site {
    let rewrite = |upstream: &mut Upstream| {
        if let Upstream::Container { name, port } = upstream
            && let Some(address) = addresses.get(name)
        {
            *upstream = Upstream::Url {
                scheme: Scheme::Http,
                host: match address {
                    IpAddr::V4(a) => UpstreamHost::Ipv4(*a),
                    IpAddr::V6(a) => UpstreamHost::Ipv6(*a),
                },
                port: *port,
                path: None,
            };
        }
    };
    let mut site = site.clone();
    for host in &mut site.proxy_hosts {
        rewrite(&mut host.upstream);
        host.locations.upstreams_mut().for_each(rewrite);
    }
    site
}

/// How nginx reaches one upstream container, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UpstreamNetworkStatus {
    /// The container's name.
    pub container: String,
    /// The hosts that forward to it.
    pub hosts: Vec<ProxyHostId>,
    /// The network nginx reaches it over; `None` when it cannot.
    pub network: Option<String>,
    /// The address nginx uses when it does not use the name (default bridge, host nginx).
    pub address: Option<String>,
    /// Whether the agent connected nginx to `network` (and will disconnect it when no host
    /// needs it any more).
    pub connected_by_agent: bool,
    /// Why nginx cannot reach it (requests to its hosts answer 502 until it can).
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, driver: &str, address: Option<&str>) -> AttachedNetwork {
        AttachedNetwork {
            name: name.to_owned(),
            driver: driver.to_owned(),
            scope: "local".to_owned(),
            attachable: false,
            address: address.map(|a| a.parse().unwrap()),
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_container_nginx_prefers_a_network_it_already_shares() {
        let target = [
            net("app", "bridge", Some("172.20.0.2")),
            net("zeta", "bridge", Some("172.21.0.2")),
        ];
        assert_eq!(
            reach(
                Placement::Container,
                &target,
                true,
                &set(&["bridge", "zeta"])
            ),
            Ok(Reach::ByName {
                network: "zeta".into(),
                connect: false
            })
        );
        assert_eq!(
            reach(Placement::Container, &target, false, &set(&["bridge"])),
            Ok(Reach::ByName {
                network: "app".into(),
                connect: true
            })
        );
    }

    #[test]
    fn the_default_bridge_is_reached_by_address_only_while_running() {
        let target = [net("bridge", "bridge", Some("172.17.0.3"))];
        assert_eq!(
            reach(Placement::Container, &target, true, &set(&["bridge"])),
            Ok(Reach::ByAddress {
                network: "bridge".into(),
                address: "172.17.0.3".parse().unwrap()
            })
        );
        assert!(reach(Placement::Container, &target, false, &set(&["bridge"])).is_err());
        assert!(reach(Placement::Container, &target, true, &set(&["app"])).is_err());
    }

    #[test]
    fn refused_networks_are_never_joined() {
        let host = [net("host", "host", None)];
        let err = reach(Placement::Container, &host, true, &set(&["bridge"])).unwrap_err();
        assert!(err.contains("host network"), "{err}");
        assert_eq!(
            reach(Placement::Host, &host, true, &BTreeSet::new()),
            Ok(Reach::ByAddress {
                network: "host".into(),
                address: "127.0.0.1".parse().unwrap()
            })
        );
        let mut swarm = net("ingress", "overlay", None);
        swarm.scope = "swarm".into();
        let err = reach(Placement::Container, &[swarm], true, &set(&["bridge"])).unwrap_err();
        assert!(err.contains("swarm"), "{err}");
        assert!(reach(Placement::Container, &[], true, &set(&["bridge"])).is_err());
    }

    #[test]
    fn the_host_nginx_uses_an_address() {
        let target = [net("app", "bridge", Some("172.20.0.2"))];
        assert_eq!(
            reach(Placement::Host, &target, true, &BTreeSet::new()),
            Ok(Reach::ByAddress {
                network: "app".into(),
                address: "172.20.0.2".parse().unwrap()
            })
        );
        assert!(reach(Placement::Host, &target, false, &BTreeSet::new()).is_err());
    }

    #[test]
    fn upstreams_are_collected_and_rewritten() {
        let site: Site = serde_json::from_value(serde_json::json!({
            "proxy_hosts": [{
                "id": "00000000-0000-0000-0000-000000000001",
                "domains": ["a.example"],
                "upstream": "container:web:8080",
                "locations": [
                    {"path": "/api", "upstream": "container:api:9000"},
                    {"path": "/x", "upstream": "http://10.0.0.1:80"}
                ]
            }, {
                "id": "00000000-0000-0000-0000-000000000002",
                "domains": ["b.example"],
                "upstream": "container:web:8080"
            }]
        }))
        .unwrap();
        let used = container_upstreams(&site);
        let web = ContainerName::parse("web").unwrap();
        let api = ContainerName::parse("api").unwrap();
        assert_eq!(used.len(), 2);
        assert_eq!(used[&web].len(), 2);
        assert_eq!(used[&api].len(), 1);
        let addresses = BTreeMap::from([(web.clone(), "172.17.0.5".parse().unwrap())]);
        let rewritten = with_addresses(&site, &addresses);
        assert_eq!(
            rewritten.proxy_hosts[0].upstream.to_string(),
            "http://172.17.0.5:8080"
        );
        assert_eq!(
            rewritten.proxy_hosts[0].locations.as_slice()[0]
                .upstream
                .to_string(),
            "container:api:9000"
        );
        assert_eq!(container_upstreams(&rewritten).len(), 1);
    }
}
