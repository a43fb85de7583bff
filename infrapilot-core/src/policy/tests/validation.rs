use serde_json::{Value, json};

use crate::policy::{
    CompileError, Condition, DiagnosticCode, Operator, Policy, PolicySet, Severity, validate,
};

fn doc(condition: Value) -> Value {
    json!({
        "id": "00000000-0000-0000-0000-000000000001",
        "name": "p",
        "condition": condition,
        "action": "block",
    })
}

/// Checks that validating `document` gives exactly these (code, pointer) errors and warnings,
/// and that deserialization agrees on whether it is valid.
fn check(document: Value, expected: &[(Severity, DiagnosticCode, &str)]) {
    let got: Vec<_> = validate(&document)
        .into_iter()
        .map(|d| (d.severity, d.code, d.pointer))
        .collect();
    let want: Vec<_> = expected
        .iter()
        .map(|(s, c, p)| (*s, *c, (*p).to_owned()))
        .collect();
    assert_eq!(got, want, "{document}");
    let valid = !expected.iter().any(|(s, ..)| *s == Severity::Error);
    let parsed = serde_json::from_value::<Policy>(document.clone());
    assert_eq!(parsed.is_ok(), valid, "{document}: {parsed:?}");
}

#[test]
fn documents() {
    use DiagnosticCode::*;
    use Severity::{Error as E, Warning as W};
    let leaf = |f: &str, op: &str, v: Value| json!({"field": f, "operator": op, "value": v});
    check(doc(leaf("a", "equals", json!(1))), &[]);
    check(json!([]), &[(E, NotAnObject, "")]);
    check(
        json!({}),
        &[
            (E, MissingKey, ""),
            (E, MissingKey, ""),
            (E, MissingKey, ""),
            (E, MissingKey, ""),
        ],
    );
    let mut d = doc(json!({"all": []}));
    d["extra"] = json!(1);
    d["priority"] = json!("high");
    d["message"] = json!("{oops}");
    d["applies_to"] = json!({"actions": ["launch"]});
    check(
        d,
        &[
            (E, UnknownKey, "/extra"),
            (E, InvalidValue, "/message"),
            (E, InvalidValue, "/priority"),
            (E, InvalidValue, "/applies_to"),
        ],
    );
    check(
        doc(json!({"any": [
            leaf("a..b", "equals", json!(1)),
            leaf("a", "greater_than", json!("x")),
            leaf("a", "matches", json!("(")),
            leaf("a", "in", json!(1)),
            leaf("a", "exists", json!("yes")),
            leaf("a", "equals", Value::Null),
            leaf("a", "older_than", json!(-1)),
        ]})),
        &[
            (E, InvalidPath, "/condition/any/0/field"),
            (E, InvalidOperand, "/condition/any/1/value"),
            (E, InvalidRegex, "/condition/any/2/value"),
            (E, InvalidOperand, "/condition/any/3/value"),
            (E, InvalidOperand, "/condition/any/4/value"),
            (E, InvalidOperand, "/condition/any/5/value"),
            (E, InvalidOperand, "/condition/any/6/value"),
        ],
    );
    check(
        doc(json!({"all": [
            {"field": "a", "operator": "like", "value": 1, "x": 2},
            {"operator": "equals"},
            {"all": {}},
            {"not": {"any": []}},
            {"any": [], "all": []},
            7,
        ]})),
        &[
            (E, UnknownKey, "/condition/all/0/x"),
            (E, InvalidValue, "/condition/all/0/operator"),
            (E, MissingKey, "/condition/all/1"),
            (E, MissingKey, "/condition/all/1"),
            (E, InvalidValue, "/condition/all/2/all"),
            (E, UnknownKey, "/condition/all/4/any"),
            (E, NotAnObject, "/condition/all/5"),
        ],
    );
    check(
        doc(json!({"not": {"any": []}})),
        &[(W, NeverMatches, "/condition/not")],
    );
}

#[test]
fn depth_is_limited() {
    let mut deep = json!({"all": []});
    for _ in 0..40 {
        deep = json!({"not": deep});
    }
    let diags = validate(&doc(deep.clone()));
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, DiagnosticCode::TooDeep);
    assert!(serde_json::from_value::<Policy>(doc(deep)).is_err());

    let mut built = Condition::always();
    for _ in 0..40 {
        built = Condition::not(built);
    }
    let mut p = serde_json::from_value::<Policy>(doc(json!({"all": []}))).unwrap();
    p.condition = built;
    assert!(matches!(
        PolicySet::compile([p]),
        Err(CompileError::TooDeep { limit: 32, .. })
    ));
}

#[test]
fn compile_reports_problems_of_policies_built_in_rust() {
    let mut p = serde_json::from_value::<Policy>(doc(json!({"all": []}))).unwrap();
    p.condition = Condition::any([Condition::leaf("a", Operator::Matches, "[")]);
    let err = PolicySet::compile([p]).unwrap_err();
    assert!(
        matches!(&err, CompileError::InvalidRegex { pointer, pattern, .. }
            if pointer == "/condition/any/0/value" && pattern == "["),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("regular expression \"[\" is invalid")
    );
}

proptest::proptest! {
    #[test]
    fn validate_agrees_with_deserialization_on_arbitrary_json(raw in arbitrary_json()) {
        for candidate in [raw.clone(), doc(raw)] {
            let errors = validate(&candidate).iter().any(|d| d.severity == Severity::Error);
            let parsed = serde_json::from_value::<Policy>(candidate.clone());
            proptest::prop_assert_eq!(!errors, parsed.is_ok(), "{}", candidate);
        }
    }
}

fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop_oneof![
        Just("all"),
        Just("any"),
        Just("not"),
        Just("field"),
        Just("operator"),
        Just("value"),
        Just("x"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        prop_oneof![
            Just("equals"),
            Just("in"),
            Just("exists"),
            Just("matches"),
            Just("a.b"),
            Just("a..b"),
            Just("("),
            Just("greater_than"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 40, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(key.clone(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
