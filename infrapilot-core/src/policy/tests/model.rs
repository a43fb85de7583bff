//! The compiled engine against a naive model.
//!
//! The model walks the uncompiled JSON condition directly, resolving each path with
//! `serde_json::Value` lookups every time, and is written from the documented semantics
//! alone: it shares no code with the engine.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::policy;
use crate::policy::{ActionKind, Decision, EvalContext, PolicySet};

/// Every value a path resolves to, `null` counting as absent.
fn resolve<'v>(v: &'v Value, segments: &[&str], out: &mut Vec<&'v Value>) {
    let Some((first, rest)) = segments.split_first() else {
        if !v.is_null() {
            out.push(v);
        }
        return;
    };
    if *first == "*" {
        match v {
            Value::Array(items) => items.iter().for_each(|i| resolve(i, rest, out)),
            Value::Object(map) => map.values().for_each(|i| resolve(i, rest, out)),
            _ => {}
        }
        return;
    }
    let next = match v {
        Value::Object(map) => map.get(*first),
        Value::Array(items) => first.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    };
    if let Some(next) = next {
        resolve(next, rest, out);
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn model(condition: &Value, resource: &Value, now: i64) -> bool {
    if let Some(children) = condition.get("all") {
        return children
            .as_array()
            .unwrap()
            .iter()
            .all(|c| model(c, resource, now));
    }
    if let Some(children) = condition.get("any") {
        return children
            .as_array()
            .unwrap()
            .iter()
            .any(|c| model(c, resource, now));
    }
    if let Some(child) = condition.get("not") {
        return !model(child, resource, now);
    }
    let field = condition["field"].as_str().unwrap();
    let operand = &condition["value"];
    let segments: Vec<&str> = field.split('.').collect();
    let mut values = Vec::new();
    resolve(resource, &segments, &mut values);
    let op = condition["operator"].as_str().unwrap();
    if op == "exists" {
        return values.is_empty() != operand.as_bool().unwrap();
    }
    values.into_iter().any(|actual| match op {
        "equals" => same(actual, operand),
        "not_equals" => !same(actual, operand),
        "contains" => match (actual, operand) {
            (Value::String(s), Value::String(n)) => s.contains(n.as_str()),
            (Value::Array(items), o) => items.iter().any(|i| same(i, o)),
            _ => false,
        },
        "greater_than" => actual
            .as_f64()
            .is_some_and(|a| a > operand.as_f64().unwrap()),
        "less_than" => actual
            .as_f64()
            .is_some_and(|a| a < operand.as_f64().unwrap()),
        "in" => operand.as_array().unwrap().iter().any(|o| same(actual, o)),
        "not_in" => !operand.as_array().unwrap().iter().any(|o| same(actual, o)),
        "matches" => actual.as_str().is_some_and(|s| {
            regex::Regex::new(operand.as_str().unwrap())
                .unwrap()
                .is_match(s)
        }),
        "older_than" => actual
            .as_f64()
            .is_some_and(|c| now as f64 - c > operand.as_f64().unwrap()),
        other => panic!("unknown operator {other}"),
    })
}

const PATHS: [&str; 12] = [
    "a", "b", "a.b", "a.c", "a.*", "a.0", "a.*.b", "a.1.b", "b.*", "c", "c.0", "a.b.c",
];
const PATTERNS: [&str; 5] = ["^x", "y$", "^(root|0)$", ".", "^$"];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-1i64..3).prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!(1.0)),
        prop_oneof![Just("x"), Just("y"), Just("xy"), Just("root"), Just("")].prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ]
}

fn resource() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![4 => scalar(), 1 => Just(Value::Null)];
    let tree = leaf.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![Just("a"), Just("b"), Just("c"), Just("0")].prop_map(str::to_owned),
                inner,
                0..3,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    });
    proptest::collection::btree_map(
        prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(str::to_owned),
        tree,
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn leaf() -> impl Strategy<Value = Value> {
    let field = proptest::sample::select(&PATHS[..]);
    let numbers = (-1i64..3).prop_map(Value::from);
    let operand = prop_oneof![
        scalar().prop_map(|v| ("equals", v)),
        scalar().prop_map(|v| ("not_equals", v)),
        prop_oneof![
            scalar(),
            proptest::collection::vec(scalar(), 0..2).prop_map(Value::from)
        ]
        .prop_map(|v| ("contains", v)),
        numbers.clone().prop_map(|v| ("greater_than", v)),
        numbers.prop_map(|v| ("less_than", v)),
        proptest::collection::vec(scalar(), 0..3).prop_map(|v| ("in", Value::from(v))),
        proptest::collection::vec(scalar(), 0..3).prop_map(|v| ("not_in", Value::from(v))),
        any::<bool>().prop_map(|v| ("exists", Value::from(v))),
        proptest::sample::select(&PATTERNS[..]).prop_map(|p| ("matches", Value::from(p))),
        (0i64..6).prop_map(|v| ("older_than", Value::from(v))),
    ];
    (field, operand).prop_map(|(f, (op, v))| json!({"field": f, "operator": op, "value": v}))
}

fn condition() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|c| json!({"all": c})),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|c| json!({"any": c})),
            inner.prop_map(|c| json!({"not": c})),
        ]
    })
}

fn action() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("block"), Just("warn"), Just("audit")]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn compiled_engine_agrees_with_the_model(
        policies in proptest::collection::vec((condition(), action()), 1..4),
        resource in resource(),
        now in 0i64..10,
    ) {
        let set = PolicySet::compile(
            policies.iter().enumerate().map(|(i, (c, a))| policy(i as u128, c.clone(), a)),
        )
        .unwrap();
        let ctx = EvalContext { now, ..EvalContext::default() };
        let response = set.evaluate(&resource, ActionKind::Update, &ctx);

        let mut expected_ids = Vec::new();
        let mut expected_decision = Decision::Allow;
        for (i, (c, a)) in policies.iter().enumerate() {
            if model(c, &resource, now) {
                expected_ids.push(super::id(i as u128));
                let d = match *a {
                    "block" => Decision::Block,
                    "warn" => Decision::Warn,
                    _ => Decision::Allow,
                };
                expected_decision = expected_decision.max(d);
            }
        }
        let got_ids: Vec<_> = response.violations().iter().map(|v| v.policy_id).collect();
        prop_assert_eq!(got_ids, expected_ids, "{:?} on {}", policies, resource);
        prop_assert_eq!(response.decision(), expected_decision);
        for v in response.violations() {
            prop_assert!(v.evidence.len() <= 16);
        }
    }
}
