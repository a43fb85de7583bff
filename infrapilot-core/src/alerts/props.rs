//! Property tests over random rules, observation streams and batch splits.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::test_support::*;
use super::*;

fn kind() -> impl Strategy<Value = RuleKind> {
    prop_oneof![
        any::<bool>()
            .prop_map(|include_clean_exit| RuleKind::ContainerExited { include_clean_exit }),
        (1u32..4, 1u32..60).prop_map(|(restarts, window_secs)| RuleKind::RestartLoop {
            restarts,
            window_secs
        }),
        (1u32..4).prop_map(|samples| RuleKind::CpuAbove {
            percent: 50.0,
            samples
        }),
        (1u32..4).prop_map(|samples| RuleKind::MemoryAbove {
            threshold: MemoryThreshold::Percent(50.0),
            samples
        }),
        (1u32..4).prop_map(|samples| RuleKind::MemoryAbove {
            threshold: MemoryThreshold::Bytes(500),
            samples
        }),
        (1u32..30).prop_map(|within_days| RuleKind::CertificateExpiring { within_days }),
        (0u32..120, 1u32..120, 1u64..20).prop_map(|(half_percent, window_secs, min_requests)| {
            // Halves: JSON round-trips them exactly.
            let percent = f64::from(half_percent) / 2.0;
            RuleKind::Nginx5xxShare {
                percent,
                window_secs,
                min_requests,
            }
        }),
        (1u32..60).prop_map(|after_secs| RuleKind::AgentOffline { after_secs }),
    ]
}

fn test_rule() -> impl Strategy<Value = AlertRule> {
    (kind(), 0u32..50).prop_map(|(kind, cooldown)| {
        let mut s = spec(kind);
        s.cooldown_secs = cooldown;
        rule(s)
    })
}

const CONTAINERS: [&str; 3] = ["web", "db", "cache"];
const HOSTS: [&str; 2] = ["a.example", "b.example"];

fn observation(at: i64) -> impl Strategy<Value = Observation> {
    let agent = prop_oneof![Just(A1), Just(A2)];
    let container = (0usize..3).prop_map(|i| CONTAINERS[i]);
    let host = (0usize..2).prop_map(|i| HOSTS[i]);
    let event_kind = prop_oneof![
        Just(ContainerEventKind::Start),
        (0i64..3).prop_map(|exit_code| ContainerEventKind::Die { exit_code }),
        Just(ContainerEventKind::Oom),
        Just(ContainerEventKind::Restart),
    ];
    prop_oneof![
        (agent.clone(), container.clone(), event_kind)
            .prop_map(move |(a, c, k)| event(a, c, at, k)),
        (container, 0.0f64..100.0, 0u64..1000).prop_map(move |(c, cpu, mem)| sample(
            c,
            at,
            cpu,
            mem,
            Some(1000)
        )),
        (host.clone(), -5i64..40).prop_map(move |(h, days)| cert(h, at + days * 86_400, at)),
        (host, 0u64..40, 0u64..40).prop_map(move |(h, total, errors)| window(
            h,
            at - 10,
            at,
            total,
            errors
        )),
        agent.prop_map(move |a| seen(a, at)),
    ]
}

/// A time-ordered stream of observations, 0 to 8 seconds apart.
fn stream() -> impl Strategy<Value = Vec<Observation>> {
    prop::collection::vec(0i64..8, 0..40).prop_flat_map(|gaps| {
        let times: Vec<i64> = gaps
            .iter()
            .scan(1_000i64, |t, g| {
                *t += g;
                Some(*t)
            })
            .collect();
        times.into_iter().map(observation).collect::<Vec<_>>()
    })
}

/// Cuts `items` into consecutive batches at the given (sorted, deduplicated) points, each
/// evaluated at the time of its last observation (plus `lag`).
fn batches(items: &[Observation], cuts: &[usize], lag: i64) -> Vec<(i64, Vec<Observation>)> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (items.len() + 1)).collect();
    cuts.push(items.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut from = 0;
    let mut now = 0;
    for cut in cuts {
        let batch = items[from..cut].to_vec();
        now = batch.iter().map(Observation::time).fold(now, i64::max) + lag;
        out.push((now, batch));
        from = cut;
    }
    out
}

fn opens(rule: &AlertRule) -> bool {
    !matches!(rule.kind(), RuleKind::ContainerExited { .. })
}

proptest! {
    #[test]
    fn cooldown_is_respected_per_subject(
        r in test_rule(), items in stream(), cuts in prop::collection::vec(any::<usize>(), 0..5), lag in 0i64..30,
    ) {
        let got = steps(&r, batches(&items, &cuts, lag));
        let mut last: BTreeMap<&Subject, i64> = BTreeMap::new();
        let mut firings: Vec<&Firing> = got.firings.iter().collect();
        firings.sort_by_key(|f| f.at);
        for f in firings {
            if let Some(prev) = last.insert(&f.subject, f.at) {
                prop_assert!(f.at - prev >= r.cooldown_secs(), "{} fired at {prev} and {}", f.subject, f.at);
            }
        }
    }

    #[test]
    fn every_resolution_follows_a_firing(
        r in test_rule(), items in stream(), cuts in prop::collection::vec(any::<usize>(), 0..5), lag in 0i64..30,
    ) {
        let mut state = RuleState::new();
        let obs_labels = Observations::default().agent_labels;
        let mut last_fired: BTreeMap<Subject, i64> = BTreeMap::new();
        for (now, items) in batches(&items, &cuts, lag) {
            let before: Vec<Subject> = state.active().cloned().collect();
            let obs = Observations { agent_labels: obs_labels.clone(), items };
            let e = evaluate(&r, &obs, state, now);
            let mut subjects: Vec<&Subject> = e.firings.iter().map(|f| &f.subject).collect();
            subjects.extend(e.resolutions.iter().map(|x| &x.subject));
            subjects.extend(before.iter());
            subjects.sort();
            subjects.dedup();
            for s in subjects {
                let fired = e.firings.iter().filter(|f| &f.subject == s).count();
                let resolved = e.resolutions.iter().filter(|x| &x.subject == s).count();
                let was_open = before.contains(s);
                let is_open = e.state.active().any(|x| x == s);
                if !opens(&r) {
                    prop_assert_eq!(resolved, 0);
                    continue;
                }
                // Firings and resolutions alternate, starting from the open state before.
                let expected_open = match (was_open, resolved as i64 - fired as i64) {
                    (true, 0) | (false, -1) => true,
                    (true, 1) | (false, 0) => false,
                    other => return Err(TestCaseError::fail(format!("{s}: {other:?} ({fired} fired, {resolved} resolved)"))),
                };
                prop_assert_eq!(expected_open, is_open, "{}", s);
            }
            // Each resolution comes no earlier than a firing of its subject (this step's or
            // the last one before).
            for x in &e.resolutions {
                let earlier = last_fired.get(&x.subject).is_some_and(|t| *t <= x.at)
                    || e.firings.iter().any(|f| f.subject == x.subject && f.at <= x.at);
                prop_assert!(earlier, "{} resolved at {} before any firing", x.subject, x.at);
            }
            for f in &e.firings {
                last_fired.insert(f.subject.clone(), f.at);
            }
            state = e.state;
        }
    }

    #[test]
    fn evaluation_is_deterministic(r in test_rule(), items in stream(), now in 1_000i64..2_000) {
        let obs = Observations { agent_labels: BTreeMap::new(), items };
        let a = evaluate(&r, &obs, RuleState::new(), now);
        let b = evaluate(&r, &obs, RuleState::new(), now);
        prop_assert_eq!(&a, &b);
        // Reversing a batch does not change anything either: it is processed in time order
        // (observations at the same time aside, so only distinct times are compared).
        let mut reversed = obs.clone();
        reversed.items.reverse();
        let times: Vec<i64> = obs.items.iter().map(Observation::time).collect();
        let mut distinct = times.clone();
        distinct.dedup();
        if distinct.len() == times.len() {
            prop_assert_eq!(evaluate(&r, &reversed, RuleState::new(), now), a);
        }
    }

    #[test]
    fn consecutive_sample_kinds_do_not_depend_on_batching(
        samples in 1u32..4,
        memory in any::<bool>(),
        cooldown in 0u32..20,
        items in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let kind = if memory {
            RuleKind::MemoryAbove { threshold: MemoryThreshold::Bytes(500), samples }
        } else {
            RuleKind::CpuAbove { percent: 50.0, samples }
        };
        let mut s = spec(kind);
        s.cooldown_secs = cooldown;
        let r = rule(s);
        let whole = steps(&r, batches(&items, &[], 0));
        let split = steps(&r, batches(&items, &cuts, 0));
        prop_assert_eq!(&whole.firings, &split.firings);
        prop_assert_eq!(&whole.resolutions, &split.resolutions);
    }

    #[test]
    fn a_disabled_rule_never_fires(r in test_rule(), items in stream()) {
        let mut s = r.spec().clone();
        s.enabled = false;
        let got = steps(&rule(s), batches(&items, &[], 0));
        prop_assert!(got.firings.is_empty() && got.resolutions.is_empty());
    }

    #[test]
    fn rule_json_never_panics_and_round_trips(json in any::<String>(), r in test_rule()) {
        let _ = serde_json::from_str::<AlertRule>(&json);
        let text = serde_json::to_string(&r).unwrap();
        prop_assert_eq!(serde_json::from_str::<AlertRule>(&text).unwrap(), r);
    }
}

#[test]
fn disabling_resolves_open_alerts() {
    let r = rule(spec(RuleKind::AgentOffline { after_secs: 10 }));
    let first = steps(&r, vec![(0, vec![seen(A1, 0)]), (100, vec![])]);
    assert_eq!(fired(&first), "a1@100");
    let mut off = r.spec().clone();
    off.enabled = false;
    let e = evaluate(&rule(off), &Observations::default(), first.state, 200);
    assert_eq!(resolved(&e), "a1@200");
    assert_eq!(e.state, RuleState::new());
}
