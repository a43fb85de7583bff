//! The memory a rule keeps between evaluations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::subject::Subject;

/// Everything one rule remembers between evaluations, per subject.
///
/// The server persists it (as JSON, whole or per subject through [`RuleState::subjects`] and
/// [`RuleState::from_subjects`]) and hands it back to the next
/// [`evaluate`](super::evaluate) call. A state written for another rule kind is not an error:
/// the parts that do not fit are started afresh.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    #[serde(with = "entries")]
    subjects: BTreeMap<Subject, SubjectState>,
}

impl RuleState {
    /// A state with nothing remembered, for a new rule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a state from per-subject parts (a later duplicate subject wins).
    pub fn from_subjects(parts: impl IntoIterator<Item = (Subject, SubjectState)>) -> Self {
        Self {
            subjects: parts.into_iter().collect(),
        }
    }

    /// The per-subject parts, in subject order.
    pub fn subjects(&self) -> impl Iterator<Item = (&Subject, &SubjectState)> {
        self.subjects.iter()
    }

    /// The subjects whose alert is open: fired and not yet resolved.
    pub fn active(&self) -> impl Iterator<Item = &Subject> {
        self.subjects
            .iter()
            .filter(|(_, s)| s.active)
            .map(|(k, _)| k)
    }

    pub(super) fn map_mut(&mut self) -> &mut BTreeMap<Subject, SubjectState> {
        &mut self.subjects
    }
}

/// What a rule remembers about one subject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubjectState {
    /// A firing was emitted and no resolution since.
    pub(super) active: bool,
    /// The time of the last firing, in unix seconds.
    pub(super) last_fired: Option<i64>,
    /// What the kind needs to remember.
    pub(super) memory: Memory,
}

impl SubjectState {
    /// Whether the subject's alert is open (fired and not yet resolved).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// When the rule last fired for the subject, in unix seconds.
    pub fn last_fired(&self) -> Option<i64> {
        self.last_fired
    }
}

/// Kind-specific memory. Fields stay private to the alerts module.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Memory {
    /// Nothing beyond the common fields.
    #[default]
    None,
    /// Consecutive samples above a threshold.
    Consecutive { above: u32, last_sample_at: i64 },
    /// Recent restarts of a container.
    Restarts {
        /// The times of the latest restarts, oldest first, at most the rule's count.
        recent: Vec<i64>,
        /// The last lifecycle event was an exit, so the next start is a restart.
        exited: bool,
        /// The last lifecycle event was a start counted as a restart.
        counted_start: bool,
    },
    /// The latest known certificate expiry.
    Certificate { not_after: i64, domains: usize },
    /// Recent nginx windows.
    Windows { windows: Vec<WindowCounts> },
    /// When the agent was last seen.
    Seen { last_seen: i64 },
}

/// One nginx window remembered by a 5xx-share rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct WindowCounts {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) total: u64,
    pub(super) errors: u64,
}

/// Serializes the subject map as a list of `{subject, state}` entries, since JSON object keys
/// must be strings.
mod entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Subject, SubjectState};

    #[derive(Serialize, Deserialize)]
    struct Entry<S, T> {
        subject: S,
        state: T,
    }

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<Subject, SubjectState>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter().map(|(subject, state)| Entry { subject, state }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Subject, SubjectState>, D::Error> {
        let list = Vec::<Entry<Subject, SubjectState>>::deserialize(d)?;
        Ok(list.into_iter().map(|e| (e.subject, e.state)).collect())
    }
}
