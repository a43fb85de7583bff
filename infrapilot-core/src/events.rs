//! The event inventory: what happened on a host or in the control plane, as typed events.
//!
//! Docker reports container lifecycle events on the agent; the agent ships each one as a
//! [`DockerEvent`] (JSON) on its `docker:events` log stream, so events share the log
//! pipeline's guarantee (buffered on disk while the server is away, stored exactly once).
//! The server adds its own: an agent going online or offline, a proxy apply's result, a
//! policy violation, an alert firing or resolving. [`EventKind`] names them all; its string
//! form (`container.die`) is what the API filters on and what is stored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kinds of event in the inventory.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum EventKind {
    /// A container was created.
    #[serde(rename = "container.create")]
    ContainerCreate,
    /// A container started.
    #[serde(rename = "container.start")]
    ContainerStart,
    /// A container's main process exited (with its exit code).
    #[serde(rename = "container.die")]
    ContainerDie,
    /// A container's process was killed by the kernel for lack of memory.
    #[serde(rename = "container.oom")]
    ContainerOom,
    /// A container's health check changed its verdict.
    #[serde(rename = "container.health_status")]
    ContainerHealth,
    /// A container was restarted (by its restart policy or by hand).
    #[serde(rename = "container.restart")]
    ContainerRestart,
    /// A container was stopped.
    #[serde(rename = "container.stop")]
    ContainerStop,
    /// A container was removed.
    #[serde(rename = "container.destroy")]
    ContainerDestroy,
    /// An agent's stream opened.
    #[serde(rename = "agent.online")]
    AgentOnline,
    /// An agent's stream closed.
    #[serde(rename = "agent.offline")]
    AgentOffline,
    /// An agent applied (or failed to apply) its proxy configuration.
    #[serde(rename = "proxy.apply")]
    ProxyApply,
    /// A policy recorded a violation.
    #[serde(rename = "policy.violation")]
    PolicyViolation,
    /// An alert fired.
    #[serde(rename = "alert.firing")]
    AlertFiring,
    /// An alert resolved.
    #[serde(rename = "alert.resolved")]
    AlertResolved,
}

impl EventKind {
    /// Every kind, in a stable order.
    pub const ALL: [EventKind; 14] = [
        EventKind::ContainerCreate,
        EventKind::ContainerStart,
        EventKind::ContainerDie,
        EventKind::ContainerOom,
        EventKind::ContainerHealth,
        EventKind::ContainerRestart,
        EventKind::ContainerStop,
        EventKind::ContainerDestroy,
        EventKind::AgentOnline,
        EventKind::AgentOffline,
        EventKind::ProxyApply,
        EventKind::PolicyViolation,
        EventKind::AlertFiring,
        EventKind::AlertResolved,
    ];

    /// The stored and filtered name (`container.die`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ContainerCreate => "container.create",
            EventKind::ContainerStart => "container.start",
            EventKind::ContainerDie => "container.die",
            EventKind::ContainerOom => "container.oom",
            EventKind::ContainerHealth => "container.health_status",
            EventKind::ContainerRestart => "container.restart",
            EventKind::ContainerStop => "container.stop",
            EventKind::ContainerDestroy => "container.destroy",
            EventKind::AgentOnline => "agent.online",
            EventKind::AgentOffline => "agent.offline",
            EventKind::ProxyApply => "proxy.apply",
            EventKind::PolicyViolation => "policy.violation",
            EventKind::AlertFiring => "alert.firing",
            EventKind::AlertResolved => "alert.resolved",
        }
    }

    /// The kind Docker's container event `action` stands for; `None` for actions the
    /// inventory does not keep (`attach`, `exec_start`, …). Docker writes health changes as
    /// `health_status: healthy`, so only the part before `:` is looked at.
    pub fn from_docker_action(action: &str) -> Option<EventKind> {
        let base = action.split(':').next().unwrap_or_default().trim();
        Some(match base {
            "create" => EventKind::ContainerCreate,
            "start" => EventKind::ContainerStart,
            "die" => EventKind::ContainerDie,
            "oom" => EventKind::ContainerOom,
            "health_status" => EventKind::ContainerHealth,
            "restart" => EventKind::ContainerRestart,
            "stop" => EventKind::ContainerStop,
            "destroy" => EventKind::ContainerDestroy,
            _ => return None,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event kind name that is not one of [`EventKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {input:?}; known types: {known}")]
pub struct UnknownEventKind {
    /// What was given.
    pub input: String,
    /// The known names, comma-separated.
    pub known: String,
}

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEventKind {
                input: s.chars().take(64).collect(),
                known: EventKind::ALL.map(EventKind::as_str).join(", "),
            })
    }
}

/// How much an event matters.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Routine.
    Info,
    /// Worth a look.
    Warning,
    /// Something broke.
    Error,
}

impl Severity {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A container event as the agent ships it (one JSON line on its `docker:events` stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerEvent {
    /// Docker's action, verbatim (`die`, `health_status: unhealthy`).
    pub action: String,
    /// The container's id.
    pub container_id: String,
    /// The container's name, without Docker's leading `/`.
    #[serde(default)]
    pub container_name: String,
    /// The container's image.
    #[serde(default)]
    pub image: String,
    /// The exit code of a `die`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// When Docker says it happened, unix nanoseconds.
    pub time_unix_nanos: i64,
}

impl DockerEvent {
    /// The inventory's kind for this event, `None` if it is not kept.
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_docker_action(&self.action)
    }

    /// The health verdict of a `health_status` event (`healthy`, `unhealthy`, `starting`).
    pub fn health(&self) -> Option<&str> {
        let (base, status) = self.action.split_once(':')?;
        (base.trim() == "health_status").then(|| status.trim())
    }

    /// How much it matters: an OOM kill, a non-zero exit or an unhealthy verdict is an
    /// error; a restart a warning; the rest routine.
    pub fn severity(&self) -> Severity {
        match self.kind() {
            Some(EventKind::ContainerOom) => Severity::Error,
            Some(EventKind::ContainerDie) if self.exit_code.is_some_and(|c| c != 0) => {
                Severity::Error
            }
            Some(EventKind::ContainerHealth) if self.health() == Some("unhealthy") => {
                Severity::Error
            }
            Some(EventKind::ContainerRestart) => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// A one-line description for people (`web exited with code 137`).
    pub fn summary(&self) -> String {
        let name = if self.container_name.is_empty() {
            self.container_id.chars().take(12).collect::<String>()
        } else {
            self.container_name.clone()
        };
        match self.kind() {
            Some(EventKind::ContainerCreate) => format!("{name} was created"),
            Some(EventKind::ContainerStart) => format!("{name} started"),
            Some(EventKind::ContainerDie) => match self.exit_code {
                Some(code) => format!("{name} exited with code {code}"),
                None => format!("{name} exited"),
            },
            Some(EventKind::ContainerOom) => format!("{name} ran out of memory"),
            Some(EventKind::ContainerHealth) => {
                format!("{name} is {}", self.health().unwrap_or("of unknown health"))
            }
            Some(EventKind::ContainerRestart) => format!("{name} restarted"),
            Some(EventKind::ContainerStop) => format!("{name} stopped"),
            Some(EventKind::ContainerDestroy) => format!("{name} was removed"),
            _ => format!("{name}: {}", self.action),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event(action: &str, exit_code: Option<i64>) -> DockerEvent {
        DockerEvent {
            action: action.to_owned(),
            container_id: "0123456789abcdef0123".to_owned(),
            container_name: "web".to_owned(),
            image: "busybox".to_owned(),
            exit_code,
            time_unix_nanos: 1,
        }
    }

    #[test]
    fn docker_actions_map_to_kinds_severities_and_summaries() {
        let check = |action: &str, code: Option<i64>, kind: Option<EventKind>, sev, text: &str| {
            let e = event(action, code);
            assert_eq!(e.kind(), kind, "{action}");
            assert_eq!(e.severity(), sev, "{action}");
            assert_eq!(e.summary(), text, "{action}");
        };
        check(
            "start",
            None,
            Some(EventKind::ContainerStart),
            Severity::Info,
            "web started",
        );
        check(
            "die",
            Some(0),
            Some(EventKind::ContainerDie),
            Severity::Info,
            "web exited with code 0",
        );
        check(
            "die",
            Some(137),
            Some(EventKind::ContainerDie),
            Severity::Error,
            "web exited with code 137",
        );
        check(
            "oom",
            None,
            Some(EventKind::ContainerOom),
            Severity::Error,
            "web ran out of memory",
        );
        check(
            "health_status: unhealthy",
            None,
            Some(EventKind::ContainerHealth),
            Severity::Error,
            "web is unhealthy",
        );
        check(
            "health_status: healthy",
            None,
            Some(EventKind::ContainerHealth),
            Severity::Info,
            "web is healthy",
        );
        check(
            "restart",
            None,
            Some(EventKind::ContainerRestart),
            Severity::Warning,
            "web restarted",
        );
        check(
            "exec_start: sh",
            None,
            None,
            Severity::Info,
            "web: exec_start: sh",
        );
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        let err = "container.explode".parse::<EventKind>().unwrap_err();
        assert!(err.to_string().contains("container.die"), "{err}");
    }

    proptest! {
        #[test]
        fn any_action_is_classified_without_panicking(action in ".{0,40}", code in proptest::option::of(any::<i64>())) {
            let e = event(&action, code);
            let _ = e.severity();
            prop_assert!(!e.summary().is_empty());
            if let Some(kind) = e.kind() {
                prop_assert!(kind.as_str().starts_with("container."));
            }
        }
    }
}
