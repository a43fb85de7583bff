//! Observations: the facts the server feeds into rule evaluation.
//!
//! Every observation carries the time it was made, in unix seconds. Evaluation processes a
//! batch in time order (ties keep their order in the batch), so a batch need not be sorted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::AgentId;
use crate::values::{ContainerName, Domain, Labels};

/// One batch of observations, with the labels of the agents they come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Observations {
    /// The labels of each agent, for matching a rule's agent selector. An agent missing here
    /// counts as having no labels, so only rules with an empty selector see it.
    #[serde(default)]
    pub agent_labels: BTreeMap<AgentId, Labels>,
    /// The observations, in any order.
    #[serde(default)]
    pub items: Vec<Observation>,
}

impl Observations {
    /// Whether `agent` carries every label of `selector` (an unknown agent has no labels).
    pub fn agent_matches(&self, agent: &AgentId, selector: &Labels) -> bool {
        match self.agent_labels.get(agent) {
            Some(labels) => labels.matches(selector),
            None => selector.is_empty(),
        }
    }
}

/// One fact about the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Observation {
    /// Something happened to a container.
    ContainerEvent(ContainerEvent),
    /// A container's resource use at one moment.
    ContainerSample(ContainerSample),
    /// A certificate as currently installed on an agent.
    Certificate(CertificateObservation),
    /// Request counts of one host over one time window.
    NginxWindow(NginxWindow),
    /// An agent was seen (a heartbeat, or its last-seen time from the registry).
    AgentSeen(AgentSeen),
}

impl Observation {
    /// The time the observation refers to, in unix seconds: for a window, its end.
    pub fn time(&self) -> i64 {
        match self {
            Self::ContainerEvent(e) => e.at,
            Self::ContainerSample(s) => s.at,
            Self::Certificate(c) => c.at,
            Self::NginxWindow(w) => w.end,
            Self::AgentSeen(a) => a.at,
        }
    }
}

/// A Docker container event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContainerEvent {
    /// The agent the container runs on.
    pub agent: AgentId,
    /// The container's name (stable across re-creation, so alerts key on it).
    pub container: ContainerName,
    /// The container's id, for display.
    pub container_id: String,
    /// What happened.
    pub kind: ContainerEventKind,
    /// When it happened, in unix seconds.
    pub at: i64,
}

/// What happened to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContainerEventKind {
    /// The container started.
    Start,
    /// The container's main process exited.
    Die {
        /// Its exit code (137 after a kill or an out-of-memory kill).
        exit_code: i64,
    },
    /// The kernel killed a process of the container for lack of memory.
    Oom,
    /// The container was restarted. A `Start` right after a `Die` already counts as a
    /// restart, so a `Restart` that directly follows such a `Start` is not counted again.
    Restart,
    /// The container's health check changed state.
    HealthStatus {
        /// The new state.
        status: HealthStatus,
    },
}

/// A container's health-check state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// The health check has not passed yet.
    Starting,
    /// The health check passes.
    Healthy,
    /// The health check fails.
    Unhealthy,
}

/// A container's resource use at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContainerSample {
    /// The agent the container runs on.
    pub agent: AgentId,
    /// The container's name.
    pub container: ContainerName,
    /// CPU use in percent of one core (may exceed 100 on several cores). A sample whose CPU
    /// value is not a finite number is ignored by CPU rules.
    pub cpu_percent: f64,
    /// Memory in use, in bytes.
    pub memory_bytes: u64,
    /// The memory limit in bytes, if the container has one.
    pub memory_limit_bytes: Option<u64>,
    /// When the sample was taken, in unix seconds.
    pub at: i64,
}

/// A certificate as installed on an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CertificateObservation {
    /// The agent holding the certificate.
    pub agent: AgentId,
    /// The host (primary name) the certificate serves; alerts key on it.
    pub host: Domain,
    /// All names on the certificate.
    pub domains: Vec<Domain>,
    /// The end of its validity, in unix seconds.
    pub not_after: i64,
    /// When it was observed, in unix seconds.
    pub at: i64,
}

/// Request counts of one host over one window, as aggregated from access logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NginxWindow {
    /// The agent running the proxy.
    pub agent: AgentId,
    /// The proxied host.
    pub host: Domain,
    /// Requests answered in the window.
    pub total: u64,
    /// Of those, how many had a 5xx status (counted as at most `total`).
    pub errors_5xx: u64,
    /// The window's start, in unix seconds (a second window with the same host and start
    /// replaces the first).
    pub start: i64,
    /// The window's end, in unix seconds.
    pub end: i64,
}

/// An agent was seen at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentSeen {
    /// The agent.
    pub agent: AgentId,
    /// When it was last seen, in unix seconds.
    pub at: i64,
}
