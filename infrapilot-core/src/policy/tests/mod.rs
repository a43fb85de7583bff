//! Tests of the engine as a whole: operators, templates, validation and the model check.

mod model;
mod operators;
mod templates;
mod validation;

use serde_json::{Value, json};

use super::{ActionKind, EvalContext, Policy, PolicySet, Response};
use crate::ids::PolicyId;

pub(super) fn id(n: u128) -> PolicyId {
    PolicyId::from_uuid(uuid::Uuid::from_u128(n))
}

/// A policy read from JSON, so every test also goes through deserialization.
pub(super) fn policy(n: u128, condition: Value, action: &str) -> Policy {
    let doc = json!({
        "id": id(n).to_string(),
        "name": format!("p{n}"),
        "condition": condition,
        "action": action,
        "priority": 0,
    });
    serde_json::from_value(doc).unwrap()
}

/// Evaluates one blocking policy with `condition` on `resource` (action `create`, now = 1000).
pub(super) fn run(condition: Value, resource: &Value) -> Response {
    let set = PolicySet::compile([policy(1, condition, "block")]).unwrap();
    let ctx = EvalContext {
        now: 1000,
        ..EvalContext::default()
    };
    set.evaluate(resource, ActionKind::Create, &ctx)
}
