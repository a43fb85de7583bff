use serde_json::{Value, json};

use super::{id, policy};
use crate::policy::{
    ActionKind, CompileError, Decision, EvalContext, PolicySet, Template, validate,
};
use crate::values::Labels;

const NOW: i64 = 1_700_000_000;

/// A container every container rule accepts.
fn compliant() -> Value {
    json!({
        "name": "web",
        "image": "registry.example.com:5000/team/nginx:1.25",
        "created": NOW - 86_400,
        "config": {"user": "101:101", "healthcheck": {"test": ["CMD", "true"]}},
        "host_config": {
            "privileged": false,
            "network_mode": "bridge",
            "restart_policy": {"name": "unless-stopped"},
            "memory": 536_870_912,
            "nano_cpus": 1_000_000_000,
        },
        "mounts": [{"type": "bind", "source": "/srv/web", "destination": "/html"}],
        "labels": {"com.docker.compose.project": "web"},
    })
}

/// `doc` with the value at `pointer` replaced (`null`: removed; on an array: appended).
fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = doc.pointer_mut(parent).unwrap();
    match value {
        Value::Null => {
            target.as_object_mut().unwrap().remove(key);
        }
        v if target.is_array() => target.as_array_mut().unwrap().push(v),
        v => target[key] = v,
    }
    doc
}

fn proxy(cert: Value, force: Value) -> Value {
    json!({"domains": ["app.example.com"], "ssl": {"certificate_id": cert, "force": force}})
}

/// Checks that `template` alone gives `expected` for `resource` and `action` on an agent with
/// `labels`.
fn check(
    template: &Template,
    resource: &Value,
    action: ActionKind,
    labels: &[&str],
    expected: Decision,
) {
    let set = PolicySet::compile([template.policy(id(7))]).unwrap();
    let ctx = EvalContext::for_agent(Labels::parse_pairs(labels.iter().copied()).unwrap(), NOW);
    let response = set.evaluate(resource, action, &ctx);
    assert_eq!(
        response.decision(),
        expected,
        "{template:?} on {resource}: {response:?}"
    );
    assert!(
        response.diagnostics().is_empty(),
        "{template:?}: {:?}",
        response.diagnostics()
    );
    if expected != Decision::Allow {
        assert!(
            !response.violations()[0].message.contains('{'),
            "{response:?}"
        );
    }
}

#[test]
fn container_rules_accept_a_compliant_container() {
    for t in Template::CONTAINER_RULES {
        check(&t, &compliant(), ActionKind::Create, &[], Decision::Allow);
    }
    check(
        &Template::MaxContainerAge { days: 2 },
        &compliant(),
        ActionKind::Start,
        &[],
        Decision::Allow,
    );
}

#[test]
fn each_template_catches_its_violation() {
    use Decision::{Block, Warn};
    use Template::*;
    let c = compliant;
    let create = ActionKind::Create;
    let cases: Vec<(Template, Value, Decision)> = vec![
        (
            NoRootContainers,
            with(c(), "/config/user", json!("root")),
            Block,
        ),
        (
            NoRootContainers,
            with(c(), "/config/user", json!("0:0")),
            Block,
        ),
        (
            NoRootContainers,
            with(c(), "/config/user", json!("")),
            Block,
        ),
        (
            NoRootContainers,
            with(c(), "/config/user", Value::Null),
            Block,
        ),
        (
            NoPrivilegedContainers,
            with(c(), "/host_config/privileged", json!(true)),
            Block,
        ),
        (
            RequireRestartPolicy,
            with(c(), "/host_config/restart_policy/name", json!("no")),
            Warn,
        ),
        (
            RequireRestartPolicy,
            with(c(), "/host_config/restart_policy", Value::Null),
            Warn,
        ),
        (
            RequireHealthcheck,
            with(c(), "/config/healthcheck", Value::Null),
            Warn,
        ),
        (
            RequireHealthcheck,
            with(c(), "/config/healthcheck/test", json!(["NONE"])),
            Warn,
        ),
        (
            RequireResourceLimits,
            with(c(), "/host_config/memory", json!(0)),
            Warn,
        ),
        (
            RequireResourceLimits,
            with(c(), "/host_config/nano_cpus", Value::Null),
            Warn,
        ),
        (NoLatestTag, with(c(), "/image", json!("nginx")), Warn),
        (
            NoLatestTag,
            with(c(), "/image", json!("nginx:latest")),
            Warn,
        ),
        (
            NoLatestTag,
            with(c(), "/image", json!("registry:5000/nginx")),
            Warn,
        ),
        (
            NoDockerSocketMount,
            with(c(), "/mounts/1", json!({"source": "/var/run/docker.sock"})),
            Block,
        ),
        (
            NoHostNetwork,
            with(c(), "/host_config/network_mode", json!("host")),
            Block,
        ),
    ];
    for (template, resource, decision) in &cases {
        check(template, resource, create, &[], *decision);
    }
}

#[test]
fn image_references_that_are_pinned() {
    for image in [
        "nginx:1.25",
        "nginx@sha256:abcd",
        "host:5000/a/b:2",
        "a/b:latest-2",
    ] {
        let r = with(compliant(), "/image", json!(image));
        check(
            &Template::NoLatestTag,
            &r,
            ActionKind::Create,
            &[],
            Decision::Allow,
        );
    }
}

#[test]
fn require_ssl() {
    let t = Template::RequireSsl;
    let cert = json!("6f9619ff-8b86-d011-b42d-00c04fc964ff");
    let p = ActionKind::CreateProxy;
    check(
        &t,
        &proxy(cert.clone(), json!(true)),
        p,
        &[],
        Decision::Allow,
    );
    check(
        &t,
        &proxy(Value::Null, json!(true)),
        p,
        &[],
        Decision::Block,
    );
    check(
        &t,
        &proxy(cert.clone(), json!(false)),
        ActionKind::UpdateProxy,
        &[],
        Decision::Block,
    );
    check(
        &t,
        &json!({"domains": ["a.example"]}),
        p,
        &[],
        Decision::Block,
    );
    // Container actions are not proxy actions.
    check(
        &t,
        &proxy(Value::Null, json!(false)),
        ActionKind::Create,
        &[],
        Decision::Allow,
    );
}

#[test]
fn no_exec_production() {
    let t = Template::NoExecProduction {
        environments: vec!["production".into()],
    };
    let r = compliant();
    check(
        &t,
        &r,
        ActionKind::Exec,
        &["env=production"],
        Decision::Block,
    );
    check(&t, &r, ActionKind::Exec, &["env=staging"], Decision::Allow);
    check(&t, &r, ActionKind::Exec, &[], Decision::Allow);
    check(
        &t,
        &r,
        ActionKind::Restart,
        &["env=production"],
        Decision::Allow,
    );
}

#[test]
fn max_container_age() {
    let t = Template::MaxContainerAge { days: 30 };
    let old = with(compliant(), "/created", json!(NOW - 31 * 86_400));
    check(&t, &old, ActionKind::Restart, &[], Decision::Warn);
    check(&t, &old, ActionKind::Stop, &[], Decision::Allow);
    let young = with(compliant(), "/created", json!(NOW - 29 * 86_400));
    check(&t, &young, ActionKind::Restart, &[], Decision::Allow);
}

#[test]
fn templates_round_trip_and_validate() {
    let schema = serde_json::to_value(crate::policy::policy_document_schema()).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    for (n, t) in Template::catalog().iter().enumerate() {
        let p = t.policy(id(n as u128));
        let doc = serde_json::to_value(&p).unwrap();
        assert_eq!(validate(&doc), [], "{}", t.name());
        assert_eq!(
            serde_json::from_value::<crate::policy::Policy>(doc.clone()).unwrap(),
            p
        );
        for key in doc.as_object().unwrap().keys() {
            assert!(
                properties.contains_key(key),
                "{key} missing from the schema"
            );
        }
        let tj = serde_json::to_value(t).unwrap();
        assert_eq!(tj["template"], t.name());
        assert_eq!(&serde_json::from_value::<Template>(tj).unwrap(), t);
    }
    let required = schema["required"].as_array().unwrap();
    assert_eq!(required.len(), 4, "{required:?}");
}

#[test]
fn decisions_combine_block_over_warn_and_audit_allows() {
    let always = json!({"all": []});
    let never = json!({"any": []});
    let cases = [
        (vec![], Decision::Allow, 0),
        (vec![(&always, "audit")], Decision::Allow, 1),
        (
            vec![(&always, "audit"), (&always, "warn")],
            Decision::Warn,
            2,
        ),
        (
            vec![(&always, "warn"), (&always, "block"), (&always, "audit")],
            Decision::Block,
            3,
        ),
        (
            vec![(&never, "block"), (&always, "warn")],
            Decision::Warn,
            1,
        ),
    ];
    for (policies, decision, count) in cases {
        let set = PolicySet::compile(
            policies
                .iter()
                .enumerate()
                .map(|(i, (c, a))| policy(i as u128, (*c).clone(), a)),
        )
        .unwrap();
        let r = set.evaluate(&json!({}), ActionKind::Create, &EvalContext::default());
        assert_eq!(
            (r.decision(), r.violations().len()),
            (decision, count),
            "{policies:?}"
        );
    }
}

#[test]
fn order_disabled_and_duplicates() {
    let mut low = policy(1, json!({"all": []}), "warn");
    low.priority = -5;
    let mut high = policy(2, json!({"all": []}), "warn");
    high.priority = 10;
    let mut off = policy(3, json!({"all": []}), "block");
    off.enabled = false;
    let same = policy(4, json!({"all": []}), "audit");
    let set = PolicySet::compile([low.clone(), same, off.clone(), high]).unwrap();
    assert_eq!(set.len(), 4);
    let r = set.evaluate(&json!({}), ActionKind::Exec, &EvalContext::default());
    let ids: Vec<_> = r.violations().iter().map(|v| v.policy_id).collect();
    assert_eq!(ids, [id(2), id(4), id(1)]);
    assert_eq!(r.decision(), Decision::Warn);
    assert_eq!(
        PolicySet::compile([low.clone(), low]).unwrap_err(),
        CompileError::DuplicateId { policy: id(1) }
    );
    assert!(PolicySet::empty().is_empty());
}

#[test]
fn applies_to_labels_and_environments() {
    let mut p = policy(1, json!({"all": []}), "block");
    p.applies_to.labels = Labels::parse_pairs(["team=web"]).unwrap();
    p.applies_to.environments = vec!["prod".into(), "staging".into()];
    let set = PolicySet::compile([p]).unwrap();
    let decide = |labels: &[&str]| {
        let ctx = EvalContext::for_agent(Labels::parse_pairs(labels.iter().copied()).unwrap(), 0);
        set.evaluate(&json!({}), ActionKind::Create, &ctx)
            .decision()
    };
    assert_eq!(decide(&["team=web", "env=prod"]), Decision::Block);
    assert_eq!(decide(&["team=web", "env=staging", "x=y"]), Decision::Block);
    assert_eq!(decide(&["team=web", "env=dev"]), Decision::Allow);
    assert_eq!(decide(&["team=web"]), Decision::Allow);
    assert_eq!(decide(&["team=db", "env=prod"]), Decision::Allow);
}
