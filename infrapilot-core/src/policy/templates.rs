//! Built-in policy templates and the resource shapes they expect.
//!
//! # Container resource
//!
//! The container templates read this JSON shape (a subset of `docker inspect`, snake_case; the
//! shells convert to it). Absent keys are fine; `null` counts as absent.
//!
//! ```json
//! {
//!   "name": "web",
//!   "image": "nginx:1.25",
//!   "created": 1700000000,
//!   "config": {
//!     "user": "101:101",
//!     "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost/"], "interval": 30}
//!   },
//!   "host_config": {
//!     "privileged": false,
//!     "network_mode": "bridge",
//!     "restart_policy": {"name": "unless-stopped"},
//!     "memory": 536870912,
//!     "nano_cpus": 1000000000
//!   },
//!   "mounts": [{"type": "bind", "source": "/srv/web", "destination": "/usr/share/nginx/html"}],
//!   "labels": {"com.docker.compose.project": "web"}
//! }
//! ```
//!
//! `config.user` is the effective user (an empty or missing user means root). `memory` is
//! bytes and `nano_cpus` billionths of a CPU; `0` means unlimited. `created` is unix seconds.
//!
//! # Proxy host resource
//!
//! `require_ssl` reads:
//!
//! ```json
//! {
//!   "domains": ["app.example.com"],
//!   "forward": {"scheme": "http", "host": "web", "port": 80},
//!   "ssl": {"certificate_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff", "force": true, "hsts": true, "http2": true}
//! }
//! ```

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::action::{ActionKind, PolicyAction};
use super::document::{AppliesTo, Condition, Operator, Policy};
use super::message::MessageTemplate;
use crate::ids::PolicyId;

/// A built-in policy, with its parameters where it has any.
///
/// In JSON: `{"template": "max_container_age", "days": 30}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "template", rename_all = "snake_case", deny_unknown_fields)]
pub enum Template {
    /// Blocks containers whose user is root (`root`, `0`, `root:…`, `0:…`, empty or unset).
    NoRootContainers,
    /// Blocks privileged containers (`host_config.privileged`).
    NoPrivilegedContainers,
    /// Warns when a container has no restart policy (unset, empty or `no`).
    RequireRestartPolicy,
    /// Warns when a container has no health check (unset, or disabled with `["NONE"]`).
    RequireHealthcheck,
    /// Warns when a container lacks a memory limit or a CPU limit (unset or `0`).
    RequireResourceLimits,
    /// Warns when an image has no tag or the tag `latest` (a digest pin is fine).
    NoLatestTag,
    /// Blocks mounting the Docker socket (`/var/run/docker.sock`, `/run/docker.sock`).
    NoDockerSocketMount,
    /// Blocks `network_mode: host`.
    NoHostNetwork,
    /// Blocks proxy hosts without a certificate or without forced HTTPS.
    RequireSsl,
    /// Blocks `exec` into containers on agents in one of these environments.
    NoExecProduction {
        /// The environments where exec is refused; `["production"]` by default.
        environments: Vec<String>,
    },
    /// Warns when starting, restarting or updating a container created more than `days` ago.
    MaxContainerAge {
        /// The maximum age in days.
        days: u32,
    },
}

/// Seconds per day.
const DAY: u64 = 86_400;

const CONTAINER_CONFIG_ACTIONS: [ActionKind; 4] = [
    ActionKind::Create,
    ActionKind::Update,
    ActionKind::Start,
    ActionKind::Restart,
];

impl Template {
    /// The eight rules on container configuration.
    pub const CONTAINER_RULES: [Template; 8] = [
        Template::NoRootContainers,
        Template::NoPrivilegedContainers,
        Template::RequireRestartPolicy,
        Template::RequireHealthcheck,
        Template::RequireResourceLimits,
        Template::NoLatestTag,
        Template::NoDockerSocketMount,
        Template::NoHostNetwork,
    ];

    /// Every template, with default parameters.
    pub fn catalog() -> Vec<Template> {
        let mut all = Self::CONTAINER_RULES.to_vec();
        all.push(Template::RequireSsl);
        all.push(Template::NoExecProduction {
            environments: vec!["production".to_owned()],
        });
        all.push(Template::MaxContainerAge { days: 90 });
        all
    }

    /// The template's name, as used in JSON.
    pub const fn name(&self) -> &'static str {
        match self {
            Template::NoRootContainers => "no_root_containers",
            Template::NoPrivilegedContainers => "no_privileged_containers",
            Template::RequireRestartPolicy => "require_restart_policy",
            Template::RequireHealthcheck => "require_healthcheck",
            Template::RequireResourceLimits => "require_resource_limits",
            Template::NoLatestTag => "no_latest_tag",
            Template::NoDockerSocketMount => "no_docker_socket_mount",
            Template::NoHostNetwork => "no_host_network",
            Template::RequireSsl => "require_ssl",
            Template::NoExecProduction { .. } => "no_exec_production",
            Template::MaxContainerAge { .. } => "max_container_age",
        }
    }

    /// The policy this template stands for, under `id`. The result is an ordinary policy:
    /// callers may change its action, priority or `applies_to` before storing it.
    pub fn policy(&self, id: PolicyId) -> Policy {
        use Operator::*;
        fn leaf(field: &str, op: Operator, value: impl Into<serde_json::Value>) -> Condition {
            Condition::leaf(field, op, value)
        }
        let container = AppliesTo {
            actions: CONTAINER_CONFIG_ACTIONS.to_vec(),
            ..AppliesTo::default()
        };
        let (description, condition, action, priority, message, applies_to) = match self {
            Template::NoRootContainers => (
                "Containers must run as a non-root user (set USER in the image or --user).",
                Condition::any([
                    leaf("config.user", Exists, false),
                    leaf("config.user", Matches, "^(root|0)?(:.*)?$"),
                ]),
                PolicyAction::Block,
                80,
                "container runs as root (config.user is {value})",
                container,
            ),
            Template::NoPrivilegedContainers => (
                "Privileged containers have full access to the host.",
                leaf("host_config.privileged", Equals, true),
                PolicyAction::Block,
                100,
                "container is privileged",
                container,
            ),
            Template::RequireRestartPolicy => (
                "Containers should restart on failure or reboot.",
                Condition::any([
                    leaf("host_config.restart_policy.name", Exists, false),
                    leaf("host_config.restart_policy.name", In, json!(["", "no"])),
                ]),
                PolicyAction::Warn,
                30,
                "container has no restart policy (restart_policy.name is {value})",
                container,
            ),
            Template::RequireHealthcheck => (
                "Containers should define a health check.",
                Condition::any([
                    leaf("config.healthcheck.test", Exists, false),
                    leaf("config.healthcheck.test.0", Equals, "NONE"),
                ]),
                PolicyAction::Warn,
                30,
                "container has no health check",
                container,
            ),
            Template::RequireResourceLimits => (
                "Containers should have a memory limit and a CPU limit.",
                Condition::any([
                    leaf("host_config.memory", Exists, false),
                    leaf("host_config.memory", LessThan, 1),
                    leaf("host_config.nano_cpus", Exists, false),
                    leaf("host_config.nano_cpus", LessThan, 1),
                ]),
                PolicyAction::Warn,
                40,
                "container has no resource limit ({field} is {value})",
                container,
            ),
            Template::NoLatestTag => (
                "Images should be pinned to a tag other than latest, or to a digest.",
                // Optional registry/path prefix, then a last component with no tag or `:latest`
                // and no digest. A registry port (`host:5000/app`) is not a tag.
                leaf("image", Matches, "^(?:[^@]*/)?[^@:/]+(?::latest)?$"),
                PolicyAction::Warn,
                50,
                "image {value} is not pinned (no tag, or latest)",
                container,
            ),
            Template::NoDockerSocketMount => (
                "Mounting the Docker socket gives the container control of the host.",
                leaf(
                    "mounts.*.source",
                    In,
                    json!(["/var/run/docker.sock", "/run/docker.sock"]),
                ),
                PolicyAction::Block,
                100,
                "container mounts the Docker socket ({field} is {value})",
                container,
            ),
            Template::NoHostNetwork => (
                "Containers should not share the host's network namespace.",
                leaf("host_config.network_mode", Equals, "host"),
                PolicyAction::Block,
                90,
                "container uses the host network",
                container,
            ),
            Template::RequireSsl => (
                "Proxy hosts must have a certificate and redirect HTTP to HTTPS.",
                Condition::any([
                    leaf("ssl.certificate_id", Exists, false),
                    Condition::not(leaf("ssl.force", Equals, true)),
                ]),
                PolicyAction::Block,
                70,
                "proxy host is not HTTPS-only ({field} is {value})",
                AppliesTo {
                    actions: vec![ActionKind::CreateProxy, ActionKind::UpdateProxy],
                    ..AppliesTo::default()
                },
            ),
            Template::NoExecProduction { environments } => (
                "No interactive exec into containers in production environments.",
                Condition::always(),
                PolicyAction::Block,
                100,
                "exec is not allowed in this environment",
                AppliesTo {
                    environments: environments.clone(),
                    actions: vec![ActionKind::Exec],
                    ..AppliesTo::default()
                },
            ),
            Template::MaxContainerAge { days } => (
                "Old containers should be recreated from a fresh image.",
                leaf("created", OlderThan, u64::from(*days) * DAY),
                PolicyAction::Warn,
                20,
                "container is older than the allowed age (created at {value})",
                AppliesTo {
                    actions: vec![ActionKind::Start, ActionKind::Restart, ActionKind::Update],
                    ..AppliesTo::default()
                },
            ),
        };
        Policy {
            id,
            name: self.name().to_owned(),
            description: description.to_owned(),
            condition,
            action,
            message: MessageTemplate::parse(message).ok(),
            priority,
            enabled: true,
            applies_to,
        }
    }
}
