//! Alert rules and their pure evaluation.
//!
//! A rule ([`AlertRule`]) says what to watch ([`RuleKind`]), where ([`Scope`]), how loud
//! ([`Severity`]) and how often to repeat itself (the cooldown). The server feeds batches of
//! [`Observations`] (container events and samples, certificates, nginx request windows, agent
//! heartbeats) into [`evaluate`] together with the [`RuleState`] it persisted last time and
//! the current time, and gets back the new state, the [`Firing`]s and the [`Resolution`]s.
//! Nothing here reads a clock or sends anything; notifying is the server's job.

mod delivery;
mod evaluate;
mod kinds;
mod observation;
mod outcome;
mod rule;
mod state;
mod subject;

#[cfg(test)]
mod props;
#[cfg(test)]
mod test_support;

pub use delivery::{FIRST_RETRY_SECS, MAX_DELIVERY_ATTEMPTS, MAX_RETRY_SECS, retry_after};
pub use evaluate::{LATE_GRACE_SECS, evaluate};
pub use observation::{
    AgentSeen, CertificateObservation, ContainerEvent, ContainerEventKind, ContainerSample,
    HealthStatus, NginxWindow, Observation, Observations,
};
pub use outcome::{Evaluation, Firing, Resolution};
pub use rule::{
    AlertRule, AlertRuleSpec, MAX_CERT_DAYS, MAX_COUNT, MAX_CPU_PERCENT, MAX_NAME_CHARS,
    MAX_SECONDS, MemoryThreshold, RuleError, RuleKind, Scope, Severity, min_agent_offline_secs,
};
pub use state::{RuleState, SubjectState};
pub use subject::Subject;
