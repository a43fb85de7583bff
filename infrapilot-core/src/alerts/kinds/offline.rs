//! Agent offline for more than N seconds.

use std::collections::BTreeMap;

use crate::alerts::evaluate::Out;
use crate::alerts::observation::Observation;
use crate::alerts::state::{Memory, SubjectState};
use crate::alerts::subject::Subject;

pub(in crate::alerts) fn run(
    out: &mut Out<'_>,
    map: &mut BTreeMap<Subject, SubjectState>,
    items: &[&Observation],
    after: i64,
    now: i64,
) {
    for item in items {
        let Observation::AgentSeen(seen) = item else {
            continue;
        };
        if !out.agent_in_scope(&seen.agent) {
            continue;
        }
        let st = map.entry(Subject::Agent { agent: seen.agent }).or_default();
        let last_seen = match st.memory {
            Memory::Seen { last_seen } => last_seen.max(seen.at),
            _ => seen.at,
        };
        st.memory = Memory::Seen { last_seen };
    }
    for (subject, st) in map.iter_mut() {
        let Memory::Seen { last_seen } = st.memory else {
            continue;
        };
        let silent = now.saturating_sub(last_seen);
        if silent > after {
            let summary = format!("{subject} has not been seen for {silent} seconds");
            #[allow(clippy::cast_precision_loss)]
            let value = Some(silent as f64);
            if !st.active {
                out.fire(subject, st, now, value, summary, true);
            }
        } else {
            let summary = format!("{subject} is back online");
            out.resolve(subject, st, last_seen, summary);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::alerts::RuleKind;
    use crate::alerts::test_support::*;

    #[test]
    fn offline() {
        let mut s = spec(RuleKind::AgentOffline { after_secs: 60 });
        let check =
            |s: &crate::alerts::AlertRuleSpec, steps_in, want_fired: &str, want_resolved: &str| {
                let got = steps(&rule(s.clone()), steps_in);
                assert_eq!(fired(&got), want_fired);
                assert_eq!(resolved(&got), want_resolved);
            };
        check(&s, vec![(30, vec![seen(A1, 0)]), (60, vec![])], "", "");
        check(
            &s,
            vec![(30, vec![seen(A1, 0)]), (61, vec![]), (90, vec![])],
            "a1@61",
            "",
        );
        check(
            &s,
            vec![
                (30, vec![seen(A1, 0), seen(A2, 0)]),
                (61, vec![seen(A2, 50)]),
            ],
            "a1@61",
            "",
        );
        check(
            &s,
            vec![
                (30, vec![seen(A1, 0)]),
                (100, vec![]),
                (130, vec![seen(A1, 120)]),
            ],
            "a1@100",
            "a1@120",
        );
        // A late heartbeat older than the firing resolves no earlier than the firing.
        check(
            &s,
            vec![
                (0, vec![seen(A1, 0)]),
                (100, vec![]),
                (101, vec![seen(A1, 90)]),
            ],
            "a1@100",
            "a1@100",
        );
        // Flapping within the cooldown fires once.
        s.cooldown_secs = 600;
        check(
            &s,
            vec![
                (0, vec![seen(A1, 0)]),
                (100, vec![]),
                (110, vec![seen(A1, 110)]),
                (200, vec![]),
                (800, vec![]),
            ],
            "a1@100 a1@800",
            "a1@110",
        );
        // The selector keeps dev agents (A2) out.
        s.scope.agent_selector = crate::values::Labels::parse_pairs(["env=prod"]).unwrap();
        check(
            &s,
            vec![(0, vec![seen(A1, 0), seen(A2, 0)]), (100, vec![])],
            "a1@100",
            "",
        );
    }
}
