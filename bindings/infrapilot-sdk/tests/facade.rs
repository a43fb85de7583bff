//! The facade's contract: answers carry decisions and diagnostics, errors name what to fix
//! and serialize to the JSON the bindings expose.

// Test code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use infrapilot_sdk::{
    Decision, PolicyEngine, SdkError, compose_resources, evaluate_compose,
    inspect_enrollment_token, list_templates, render_proxy_host, validate_policy,
    validate_proxy_host, verify_audit_export,
};
use serde_json::{Value, json};

fn policy(condition: Value, action: &str) -> Value {
    json!({"id": "00000000-0000-4000-8000-000000000001", "name": "p", "action": action,
           "condition": condition})
}

#[test]
fn evaluation_answers_with_decision_violations_and_diagnostics() {
    let engine = PolicyEngine::from_json(&json!({"policies": [
        {"template": "no_privileged_containers"},
        policy(json!({"field": "host_config.memory", "operator": "greater_than", "value": 1}), "warn"),
    ]}))
    .unwrap();
    let answer = engine
        .evaluate(
            &json!({"host_config": {"privileged": true, "memory": "1g"}}),
            "create",
            &Value::Null,
        )
        .unwrap();
    assert_eq!(answer.decision, Decision::Block);
    assert!(!answer.is_allowed());
    assert_eq!(answer.violations.len(), 1);
    assert_eq!(answer.violations[0].action, "block");
    assert_eq!(answer.diagnostics[0].code, "type_mismatch");
    assert_eq!(answer.diagnostics[0].severity, "warning");
    let as_json = serde_json::to_value(&answer).unwrap();
    assert_eq!(as_json["decision"], "block");
}

#[test]
fn policy_errors_point_into_the_set_as_given() {
    let bad = policy(
        json!({"all": [{"field": "a", "operator": "matches", "value": "("}]}),
        "block",
    );
    let err = PolicyEngine::from_json(&json!({"policies": [{"template": "no_host_network"}, bad]}))
        .unwrap_err();
    let SdkError::InvalidPolicy { diagnostics, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(diagnostics[0].pointer, "/policies/1/condition/all/0/value");
    assert_eq!(err.kind(), "invalid_policy");
    assert_eq!(err.to_json()["diagnostics"][0]["code"], "invalid_regex");

    let err = PolicyEngine::from_json(
        &json!([{"template": "no_root_containers"}, {"template": "no_root_containers"}]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("id"), "{err}");
    let err = PolicyEngine::from_json(
        &json!([{"template": "max_container_age", "days": 3, "action": "nope"}]),
    )
    .unwrap_err();
    assert!(
        matches!(&err, SdkError::InvalidPolicy { diagnostics, .. } if diagnostics[0].pointer == "/0/action"),
        "{err:?}"
    );
    assert!(matches!(
        PolicyEngine::from_json(&json!("x")),
        Err(SdkError::InvalidInput { field, .. }) if field == "policies"
    ));
}

#[test]
fn template_overrides_apply() {
    let engine = PolicyEngine::from_json(&json!([
        {"template": "no_privileged_containers", "action": "warn", "id": "00000000-0000-4000-8000-0000000000ff"}
    ]))
    .unwrap();
    let answer = engine
        .evaluate(
            &json!({"host_config": {"privileged": true}}),
            "create",
            &json!({"now": 0}),
        )
        .unwrap();
    assert_eq!(answer.decision, Decision::Warn);
    assert_eq!(
        answer.violations[0].policy_id,
        "00000000-0000-4000-8000-0000000000ff"
    );
}

#[test]
fn bad_actions_and_contexts_name_the_field() {
    let engine = PolicyEngine::from_json(&json!([])).unwrap();
    let field = |e: SdkError| match e {
        SdkError::InvalidInput { field, .. } => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field(
            engine
                .evaluate(&json!({}), "launch", &Value::Null)
                .unwrap_err()
        ),
        "action"
    );
    assert_eq!(
        field(
            engine
                .evaluate(&json!({}), "create", &json!({"colour": 1}))
                .unwrap_err()
        ),
        "context.colour"
    );
    assert_eq!(
        field(
            engine
                .evaluate(&json!({}), "create", &json!({"now": "soon"}))
                .unwrap_err()
        ),
        "context.now"
    );
}

#[test]
fn validation_and_templates() {
    let v = validate_policy(
        &json!({"id": 1, "name": "x", "action": "block", "condition": {"any": []}}),
    );
    assert!(!v.valid);
    assert!(v.diagnostics.iter().any(|d| d.pointer == "/id"));
    assert!(v.diagnostics.iter().any(|d| d.code == "never_matches"));
    assert!(validate_policy(&json!({"template": "no_latest_tag"})).valid);
    assert!(!validate_policy(&json!({"template": "nope"})).valid);
    let templates = list_templates();
    assert_eq!(templates.len(), 11);
    let docs: Vec<Value> = templates.iter().map(|t| t.policy.clone()).collect();
    assert_eq!(
        PolicyEngine::from_json(&Value::Array(docs)).unwrap().len(),
        11
    );
}

#[test]
fn compose_mapping_and_errors() {
    let yaml = "services:\n  app:\n    image: app:1\n    user: 1000\n    restart: on-failure:3\n    \
                mem_limit: 1.5g\n    cpus: '0.25'\n    labels: {a: 1}\n    volumes:\n      - data:/data\n      \
                - /var/run/docker.sock:/var/run/docker.sock\n    healthcheck: {test: true, interval: 1h2m3s}\n";
    let resources = compose_resources(yaml).unwrap();
    let app = &resources[0].1;
    assert_eq!(app["config"]["user"], "1000");
    assert_eq!(
        app["host_config"]["restart_policy"],
        json!({"name": "on-failure", "maximum_retry_count": 3})
    );
    assert_eq!(app["host_config"]["memory"], 1_610_612_736_i64);
    assert_eq!(app["host_config"]["nano_cpus"], 250_000_000);
    assert_eq!(app["labels"], json!({"a": "1"}));
    assert_eq!(app["mounts"][0]["type"], "volume");
    assert_eq!(app["mounts"][1]["type"], "bind");
    assert_eq!(app["config"]["healthcheck"]["interval"], 3723);

    let answer = evaluate_compose(
        yaml,
        &json!([{"template": "no_docker_socket_mount"}]),
        &Value::Null,
    )
    .unwrap();
    assert_eq!(answer.decision, Decision::Block);
    assert_eq!(
        answer.services[0].evaluation.violations[0].evidence[0].path,
        "mounts.1.source"
    );

    let err = compose_resources("services:\n  a:\n    cpus: many\n").unwrap_err();
    assert!(
        matches!(&err, SdkError::InvalidCompose { field: Some(f), .. } if f == "services.a.cpus"),
        "{err:?}"
    );
    let err = compose_resources("services: [\n").unwrap_err();
    assert!(matches!(
        err,
        SdkError::InvalidCompose { line: Some(_), .. }
    ));
    assert!(compose_resources("services:\n  a: 3\n").is_err());
    assert!(compose_resources("{}").is_err());
}

#[test]
fn nginx_errors_name_the_field() {
    let host = json!({"id": "00000000-0000-0000-0000-000000000001", "domains": ["a.example.com"],
                      "upstream": "http://web:80", "ssl": {"mode": "none"}});
    validate_proxy_host(&host).unwrap();
    let rendered = render_proxy_host(&host, &Value::Null).unwrap();
    assert!(
        rendered.files[0]
            .contents
            .contains("server_name a.example.com;")
    );
    let mut bad = host.clone();
    bad["ssl"] =
        json!({"mode": "custom", "certificate": "nope", "force_https": true, "http2": true});
    match validate_proxy_host(&bad).unwrap_err() {
        SdkError::InvalidInput { field, .. } => assert_eq!(field, "ssl"),
        other => panic!("{other:?}"),
    }
    match render_proxy_host(&host, &json!({"conf_dir": "relative"})).unwrap_err() {
        SdkError::InvalidInput { field, .. } => assert!(field.starts_with("layout"), "{field}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn enrollment_tokens_and_audit_keys() {
    let token = format!(
        "IPT1.{}.0123456789abcdef.{}E",
        "AB".repeat(32),
        "A".repeat(42)
    );
    let info = inspect_enrollment_token(&token).unwrap();
    assert_eq!(info.ca_fingerprint, "ab".repeat(32));
    assert_eq!(info.public_id, "0123456789abcdef");
    let err = inspect_enrollment_token(&format!(
        "IPT1.{}.0123456789abcdef.hunter2",
        "ab".repeat(32)
    ))
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
    assert_eq!(err.kind(), "invalid_enrollment_token");

    let empty =
        json!({"org": "00000000-0000-0000-0000-000000000001", "entries": [], "checkpoints": []});
    assert!(matches!(
        verify_audit_export(&empty, "12"),
        Err(SdkError::InvalidKey { .. })
    ));
    let key = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
    let report = verify_audit_export(&empty, key).unwrap();
    assert!(report.ok);
    assert_eq!(report.entries, 0);
    assert_eq!(report.export_key_matches, None);
    let mut extra = empty.clone();
    extra["surprise"] = json!(1);
    assert!(matches!(
        verify_audit_export(&extra, key),
        Err(SdkError::InvalidInput { .. })
    ));
}
