//! The evaluation entry point and the bookkeeping every kind shares.

use std::collections::BTreeMap;

use super::kinds;
use super::observation::{Observation, Observations};
use super::outcome::{Evaluation, Firing, Resolution};
use super::rule::{AlertRule, MemoryThreshold, RuleKind};
use super::state::{Memory, RuleState, SubjectState};
use super::subject::Subject;
use crate::ids::AgentId;
use crate::values::ContainerName;

/// Evaluates `rule` over one batch of `observations`, given what it remembered in `state`,
/// at time `now` (unix seconds).
///
/// Pure and deterministic: the same arguments always give the same [`Evaluation`]. The batch
/// is processed in time order (ties in batch order). Firings are per [`Subject`]; a subject
/// does not fire again within the rule's cooldown (a condition that still holds when the
/// cooldown ends fires then; observations arriving more than [`LATE_GRACE_SECS`] after their
/// subject went quiet may find it forgotten). A resolution is emitted once when a condition that fired
/// clears, never without an earlier firing. For the consecutive-sample kinds (CPU, memory),
/// feeding samples in one batch or split over several gives the same firings.
///
/// A disabled rule resolves whatever was open (at `now`) and forgets its state.
pub fn evaluate(
    rule: &AlertRule,
    observations: &Observations,
    state: RuleState,
    now: i64,
) -> Evaluation {
    let mut state = state;
    let mut out = Out {
        rule,
        observations,
        firings: Vec::new(),
        resolutions: Vec::new(),
    };
    if !rule.spec().enabled {
        for (subject, st) in state.map_mut().iter_mut() {
            out.resolve(subject, st, now, "the alert rule was disabled".to_owned());
        }
        return out.finish(RuleState::new());
    }
    let mut items: Vec<&Observation> = observations.items.iter().collect();
    items.sort_by_key(|o| o.time());
    let map = state.map_mut();
    match *rule.kind() {
        RuleKind::ContainerExited { include_clean_exit } => {
            kinds::exit::run(&mut out, map, &items, include_clean_exit);
        }
        RuleKind::RestartLoop {
            restarts,
            window_secs,
        } => {
            let window = i64::from(window_secs);
            kinds::restart_loop::run(&mut out, map, &items, restarts, window, now);
        }
        RuleKind::CpuAbove { percent, samples } => {
            let metric = kinds::threshold::Metric::Cpu { percent };
            kinds::threshold::run(&mut out, map, &items, metric, samples);
        }
        RuleKind::MemoryAbove { threshold, samples } => {
            let metric = match threshold {
                MemoryThreshold::Percent(percent) => {
                    kinds::threshold::Metric::MemoryPercent { percent }
                }
                MemoryThreshold::Bytes(bytes) => kinds::threshold::Metric::MemoryBytes { bytes },
            };
            kinds::threshold::run(&mut out, map, &items, metric, samples);
        }
        RuleKind::CertificateExpiring { within_days } => {
            kinds::certificate::run(&mut out, map, &items, within_days, now);
        }
        RuleKind::Nginx5xxShare {
            percent,
            window_secs,
            min_requests,
        } => {
            let limits = kinds::nginx::Limits {
                percent,
                window: i64::from(window_secs),
                min_requests,
            };
            kinds::nginx::run(&mut out, map, &items, limits, now);
        }
        RuleKind::AgentOffline { after_secs } => {
            kinds::offline::run(&mut out, map, &items, i64::from(after_secs), now);
        }
    }
    prune(map, rule, now);
    out.finish(state)
}

/// Collects firings and resolutions and applies the cooldown.
pub(super) struct Out<'a> {
    rule: &'a AlertRule,
    observations: &'a Observations,
    firings: Vec<Firing>,
    resolutions: Vec<Resolution>,
}

impl Out<'_> {
    /// Whether the rule applies to `agent`.
    pub(super) fn agent_in_scope(&self, agent: &AgentId) -> bool {
        self.observations
            .agent_matches(agent, &self.rule.scope().agent_selector)
    }

    /// Whether the rule applies to `container` on `agent`.
    pub(super) fn container_in_scope(&self, agent: &AgentId, container: &ContainerName) -> bool {
        self.rule.scope().matches_container(container) && self.agent_in_scope(agent)
    }

    /// Fires for `subject` at `at` unless the cooldown forbids it; `opens` marks a condition
    /// that will later resolve. Returns whether it fired.
    pub(super) fn fire(
        &mut self,
        subject: &Subject,
        st: &mut SubjectState,
        at: i64,
        value: Option<f64>,
        summary: String,
        opens: bool,
    ) -> bool {
        if let Some(last) = st.last_fired
            && at.saturating_sub(last) < self.rule.cooldown_secs()
        {
            return false;
        }
        st.last_fired = Some(at);
        st.active = opens;
        self.firings.push(Firing {
            rule: self.rule.id(),
            subject: subject.clone(),
            severity: self.rule.spec().severity,
            at,
            value,
            summary,
        });
        true
    }

    /// Resolves `subject` if its alert is open; never before its firing.
    pub(super) fn resolve(
        &mut self,
        subject: &Subject,
        st: &mut SubjectState,
        at: i64,
        summary: String,
    ) {
        if !st.active {
            return;
        }
        st.active = false;
        self.resolutions.push(Resolution {
            rule: self.rule.id(),
            subject: subject.clone(),
            at: st.last_fired.map_or(at, |fired| at.max(fired)),
            notify: self.rule.spec().notify_on_resolve,
            summary,
        });
    }

    /// Applies a condition that holds or not at `at`: opens the alert when it holds (and is
    /// not open yet), resolves it when it does not.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn condition(
        &mut self,
        subject: &Subject,
        st: &mut SubjectState,
        holds: bool,
        at: i64,
        value: Option<f64>,
        fired: impl FnOnce() -> String,
        cleared: impl FnOnce() -> String,
    ) {
        if holds && !st.active {
            self.fire(subject, st, at, value, fired(), true);
        } else if !holds && st.active {
            self.resolve(subject, st, at, cleared());
        }
    }

    fn finish(mut self, state: RuleState) -> Evaluation {
        self.firings.sort_by_key(|f| f.at);
        self.resolutions.sort_by_key(|r| r.at);
        Evaluation {
            state,
            firings: self.firings,
            resolutions: self.resolutions,
        }
    }
}

/// How long after its cooldown a quiet subject is still remembered, in seconds, so that
/// observations arriving late (time-stamped before `now`) still see the cooldown.
pub const LATE_GRACE_SECS: i64 = 3_600;

/// Drops subjects that remember nothing worth keeping, so the state does not grow forever.
fn prune(map: &mut BTreeMap<Subject, SubjectState>, rule: &AlertRule, now: i64) {
    let keep_for = rule.cooldown_secs().saturating_add(LATE_GRACE_SECS);
    map.retain(|_, st| {
        let cooling = st
            .last_fired
            .is_some_and(|t| now.saturating_sub(t) < keep_for);
        if st.active || cooling {
            return true;
        }
        match &st.memory {
            Memory::None => false,
            Memory::Consecutive { above, .. } => *above > 0,
            Memory::Restarts { recent, exited, .. } => {
                let window = match *rule.kind() {
                    RuleKind::RestartLoop { window_secs, .. } => i64::from(window_secs),
                    _ => 0,
                };
                *exited
                    || recent
                        .last()
                        .is_some_and(|t| now.saturating_sub(*t) < window)
            }
            Memory::Windows { windows } => !windows.is_empty(),
            Memory::Certificate { .. } | Memory::Seen { .. } => true,
        }
    });
}
