//! Builders shared by the alert tests.

use uuid::Uuid;

use super::*;
use crate::ids::{AgentId, AlertRuleId};
use crate::values::{ContainerName, Domain, Labels};

pub(crate) const A1: AgentId = AgentId::from_uuid(Uuid::from_u128(1));
pub(crate) const A2: AgentId = AgentId::from_uuid(Uuid::from_u128(2));

pub(crate) fn spec(kind: RuleKind) -> AlertRuleSpec {
    AlertRuleSpec {
        id: AlertRuleId::from_uuid(Uuid::from_u128(7)),
        name: "test rule".to_owned(),
        kind,
        scope: Scope::default(),
        severity: Severity::Warning,
        cooldown_secs: 0,
        enabled: true,
        notify_on_resolve: true,
    }
}

pub(crate) fn rule(spec: AlertRuleSpec) -> AlertRule {
    AlertRule::new(spec).unwrap()
}

pub(crate) fn name(s: &str) -> ContainerName {
    ContainerName::parse(s).unwrap()
}

pub(crate) fn event(agent: AgentId, c: &str, at: i64, kind: ContainerEventKind) -> Observation {
    Observation::ContainerEvent(ContainerEvent {
        agent,
        container: name(c),
        container_id: format!("id-{c}"),
        kind,
        at,
    })
}

pub(crate) fn die(agent: AgentId, c: &str, at: i64, exit_code: i64) -> Observation {
    event(agent, c, at, ContainerEventKind::Die { exit_code })
}

pub(crate) fn sample(c: &str, at: i64, cpu: f64, mem: u64, limit: Option<u64>) -> Observation {
    Observation::ContainerSample(ContainerSample {
        agent: A1,
        container: name(c),
        cpu_percent: cpu,
        memory_bytes: mem,
        memory_limit_bytes: limit,
        at,
    })
}

pub(crate) fn cert(host: &str, not_after: i64, at: i64) -> Observation {
    let host = Domain::parse(host).unwrap();
    Observation::Certificate(CertificateObservation {
        agent: A1,
        domains: vec![host.clone()],
        host,
        not_after,
        at,
    })
}

pub(crate) fn window(host: &str, start: i64, end: i64, total: u64, errors: u64) -> Observation {
    Observation::NginxWindow(NginxWindow {
        agent: A1,
        host: Domain::parse(host).unwrap(),
        total,
        errors_5xx: errors,
        start,
        end,
    })
}

pub(crate) fn seen(agent: AgentId, at: i64) -> Observation {
    Observation::AgentSeen(AgentSeen { agent, at })
}

/// Runs one evaluation per `(now, batch)` step, threading the state, and gathers the output.
pub(crate) fn steps(rule: &AlertRule, steps: Vec<(i64, Vec<Observation>)>) -> Evaluation {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(A1, Labels::parse_pairs(["env=prod"]).unwrap());
    labels.insert(A2, Labels::parse_pairs(["env=dev"]).unwrap());
    let mut all = Evaluation {
        state: RuleState::new(),
        firings: vec![],
        resolutions: vec![],
    };
    for (now, items) in steps {
        let obs = Observations {
            agent_labels: labels.clone(),
            items,
        };
        let next = evaluate(rule, &obs, all.state, now);
        // Round-trip the state through JSON, as the server persists it.
        let json = serde_json::to_string(&next.state).unwrap();
        all.state = serde_json::from_str(&json).unwrap();
        assert_eq!(all.state, next.state);
        all.firings.extend(next.firings);
        all.resolutions.extend(next.resolutions);
    }
    all
}

fn short(subject: &Subject) -> String {
    match subject {
        Subject::Agent { agent } if *agent == A1 => "a1".to_owned(),
        Subject::Agent { .. } => "a2".to_owned(),
        Subject::Container { container, .. } => container.to_string(),
        Subject::Host { host, .. } => host.to_string(),
    }
}

/// The firings as `subject@time` words.
pub(crate) fn fired(e: &Evaluation) -> String {
    let words: Vec<_> = e
        .firings
        .iter()
        .map(|f| format!("{}@{}", short(&f.subject), f.at))
        .collect();
    words.join(" ")
}

/// The resolutions as `subject@time` words.
pub(crate) fn resolved(e: &Evaluation) -> String {
    let words: Vec<_> = e
        .resolutions
        .iter()
        .map(|r| format!("{}@{}", short(&r.subject), r.at))
        .collect();
    words.join(" ")
}
