use serde_json::{Value, json};

use super::run;
use crate::policy::{Decision, DiagnosticCode};

fn resource() -> Value {
    json!({
        "image": "nginx:latest",
        "created": 100,
        "config": {"user": "root", "env": ["A=1", "B=2"], "healthcheck": null},
        "host_config": {"privileged": false, "memory": 512, "nano_cpus": 0.5, "network_mode": "bridge"},
        "mounts": [{"source": "/data"}, {"source": "/var/run/docker.sock"}, {"target": "/x"}],
        "labels": {"env": "prod", "com.example.team": "web"},
        "ports": [80, 443],
    })
}

/// Checks that `condition` fires (or not) on [`resource`], and whether a type-mismatch
/// diagnostic is reported.
fn check(condition: Value, fires: bool, mismatch: bool) {
    let response = run(condition.clone(), &resource());
    let fired = response.decision() == Decision::Block;
    assert_eq!(fired, fires, "{condition}: {response:?}");
    assert_eq!(
        response.violations().len(),
        usize::from(fires),
        "{condition}"
    );
    let has_mismatch = response
        .diagnostics()
        .iter()
        .any(|d| d.code == DiagnosticCode::TypeMismatch);
    assert_eq!(
        has_mismatch,
        mismatch,
        "{condition}: {:?}",
        response.diagnostics()
    );
}

fn leaf(field: &str, op: &str, value: Value) -> Value {
    json!({"field": field, "operator": op, "value": value})
}

#[test]
fn equals_and_not_equals() {
    check(leaf("config.user", "equals", json!("root")), true, false);
    check(leaf("config.user", "equals", json!("app")), false, false);
    check(
        leaf("host_config.privileged", "equals", json!(false)),
        true,
        false,
    );
    check(
        leaf("host_config.memory", "equals", json!(512.0)),
        true,
        false,
    );
    check(leaf("ports", "equals", json!([80, 443])), true, false);
    check(leaf("config.user", "equals", json!(1)), false, false);
    check(
        leaf("config.missing", "equals", json!("root")),
        false,
        false,
    );
    check(leaf("config.user", "not_equals", json!("app")), true, false);
    check(
        leaf("config.user", "not_equals", json!("root")),
        false,
        false,
    );
    // Absent is not "not equal": a comparison needs a value.
    check(
        leaf("config.missing", "not_equals", json!("root")),
        false,
        false,
    );
    check(
        leaf("config.healthcheck", "not_equals", json!("x")),
        false,
        false,
    );
}

#[test]
fn contains() {
    check(leaf("image", "contains", json!("latest")), true, false);
    check(leaf("image", "contains", json!("alpine")), false, false);
    check(leaf("config.env", "contains", json!("A=1")), true, false);
    check(leaf("config.env", "contains", json!("A=")), false, false);
    check(leaf("ports", "contains", json!(443)), true, false);
    check(
        leaf("host_config.memory", "contains", json!("5")),
        false,
        true,
    );
    check(leaf("image", "contains", json!(5)), false, true);
}

#[test]
fn greater_and_less_than() {
    check(
        leaf("host_config.memory", "greater_than", json!(100)),
        true,
        false,
    );
    check(
        leaf("host_config.memory", "greater_than", json!(512)),
        false,
        false,
    );
    check(
        leaf("host_config.nano_cpus", "less_than", json!(1)),
        true,
        false,
    );
    check(
        leaf("host_config.memory", "less_than", json!(1)),
        false,
        false,
    );
    check(leaf("image", "greater_than", json!(1)), false, true);
    check(
        leaf("host_config.privileged", "less_than", json!(1)),
        false,
        true,
    );
    check(leaf("config.missing", "less_than", json!(1)), false, false);
}

#[test]
fn in_and_not_in() {
    check(leaf("config.user", "in", json!(["root", "0"])), true, false);
    check(leaf("config.user", "in", json!(["app"])), false, false);
    check(leaf("config.user", "in", json!([])), false, false);
    check(
        leaf("host_config.memory", "in", json!([1, 512])),
        true,
        false,
    );
    check(leaf("config.user", "not_in", json!(["app"])), true, false);
    check(leaf("config.user", "not_in", json!(["root"])), false, false);
    check(
        leaf("config.missing", "not_in", json!(["root"])),
        false,
        false,
    );
}

#[test]
fn exists() {
    check(leaf("config.user", "exists", json!(true)), true, false);
    check(leaf("config.user", "exists", json!(false)), false, false);
    check(leaf("config.missing", "exists", json!(false)), true, false);
    // null counts as absent.
    check(
        leaf("config.healthcheck", "exists", json!(false)),
        true,
        false,
    );
    check(leaf("mounts.*.target", "exists", json!(true)), true, false);
    check(
        leaf("mounts.*.nothing", "exists", json!(false)),
        true,
        false,
    );
    check(leaf("image.tag", "exists", json!(true)), false, false);
}

#[test]
fn matches() {
    check(leaf("image", "matches", json!(":latest$")), true, false);
    check(leaf("image", "matches", json!("^alpine")), false, false);
    check(
        leaf("labels.env", "matches", json!("^(prod|production)$")),
        true,
        false,
    );
    check(
        leaf("host_config.memory", "matches", json!("5")),
        false,
        true,
    );
}

#[test]
fn older_than() {
    // now = 1000, created = 100: 900 seconds old.
    check(leaf("created", "older_than", json!(899)), true, false);
    check(leaf("created", "older_than", json!(900)), false, false);
    check(leaf("image", "older_than", json!(1)), false, true);
}

#[test]
fn paths() {
    check(
        leaf("mounts.1.source", "equals", json!("/var/run/docker.sock")),
        true,
        false,
    );
    check(
        leaf("mounts.0.source", "equals", json!("/var/run/docker.sock")),
        false,
        false,
    );
    check(
        leaf("mounts.*.source", "equals", json!("/var/run/docker.sock")),
        true,
        false,
    );
    check(
        leaf(r"labels.com\.example\.team", "equals", json!("web")),
        true,
        false,
    );
    check(leaf("labels.*", "equals", json!("web")), true, false);
    check(leaf("ports.*", "greater_than", json!(400)), true, false);
    check(
        json!({"not": leaf("mounts.*.source", "equals", json!("/data"))}),
        false,
        false,
    );
}

#[test]
fn combinators() {
    let t = leaf("config.user", "equals", json!("root"));
    let f = leaf("config.user", "equals", json!("app"));
    check(json!({"all": []}), true, false);
    check(json!({"any": []}), false, false);
    check(json!({"all": [t, t]}), true, false);
    check(json!({"all": [t, f]}), false, false);
    check(json!({"any": [f, t]}), true, false);
    check(json!({"any": [f, f]}), false, false);
    check(json!({"not": f}), true, false);
    check(json!({"not": {"not": t}}), true, false);
    // A mismatch inside a `not` makes the leaf false, so the `not` fires, with a diagnostic.
    check(
        json!({"not": leaf("image", "greater_than", json!(1))}),
        true,
        true,
    );
}

#[test]
fn a_mismatch_diagnostic_names_the_leaf_and_the_types() {
    let response = run(leaf("image", "greater_than", json!(1)), &resource());
    let d = &response.diagnostics()[0];
    assert_eq!(d.pointer, "/condition");
    assert_eq!(d.policy, Some(super::id(1)));
    assert!(d.message.contains("image is a string"), "{}", d.message);
    assert!(
        d.message.contains("greater_than needs a number"),
        "{}",
        d.message
    );
}

#[test]
fn evidence_points_at_the_concrete_element() {
    let response = run(
        leaf("mounts.*.source", "matches", json!("docker")),
        &resource(),
    );
    let v = &response.violations()[0];
    assert_eq!(v.evidence.len(), 1);
    assert_eq!(v.evidence[0].path, "mounts.1.source");
    assert_eq!(v.evidence[0].actual, Some(json!("/var/run/docker.sock")));
    assert_eq!(v.message, "p1 (mounts.1.source = /var/run/docker.sock)");

    let response = run(
        json!({"all": [
            leaf("config.user", "equals", json!("root")),
            {"not": leaf("config.missing", "exists", json!(true))},
        ]}),
        &resource(),
    );
    let paths: Vec<_> = response.violations()[0]
        .evidence
        .iter()
        .map(|e| (e.path.as_str(), e.actual.clone()))
        .collect();
    assert_eq!(
        paths,
        [
            ("config.user", Some(json!("root"))),
            ("config.missing", None)
        ]
    );
}
