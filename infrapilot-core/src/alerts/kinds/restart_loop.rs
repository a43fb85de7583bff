//! Restart loop: N restarts within a window.
//!
//! A restart is a `start` that follows a `die` of the same container, or a `restart` event
//! that does not directly follow such a start (Docker reports `docker restart` as die, start,
//! restart: that is one restart, not two).

use std::collections::BTreeMap;

use crate::alerts::evaluate::Out;
use crate::alerts::observation::{ContainerEventKind, Observation};
use crate::alerts::state::{Memory, SubjectState};
use crate::alerts::subject::Subject;

pub(in crate::alerts) fn run(
    out: &mut Out<'_>,
    map: &mut BTreeMap<Subject, SubjectState>,
    items: &[&Observation],
    restarts: u32,
    window: i64,
    now: i64,
) {
    let needed = usize::try_from(restarts).unwrap_or(usize::MAX);
    for item in items {
        let Observation::ContainerEvent(event) = item else {
            continue;
        };
        if !out.container_in_scope(&event.agent, &event.container) {
            continue;
        }
        let subject = Subject::Container {
            agent: event.agent,
            container: event.container.clone(),
        };
        let st = map.entry(subject.clone()).or_default();
        let (mut recent, mut exited, mut counted_start) = match std::mem::take(&mut st.memory) {
            Memory::Restarts {
                recent,
                exited,
                counted_start,
            } => (recent, exited, counted_start),
            _ => (Vec::new(), false, false),
        };
        quiet_check(out, &subject, st, &recent, window, event.at);
        let restarted = match event.kind {
            ContainerEventKind::Start => {
                let restarted = exited;
                exited = false;
                counted_start = restarted;
                restarted
            }
            ContainerEventKind::Die { .. } => {
                exited = true;
                counted_start = false;
                false
            }
            ContainerEventKind::Restart => {
                let restarted = !counted_start;
                counted_start = false;
                exited = false;
                restarted
            }
            ContainerEventKind::Oom | ContainerEventKind::HealthStatus { .. } => false,
        };
        if restarted {
            recent.push(event.at);
            if recent.len() > needed {
                recent.drain(..recent.len() - needed);
            }
            let in_window = recent
                .first()
                .is_some_and(|first| event.at.saturating_sub(*first) < window);
            if recent.len() >= needed && in_window && !st.active {
                let summary = format!(
                    "{subject} restarted {} times within {window} seconds",
                    recent.len()
                );
                #[allow(clippy::cast_precision_loss)]
                let value = Some(recent.len() as f64);
                out.fire(&subject, st, event.at, value, summary, true);
            }
        }
        st.memory = Memory::Restarts {
            recent,
            exited,
            counted_start,
        };
    }
    for (subject, st) in map.iter_mut() {
        if let Memory::Restarts { recent, .. } = &st.memory {
            let recent = recent.clone();
            quiet_check(out, subject, st, &recent, window, now);
        }
    }
}

/// Resolves an open loop once a whole window passed without a restart.
fn quiet_check(
    out: &mut Out<'_>,
    subject: &Subject,
    st: &mut SubjectState,
    recent: &[i64],
    window: i64,
    at: i64,
) {
    if let Some(last) = recent.last()
        && st.active
        && at.saturating_sub(*last) >= window
    {
        let summary = format!("{subject} has not restarted for {window} seconds");
        out.resolve(subject, st, last.saturating_add(window), summary);
    }
}

#[cfg(test)]
mod tests {
    use crate::alerts::ContainerEventKind::{Die, Restart, Start};
    use crate::alerts::test_support::*;
    use crate::alerts::{ContainerEventKind, RuleKind};

    fn check(
        events: &[(i64, ContainerEventKind)],
        now: i64,
        want_fired: &str,
        want_resolved: &str,
    ) {
        let r = rule(spec(RuleKind::RestartLoop {
            restarts: 3,
            window_secs: 100,
        }));
        let obs = events
            .iter()
            .map(|&(at, k)| event(A1, "web", at, k))
            .collect();
        let got = steps(&r, vec![(now, obs)]);
        assert_eq!(fired(&got), want_fired, "{events:?}");
        assert_eq!(resolved(&got), want_resolved, "{events:?}");
    }

    const D: ContainerEventKind = Die { exit_code: 1 };

    #[test]
    fn restart_loops() {
        // Three die/start pairs within 100 s fire at the third start.
        check(
            &[
                (0, D),
                (1, Start),
                (10, D),
                (11, Start),
                (20, D),
                (21, Start),
            ],
            50,
            "web@21",
            "",
        );
        // Quiet for a window after the last restart resolves, at the end of that window.
        check(
            &[
                (0, D),
                (1, Start),
                (10, D),
                (11, Start),
                (20, D),
                (21, Start),
            ],
            500,
            "web@21",
            "web@121",
        );
        // Too spread out.
        check(
            &[
                (0, D),
                (1, Start),
                (60, D),
                (61, Start),
                (120, D),
                (121, Start),
            ],
            130,
            "",
            "",
        );
        // docker restart = die, start, restart: counted once.
        check(
            &[
                (0, D),
                (1, Start),
                (1, Restart),
                (10, D),
                (11, Start),
                (11, Restart),
            ],
            20,
            "",
            "",
        );
        // Bare restart events count.
        check(&[(0, Restart), (5, Restart), (9, Restart)], 20, "web@9", "");
        // A first start (no preceding die) is not a restart.
        check(
            &[(0, Start), (5, D), (6, Start), (9, D), (10, Start)],
            20,
            "",
            "",
        );
        // The loop goes quiet, then starts again: fires again (no cooldown).
        check(
            &[
                (0, Restart),
                (1, Restart),
                (2, Restart),
                (300, Restart),
                (301, Restart),
                (302, Restart),
            ],
            310,
            "web@2 web@302",
            "web@102",
        );
    }

    #[test]
    fn split_over_batches() {
        let r = rule(spec(RuleKind::RestartLoop {
            restarts: 2,
            window_secs: 100,
        }));
        let got = steps(
            &r,
            vec![
                (5, vec![event(A1, "web", 0, D)]),
                (10, vec![event(A1, "web", 1, Start), event(A1, "web", 8, D)]),
                (20, vec![event(A1, "web", 9, Start)]),
                (150, vec![]),
            ],
        );
        assert_eq!(fired(&got), "web@9");
        assert_eq!(resolved(&got), "web@109");
    }
}
