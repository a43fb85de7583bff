//! Container exited / crashed.

use std::collections::BTreeMap;

use crate::alerts::evaluate::Out;
use crate::alerts::observation::{ContainerEventKind, Observation};
use crate::alerts::state::SubjectState;
use crate::alerts::subject::Subject;

pub(in crate::alerts) fn run(
    out: &mut Out<'_>,
    map: &mut BTreeMap<Subject, SubjectState>,
    items: &[&Observation],
    include_clean_exit: bool,
) {
    for item in items {
        let Observation::ContainerEvent(event) = item else {
            continue;
        };
        let ContainerEventKind::Die { exit_code } = event.kind else {
            continue;
        };
        if (exit_code == 0 && !include_clean_exit)
            || !out.container_in_scope(&event.agent, &event.container)
        {
            continue;
        }
        let subject = Subject::Container {
            agent: event.agent,
            container: event.container.clone(),
        };
        let st = map.entry(subject.clone()).or_default();
        let hint = match exit_code {
            0 => "",
            137 => " (killed: out of memory or SIGKILL)",
            139 => " (segmentation fault)",
            143 => " (terminated by SIGTERM)",
            _ => "",
        };
        let summary = format!("{subject} exited with code {exit_code}{hint}");
        #[allow(clippy::cast_precision_loss)]
        out.fire(
            &subject,
            st,
            event.at,
            Some(exit_code as f64),
            summary,
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::alerts::RuleKind;
    use crate::alerts::test_support::*;

    fn check(include_clean_exit: bool, cooldown: u32, events: &[(&str, i64, i64)], want: &str) {
        let mut r = spec(RuleKind::ContainerExited { include_clean_exit });
        r.cooldown_secs = cooldown;
        let obs: Vec<_> = events
            .iter()
            .map(|&(c, at, code)| die(A1, c, at, code))
            .collect();
        let got = steps(&rule(r), vec![(1_000, obs)]);
        assert_eq!(fired(&got), want);
        assert_eq!(resolved(&got), "");
    }

    #[test]
    fn exits() {
        check(
            false,
            0,
            &[("web", 10, 1), ("web", 20, 0), ("db", 30, 137)],
            "web@10 db@30",
        );
        check(true, 0, &[("web", 10, 1), ("web", 20, 0)], "web@10 web@20");
        // Out of order in the batch: processed by time.
        check(false, 0, &[("web", 20, 2), ("db", 10, 1)], "db@10 web@20");
        // The cooldown is per container: web is suppressed at 20, db still fires.
        check(
            false,
            60,
            &[
                ("web", 10, 1),
                ("web", 20, 1),
                ("db", 25, 1),
                ("web", 70, 1),
            ],
            "web@10 db@25 web@70",
        );
        // Starts and other events never fire.
        check(false, 0, &[], "");
    }
}
