//! Subjects: the thing an alert is about.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::AgentId;
use crate::values::{ContainerName, Domain};

/// What one firing is about. The same rule fires separately for each subject, and cooldowns
/// and resolutions are tracked per subject.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Subject {
    /// An agent as a whole.
    Agent {
        /// The agent.
        agent: AgentId,
    },
    /// A container on an agent, by name.
    Container {
        /// The agent.
        agent: AgentId,
        /// The container.
        container: ContainerName,
    },
    /// A proxied host (or its certificate) on an agent.
    Host {
        /// The agent.
        agent: AgentId,
        /// The host.
        host: Domain,
    },
}

impl Subject {
    /// The agent the subject lives on.
    pub fn agent(&self) -> AgentId {
        match self {
            Self::Agent { agent } | Self::Container { agent, .. } | Self::Host { agent, .. } => {
                *agent
            }
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Agent { agent } => write!(f, "agent {agent}"),
            Self::Container { agent, container } => {
                write!(f, "container {container} on agent {agent}")
            }
            Self::Host { agent, host } => write!(f, "host {host} on agent {agent}"),
        }
    }
}
