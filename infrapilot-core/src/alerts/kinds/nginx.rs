//! Share of 5xx answers over a window, with a minimum request count.

use std::collections::BTreeMap;

use crate::alerts::evaluate::Out;
use crate::alerts::observation::Observation;
use crate::alerts::state::{Memory, SubjectState, WindowCounts};
use crate::alerts::subject::Subject;

/// The rule's parameters.
#[derive(Debug, Clone, Copy)]
pub(in crate::alerts) struct Limits {
    pub(in crate::alerts) percent: f64,
    pub(in crate::alerts) window: i64,
    pub(in crate::alerts) min_requests: u64,
}

pub(in crate::alerts) fn run(
    out: &mut Out<'_>,
    map: &mut BTreeMap<Subject, SubjectState>,
    items: &[&Observation],
    limits: Limits,
    now: i64,
) {
    for item in items {
        let Observation::NginxWindow(w) = item else {
            continue;
        };
        if !out.agent_in_scope(&w.agent) {
            continue;
        }
        let subject = Subject::Host {
            agent: w.agent,
            host: w.host.clone(),
        };
        let st = map.entry(subject.clone()).or_default();
        let mut windows = match std::mem::take(&mut st.memory) {
            Memory::Windows { windows } => windows,
            _ => Vec::new(),
        };
        let counts = WindowCounts {
            start: w.start,
            end: w.end,
            total: w.total,
            errors: w.errors_5xx.min(w.total),
        };
        match windows.iter_mut().find(|old| old.start == w.start) {
            Some(old) => *old = counts,
            None => windows.push(counts),
        }
        windows.sort_by_key(|c| (c.end, c.start));
        judge(out, &subject, st, &windows, limits, w.end);
        st.memory = Memory::Windows { windows };
    }
    for (subject, st) in map.iter_mut() {
        let Memory::Windows { windows } = &mut st.memory else {
            continue;
        };
        windows.retain(|c| c.end > now.saturating_sub(limits.window));
        let windows = windows.clone();
        judge(out, subject, st, &windows, limits, now);
    }
}

/// Sums the windows ending within `(at - window, at]` and applies the condition at `at`.
fn judge(
    out: &mut Out<'_>,
    subject: &Subject,
    st: &mut SubjectState,
    windows: &[WindowCounts],
    limits: Limits,
    at: i64,
) {
    let from = at.saturating_sub(limits.window);
    let (total, errors) = windows
        .iter()
        .filter(|c| c.end > from && c.end <= at)
        .fold((0u64, 0u64), |(t, e), c| {
            (t.saturating_add(c.total), e.saturating_add(c.errors))
        });
    #[allow(clippy::cast_precision_loss)]
    let share = if total == 0 {
        0.0
    } else {
        errors as f64 * 100.0 / total as f64
    };
    let holds = total >= limits.min_requests && share > limits.percent;
    out.condition(
        subject,
        st,
        holds,
        at,
        Some(share),
        || {
            format!(
                "{subject}: {share:.1}% of {total} requests answered 5xx in the last {} seconds (above {}%)",
                limits.window, limits.percent
            )
        },
        || format!("{subject}: 5xx share back to {share:.1}% of {total} requests"),
    );
}

#[cfg(test)]
mod tests {
    use crate::alerts::RuleKind;
    use crate::alerts::test_support::*;

    #[test]
    fn five_xx_share() {
        let r = rule(spec(RuleKind::Nginx5xxShare {
            percent: 10.0,
            window_secs: 300,
            min_requests: 20,
        }));
        let check = |steps_in: Vec<(i64, Vec<crate::alerts::Observation>)>,
                     want_fired: &str,
                     want_resolved: &str| {
            let got = steps(&r, steps_in);
            assert_eq!(fired(&got), want_fired);
            assert_eq!(resolved(&got), want_resolved);
        };
        // 1 failed out of 1: under the minimum request count.
        check(vec![(60, vec![window("a.example", 0, 60, 1, 1)])], "", "");
        // 5 of 30 (16.7%) fires.
        check(
            vec![(60, vec![window("a.example", 0, 60, 30, 5)])],
            "a.example@60",
            "",
        );
        // Exactly 10% does not.
        check(vec![(60, vec![window("a.example", 0, 60, 30, 3)])], "", "");
        // Windows add up: 2/10 then 3/15 -> 5/25 = 20% at 120.
        check(
            vec![(
                120,
                vec![
                    window("a.example", 0, 60, 10, 2),
                    window("a.example", 60, 120, 15, 3),
                ],
            )],
            "a.example@120",
            "",
        );
        // A clean window dilutes the share under the threshold and resolves.
        check(
            vec![
                (60, vec![window("a.example", 0, 60, 30, 5)]),
                (120, vec![window("a.example", 60, 120, 300, 0)]),
            ],
            "a.example@60",
            "a.example@120",
        );
        // Traffic stops: the bad window leaves the 300 s window and the alert resolves at `now`.
        check(
            vec![(60, vec![window("a.example", 0, 60, 30, 5)]), (400, vec![])],
            "a.example@60",
            "a.example@400",
        );
        // A repeated window replaces the earlier count instead of adding to it.
        check(
            vec![(
                60,
                vec![
                    window("a.example", 0, 60, 20, 1),
                    window("a.example", 0, 60, 20, 1),
                ],
            )],
            "",
            "",
        );
    }
}
