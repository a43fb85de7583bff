//! Docker operations as data: what the control plane asks an agent ([`DockerRequest`]), what
//! the agent answers (the model types), and the pure rules around them.
//!
//! The agent library executes requests against the local engine; the server validates API
//! input into these types, gates mutating requests through the policy engine (with
//! [`policy_resource`] as the container's attributes) and forwards them. The rules that need
//! no engine live here:
//! - [`connectable`] — which networks InfraPilot attaches containers to (not host, none or
//!   swarm-scoped ones), with the reason;
//! - [`group_stacks`] — compose projects from a container list;
//! - [`cpu_percent`] — Docker's CPU percentage from two counters;
//! - [`confirm`] — destructive actions name what they destroy.

mod model;
mod refs;
mod request;

use std::collections::BTreeMap;

pub use model::{
    ActionReport, ComposeRef, ContainerConfigView, ContainerDetail, ContainerSummary, ExecResult,
    HealthcheckView, HostConfigView, ImageDetail, ImageSummary, LogLine, LogsPage, MountView,
    NetworkAttachment, NetworkDetail, NetworkMember, NetworkSummary, PortMapping, PruneReport,
    Stack, StackMember, StackMemberOutcome, StackReport, StatsSample, VolumeSummary,
};
pub use refs::{
    ContainerPath, ContainerRef, ExecCommand, ExecUser, ImageRef, MAX_EXEC_ARG, MAX_EXEC_ARGS,
    NetworkRef, ProjectName, VolumeRef,
};
pub use request::{
    DEFAULT_LOG_TAIL, DockerRequest, ExecStream, MAX_EXEC_OUTPUT, MAX_LOG_TAIL, MAX_STOP_TIMEOUT,
    StackVerb, exec_frame, split_exec_frame,
};
use serde_json::{Value, json};

use crate::values::ValueError;

/// The compose project label.
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// The compose service label.
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";
/// The compose working directory label.
pub const COMPOSE_WORKING_DIR: &str = "com.docker.compose.project.working_dir";

/// Whether InfraPilot may attach containers to a network, and if not, why.
///
/// Refused: the `host` and `none` networks (a container there has no network of its own to
/// share) and swarm-scoped or overlay networks that are not attachable (they belong to swarm
/// services, which the engine manages).
pub fn connectable(name: &str, driver: &str, scope: &str, attachable: bool) -> Result<(), String> {
    match (name, driver) {
        ("host", _) | (_, "host") => {
            return Err(format!(
                "network {name:?} is the host network: containers there share the host's network stack and cannot be connected or disconnected"
            ));
        }
        ("none", _) | (_, "null") => {
            return Err(format!(
                "network {name:?} is the none network: it has no connectivity to join"
            ));
        }
        _ => {}
    }
    if scope == "swarm" || driver == "overlay" {
        if attachable && driver == "overlay" && scope != "swarm" {
            return Ok(());
        }
        return Err(format!(
            "network {name:?} is a swarm {driver} network (scope {scope}); swarm networks are managed by the swarm, not by InfraPilot"
        ));
    }
    Ok(())
}

/// Groups containers into compose projects (containers without the compose project label are
/// left out), sorted by project name; members sorted by service then name.
pub fn group_stacks(containers: &[ContainerSummary]) -> Vec<Stack> {
    let mut stacks: BTreeMap<&str, Stack> = BTreeMap::new();
    for c in containers {
        let Some(compose) = &c.compose else { continue };
        let stack = stacks.entry(&compose.project).or_insert_with(|| Stack {
            project: compose.project.clone(),
            working_dir: c.labels.get(COMPOSE_WORKING_DIR).cloned(),
            services: Vec::new(),
            running: 0,
            total: 0,
            containers: Vec::new(),
        });
        stack.total += 1;
        if c.state == "running" {
            stack.running += 1;
        }
        if let Some(service) = &compose.service
            && !stack.services.contains(service)
        {
            stack.services.push(service.clone());
        }
        stack.containers.push(StackMember {
            id: c.id.clone(),
            name: c.name.clone(),
            service: compose.service.clone(),
            state: c.state.clone(),
        });
    }
    stacks
        .into_values()
        .map(|mut s| {
            s.services.sort();
            s.containers
                .sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
            s
        })
        .collect()
}

/// The compose reference a container's labels give.
pub fn compose_ref(labels: &BTreeMap<String, String>) -> Option<ComposeRef> {
    labels.get(COMPOSE_PROJECT).map(|project| ComposeRef {
        project: project.clone(),
        service: labels.get(COMPOSE_SERVICE).cloned(),
    })
}

/// Docker's CPU percentage (of one core) from two readings: the container's CPU time delta and
/// the system's, both nanoseconds, over `online_cpus` CPUs. Zero when the system delta is not
/// positive.
pub fn cpu_percent(container_delta: u64, system_delta: u64, online_cpus: u32) -> f64 {
    if system_delta == 0 {
        return 0.0;
    }
    // Precision loss above 2^53 ns (104 days of CPU) is irrelevant for a percentage.
    #[allow(clippy::cast_precision_loss)]
    let ratio = container_delta as f64 / system_delta as f64;
    ratio * f64::from(online_cpus.max(1)) * 100.0
}

/// The container's attributes as the policy engine reads them (the shape documented in
/// [`crate::policy::Template`]).
pub fn policy_resource(detail: &ContainerDetail) -> Value {
    let c = &detail.config;
    let h = &detail.host_config;
    let mut config = json!({});
    if !c.user.is_empty() {
        config["user"] = json!(c.user);
    }
    if let Some(hc) = &c.healthcheck {
        config["healthcheck"] = json!({"test": hc.test, "interval": hc.interval_secs});
    }
    json!({
        "name": detail.summary.name,
        "image": detail.summary.image,
        "created": detail.summary.created,
        "config": config,
        "host_config": {
            "privileged": h.privileged,
            "network_mode": h.network_mode,
            "restart_policy": {"name": h.restart_policy},
            "memory": h.memory,
            "nano_cpus": h.nano_cpus,
        },
        "mounts": detail.mounts.iter().map(|m| json!({
            "type": m.kind, "source": m.source, "destination": m.destination,
        })).collect::<Vec<_>>(),
        "labels": detail.summary.labels,
    })
}

/// Checks the confirmation a destructive action carries: the user must type `expected` (the
/// container's or volume's name, or `prune`) into `field`.
pub fn confirm(field: &str, given: Option<&str>, expected: &str) -> Result<(), ValueError> {
    match given {
        Some(g) if g == expected => Ok(()),
        Some(g) => Err(ValueError::new(
            field,
            g,
            format!("does not match; type {expected:?} to confirm"),
        )),
        None => Err(ValueError::new(
            field,
            "",
            format!("is required: type {expected:?} to confirm"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PolicyId;
    use crate::policy::{ActionKind, Decision, EvalContext, PolicySet, Template};

    fn summary(name: &str, project: Option<(&str, &str)>, state: &str) -> ContainerSummary {
        let mut labels = BTreeMap::new();
        if let Some((p, s)) = project {
            labels.insert(COMPOSE_PROJECT.to_owned(), p.to_owned());
            labels.insert(COMPOSE_SERVICE.to_owned(), s.to_owned());
        }
        ContainerSummary {
            id: format!("id-{name}"),
            name: name.to_owned(),
            image: "app:1".to_owned(),
            image_id: "sha256:1".to_owned(),
            command: String::new(),
            created: 1_700_000_000,
            state: state.to_owned(),
            status: String::new(),
            health: None,
            restart_count: 0,
            ports: vec![],
            compose: compose_ref(&labels),
            labels,
            cpu_percent: None,
            memory_bytes: None,
            memory_limit_bytes: None,
            networks: vec![],
        }
    }

    #[test]
    fn stacks_count_running_and_total_per_project() {
        let stacks = group_stacks(&[
            summary("shop-web-1", Some(("shop", "web")), "running"),
            summary("loose", None, "running"),
            summary("shop-db-1", Some(("shop", "db")), "exited"),
            summary("blog-web-1", Some(("blog", "web")), "running"),
        ]);
        assert_eq!(stacks.len(), 2);
        assert_eq!(stacks[0].project, "blog");
        let shop = &stacks[1];
        assert_eq!((shop.running, shop.total), (1, 2));
        assert_eq!(shop.services, ["db", "web"]);
        assert_eq!(shop.containers[0].name, "shop-db-1");
    }

    #[test]
    fn host_none_and_swarm_networks_are_refused_with_a_reason() {
        assert!(connectable("bridge", "bridge", "local", false).is_ok());
        assert!(connectable("app_default", "bridge", "local", false).is_ok());
        assert!(
            connectable("host", "host", "local", false)
                .unwrap_err()
                .contains("host network")
        );
        assert!(
            connectable("none", "null", "local", false)
                .unwrap_err()
                .contains("none network")
        );
        assert!(
            connectable("ingress", "overlay", "swarm", false)
                .unwrap_err()
                .contains("swarm")
        );
        assert!(
            connectable("svc", "overlay", "swarm", true)
                .unwrap_err()
                .contains("swarm")
        );
    }

    #[test]
    fn cpu_percent_matches_dockers_formula() {
        assert!((cpu_percent(50, 100, 2) - 100.0).abs() < 1e-9);
        assert_eq!(cpu_percent(5, 0, 4), 0.0);
    }

    #[test]
    fn confirmation_must_repeat_the_name() {
        assert!(confirm("confirm", Some("web"), "web").is_ok());
        assert!(
            confirm("confirm", Some("web2"), "web")
                .unwrap_err()
                .reason()
                .contains("\"web\"")
        );
        assert_eq!(
            confirm("confirm", None, "web").unwrap_err().field(),
            "confirm"
        );
    }

    #[test]
    fn the_policy_resource_feeds_the_container_templates() {
        let detail = ContainerDetail {
            summary: summary("web", None, "running"),
            started_at: None,
            finished_at: None,
            exit_code: None,
            oom_killed: false,
            pid: None,
            config: ContainerConfigView::default(),
            host_config: HostConfigView {
                privileged: true,
                network_mode: "host".to_owned(),
                ..HostConfigView::default()
            },
            mounts: vec![MountView {
                kind: "bind".to_owned(),
                name: None,
                source: "/var/run/docker.sock".to_owned(),
                destination: "/var/run/docker.sock".to_owned(),
                rw: true,
            }],
            network_attachments: vec![],
        };
        let resource = policy_resource(&detail);
        let id = |n| PolicyId::from_uuid(uuid::Uuid::from_u128(n));
        let set = PolicySet::compile([
            Template::NoPrivilegedContainers.policy(id(1)),
            Template::NoDockerSocketMount.policy(id(2)),
            Template::NoHostNetwork.policy(id(3)),
            Template::NoRootContainers.policy(id(4)),
            Template::RequireRestartPolicy.policy(id(5)),
        ])
        .unwrap();
        let response = set.evaluate(&resource, ActionKind::Start, &EvalContext::default());
        assert_eq!(response.decision(), Decision::Block);
        assert_eq!(response.violations().len(), 5, "{response:?}");
    }
}
