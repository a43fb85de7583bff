//! CPU or memory above a threshold for N consecutive samples.

use std::collections::BTreeMap;

use crate::alerts::evaluate::Out;
use crate::alerts::observation::{ContainerSample, Observation};
use crate::alerts::state::{Memory, SubjectState};
use crate::alerts::subject::Subject;

/// What is measured, with its threshold.
#[derive(Debug, Clone, Copy)]
pub(in crate::alerts) enum Metric {
    Cpu { percent: f64 },
    MemoryPercent { percent: f64 },
    MemoryBytes { bytes: u64 },
}

impl Metric {
    /// The sample's value and the threshold, or `None` when the sample says nothing about
    /// this metric (a NaN CPU value, no memory limit).
    #[allow(clippy::cast_precision_loss)]
    fn measure(self, s: &ContainerSample) -> Option<(f64, f64)> {
        match self {
            Self::Cpu { percent } => s
                .cpu_percent
                .is_finite()
                .then_some((s.cpu_percent, percent)),
            Self::MemoryPercent { percent } => s
                .memory_limit_bytes
                .filter(|limit| *limit > 0)
                .map(|limit| (s.memory_bytes as f64 * 100.0 / limit as f64, percent)),
            Self::MemoryBytes { bytes } => Some((s.memory_bytes as f64, bytes as f64)),
        }
    }

    fn describe(self, value: f64) -> String {
        match self {
            Self::Cpu { percent } => format!("CPU at {value:.1}% (above {percent}%)"),
            Self::MemoryPercent { percent } => {
                format!("memory at {value:.1}% of its limit (above {percent}%)")
            }
            Self::MemoryBytes { bytes } => format!("memory at {value} bytes (above {bytes})"),
        }
    }
}

pub(in crate::alerts) fn run(
    out: &mut Out<'_>,
    map: &mut BTreeMap<Subject, SubjectState>,
    items: &[&Observation],
    metric: Metric,
    samples: u32,
) {
    for item in items {
        let Observation::ContainerSample(sample) = item else {
            continue;
        };
        let Some((value, threshold)) = metric.measure(sample) else {
            continue;
        };
        if !out.container_in_scope(&sample.agent, &sample.container) {
            continue;
        }
        let subject = Subject::Container {
            agent: sample.agent,
            container: sample.container.clone(),
        };
        let st = map.entry(subject.clone()).or_default();
        let (above, last_sample_at) = match st.memory {
            Memory::Consecutive {
                above,
                last_sample_at,
            } => (above, last_sample_at),
            _ => (0, i64::MIN),
        };
        if sample.at < last_sample_at {
            // A late sample: the run it belongs to has already been judged.
            continue;
        }
        let above = if value > threshold {
            above.saturating_add(1)
        } else {
            0
        };
        st.memory = Memory::Consecutive {
            above,
            last_sample_at: sample.at,
        };
        out.condition(
            &subject,
            st,
            above >= samples,
            sample.at,
            Some(value),
            || {
                format!(
                    "{subject}: {} for {above} consecutive samples",
                    metric.describe(value)
                )
            },
            || format!("{subject}: back under the threshold ({value:.1})"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::alerts::test_support::*;
    use crate::alerts::{MemoryThreshold, RuleKind};

    fn check(
        kind: RuleKind,
        cooldown: u32,
        samples: &[(i64, f64, u64)],
        want_fired: &str,
        want_resolved: &str,
    ) {
        let mut s = spec(kind);
        s.cooldown_secs = cooldown;
        let obs = samples
            .iter()
            .map(|&(at, cpu, mem)| sample("web", at, cpu, mem, Some(1_000)))
            .collect();
        let got = steps(&rule(s), vec![(1_000, obs)]);
        assert_eq!(fired(&got), want_fired, "{samples:?}");
        assert_eq!(resolved(&got), want_resolved, "{samples:?}");
    }

    const CPU: RuleKind = RuleKind::CpuAbove {
        percent: 90.0,
        samples: 3,
    };

    #[test]
    fn cpu() {
        check(
            CPU,
            0,
            &[(1, 95.0, 0), (2, 95.0, 0), (3, 95.0, 0), (4, 99.0, 0)],
            "web@3",
            "",
        );
        check(
            CPU,
            0,
            &[(1, 95.0, 0), (2, 95.0, 0), (3, 50.0, 0), (4, 95.0, 0)],
            "",
            "",
        );
        check(
            CPU,
            0,
            &[(1, 95.0, 0), (2, 95.0, 0), (3, 95.0, 0), (4, 90.0, 0)],
            "web@3",
            "web@4",
        );
        // Exactly at the threshold is not above it; NaN samples are skipped.
        check(
            CPU,
            0,
            &[
                (1, 90.0, 0),
                (2, 95.0, 0),
                (3, f64::NAN, 0),
                (4, 95.0, 0),
                (5, 95.0, 0),
            ],
            "web@5",
            "",
        );
        // Fires again after resolving, unless within the cooldown; then it fires once the
        // cooldown is over if the condition still holds.
        let flap = [
            (1, 95.0, 0),
            (2, 95.0, 0),
            (3, 95.0, 0),
            (4, 10.0, 0),
            (5, 95.0, 0),
            (6, 95.0, 0),
            (7, 95.0, 0),
            (8, 95.0, 0),
            (20, 95.0, 0),
        ];
        check(CPU, 0, &flap, "web@3 web@7", "web@4");
        check(CPU, 10, &flap, "web@3 web@20", "web@4");
    }

    #[test]
    fn memory() {
        let pct = RuleKind::MemoryAbove {
            threshold: MemoryThreshold::Percent(80.0),
            samples: 2,
        };
        check(
            pct.clone(),
            0,
            &[(1, 0.0, 900), (2, 0.0, 850), (3, 0.0, 100)],
            "web@2",
            "web@3",
        );
        let bytes = RuleKind::MemoryAbove {
            threshold: MemoryThreshold::Bytes(500),
            samples: 1,
        };
        check(bytes, 0, &[(1, 0.0, 400), (2, 0.0, 501)], "web@2", "");
        // Samples without a limit say nothing about a percent rule.
        let r = rule(spec(pct));
        let got = steps(
            &r,
            vec![(
                10,
                vec![
                    sample("web", 1, 0.0, 999, None),
                    sample("web", 2, 0.0, 999, Some(0)),
                ],
            )],
        );
        assert_eq!(fired(&got), "");
    }

    #[test]
    fn subjects_and_scope() {
        let mut s = spec(RuleKind::CpuAbove {
            percent: 50.0,
            samples: 1,
        });
        s.scope.containers = vec![name("web"), name("db")];
        let got = steps(
            &rule(s.clone()),
            vec![(
                10,
                vec![
                    sample("web", 1, 60.0, 0, None),
                    sample("db", 1, 60.0, 0, None),
                    sample("cache", 1, 60.0, 0, None),
                ],
            )],
        );
        assert_eq!(fired(&got), "web@1 db@1");
        s.scope.agent_selector = crate::values::Labels::parse_pairs(["env=dev"]).unwrap();
        let got = steps(&rule(s), vec![(10, vec![sample("web", 1, 60.0, 0, None)])]);
        assert_eq!(fired(&got), "", "agent A1 is env=prod");
    }
}
