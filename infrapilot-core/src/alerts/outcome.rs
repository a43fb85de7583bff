//! What an evaluation reports.

use serde::{Deserialize, Serialize};

use super::rule::Severity;
use super::state::RuleState;
use super::subject::Subject;
use crate::ids::AlertRuleId;

/// A rule's condition was met for a subject and the cooldown allowed saying so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Firing {
    /// The rule that fired.
    pub rule: AlertRuleId,
    /// What it fired about.
    pub subject: Subject,
    /// The rule's severity.
    pub severity: Severity,
    /// When the condition was met, in unix seconds (the observation's time, or `now` for
    /// conditions checked against the clock).
    pub at: i64,
    /// The measured value behind the firing (exit code, percent, restarts, days left, seconds
    /// offline), when there is one.
    pub value: Option<f64>,
    /// One sentence saying what happened.
    pub summary: String,
}

/// A condition that had fired is no longer met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Resolution {
    /// The rule.
    pub rule: AlertRuleId,
    /// The subject of the earlier firing.
    pub subject: Subject,
    /// When the condition cleared, in unix seconds.
    pub at: i64,
    /// Whether the rule asks for resolutions to be notified.
    pub notify: bool,
    /// One sentence saying what changed.
    pub summary: String,
}

/// The result of one [`evaluate`](super::evaluate) call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The state to persist and pass to the next evaluation.
    pub state: RuleState,
    /// New firings, in time order.
    pub firings: Vec<Firing>,
    /// New resolutions, in time order. Each follows an earlier firing for the same subject.
    pub resolutions: Vec<Resolution>,
}
