//! The shared fixtures (`bindings/fixtures/`): the same policies, resources and compose file
//! give the decisions in `expected.json`, here and in the Python and Node suites.
//!
//! `INFRAPILOT_BLESS=1 cargo test -p infrapilot-sdk --test fixtures` rewrites `expected.json`
//! from the engine's answers; review the diff before committing it.

// Test code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use infrapilot_sdk::{Evaluation, PolicyEngine, evaluate_compose};
use serde_json::{Map, Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

fn read_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// What the expected file records for one evaluation: the decision, the names of the
/// policies that fired in order, and the diagnostic codes.
fn summary(e: &Evaluation) -> Value {
    json!({
        "decision": e.decision,
        "violations": e.violations.iter().map(|v| v.policy_name.clone()).collect::<Vec<_>>(),
        "diagnostics": e.diagnostics.iter().map(|d| d.code.clone()).collect::<Vec<_>>(),
    })
}

fn actual() -> Value {
    let engine = PolicyEngine::from_json(&read_json("policies.json")).unwrap();
    let mut cases = Map::new();
    for (name, case) in read_json("cases.json").as_object().unwrap() {
        let answer = engine
            .evaluate(
                &case["resource"],
                case["action"].as_str().unwrap(),
                &case["context"],
            )
            .unwrap();
        cases.insert(name.clone(), summary(&answer));
    }
    let compose = std::fs::read_to_string(fixture("compose.yaml")).unwrap();
    let answer = evaluate_compose(
        &compose,
        &read_json("policies.json"),
        &json!({"now": 1_700_000_000}),
    )
    .unwrap();
    let services: Map<String, Value> = answer
        .services
        .iter()
        .map(|s| (s.service.clone(), summary(&s.evaluation)))
        .collect();
    json!({
        "cases": cases,
        "compose": {"decision": answer.decision, "services": services},
    })
}

#[test]
fn the_fixtures_give_the_expected_decisions() {
    let actual = actual();
    if std::env::var_os("INFRAPILOT_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
        std::fs::write(fixture("expected.json"), text).unwrap();
    }
    let expected = read_json("expected.json");
    for (name, want) in expected["cases"].as_object().unwrap() {
        assert_eq!(&actual["cases"][name], want, "case {name}");
    }
    assert_eq!(actual["compose"], expected["compose"]);
    assert_eq!(actual, expected);
}
