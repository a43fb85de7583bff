//! Certificate expiring within N days.

use std::collections::BTreeMap;

use crate::alerts::evaluate::Out;
use crate::alerts::observation::Observation;
use crate::alerts::state::{Memory, SubjectState};
use crate::alerts::subject::Subject;

const DAY: i64 = 86_400;

pub(in crate::alerts) fn run(
    out: &mut Out<'_>,
    map: &mut BTreeMap<Subject, SubjectState>,
    items: &[&Observation],
    within_days: u32,
    now: i64,
) {
    for item in items {
        let Observation::Certificate(cert) = item else {
            continue;
        };
        if !out.agent_in_scope(&cert.agent) {
            continue;
        }
        let subject = Subject::Host {
            agent: cert.agent,
            host: cert.host.clone(),
        };
        let st = map.entry(subject).or_default();
        // Time order: the latest observation describes the installed certificate.
        st.memory = Memory::Certificate {
            not_after: cert.not_after,
            domains: cert.domains.len(),
        };
    }
    let horizon = i64::from(within_days).saturating_mul(DAY);
    for (subject, st) in map.iter_mut() {
        let Memory::Certificate { not_after, domains } = st.memory else {
            continue;
        };
        let left = not_after.saturating_sub(now);
        #[allow(clippy::cast_precision_loss)]
        let days_left = left as f64 / DAY as f64;
        out.condition(
            subject,
            st,
            left <= horizon,
            now,
            Some(days_left),
            || {
                if left <= 0 {
                    format!("the certificate of {subject} ({domains} names) has expired")
                } else {
                    format!(
                        "the certificate of {subject} ({domains} names) expires in {days_left:.1} days"
                    )
                }
            },
            || format!("the certificate of {subject} was renewed; it is valid for {days_left:.1} more days"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::alerts::RuleKind;
    use crate::alerts::test_support::*;

    const DAY: i64 = 86_400;

    #[test]
    fn certificates() {
        let r = rule(spec(RuleKind::CertificateExpiring { within_days: 14 }));
        let check = |steps_in: Vec<(i64, Vec<crate::alerts::Observation>)>,
                     want_fired: &str,
                     want_resolved: &str| {
            let got = steps(&r, steps_in);
            assert_eq!(fired(&got), want_fired);
            assert_eq!(resolved(&got), want_resolved);
        };
        // 30 days left: quiet. 10 days left: fires once, however often it is seen again.
        check(vec![(0, vec![cert("a.example", 30 * DAY, 0)])], "", "");
        check(
            vec![
                (0, vec![cert("a.example", 10 * DAY, 0)]),
                (100, vec![cert("a.example", 10 * DAY, 100)]),
            ],
            "a.example@0",
            "",
        );
        // Time passes with no new observation: the remembered expiry comes within range.
        check(
            vec![(0, vec![cert("a.example", 20 * DAY, 0)]), (7 * DAY, vec![])],
            "a.example@604800",
            "",
        );
        // Renewal resolves.
        check(
            vec![
                (0, vec![cert("a.example", 5 * DAY, 0)]),
                (DAY, vec![cert("a.example", 95 * DAY, DAY)]),
            ],
            "a.example@0",
            "a.example@86400",
        );
        // Two hosts fire separately; an already expired certificate fires too.
        check(
            vec![(
                0,
                vec![cert("a.example", 5 * DAY, 0), cert("b.example", -DAY, 0)],
            )],
            "a.example@0 b.example@0",
            "",
        );
    }
}
