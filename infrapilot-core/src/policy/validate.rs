//! Checking a policy document for the API, with every problem located by a JSON pointer.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::action::PolicyAction;
use super::compile::check_condition;
use super::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use super::document::{AppliesTo, Condition, Policy};
use super::message::MessageTemplate;
use super::shape::{escape, kind, parse_condition};
use crate::ids::PolicyId;

const KEYS: [&str; 9] = [
    "id",
    "name",
    "description",
    "condition",
    "action",
    "message",
    "priority",
    "enabled",
    "applies_to",
];
const REQUIRED: [&str; 4] = ["id", "name", "condition", "action"];

/// Checks a policy document and returns every problem found, errors and warnings.
///
/// The document is valid (it deserializes into a [`Policy`] and compiles) exactly when no
/// diagnostic has [`Severity::Error`]. Warnings point at parts that can never be true.
pub fn validate(document: &Value) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Value::Object(map) = document else {
        out.push(error(
            "",
            DiagnosticCode::NotAnObject,
            format!("a policy must be a JSON object, got {}", kind(document)),
        ));
        return out;
    };
    for key in map.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        out.push(error(
            &format!("/{}", escape(key)),
            DiagnosticCode::UnknownKey,
            format!("unknown key {key:?}; a policy has {}", KEYS.join(", ")),
        ));
    }
    for key in REQUIRED.iter().filter(|k| !map.contains_key(**k)) {
        out.push(error(
            "",
            DiagnosticCode::MissingKey,
            format!("a policy needs {key:?}"),
        ));
    }
    let id = field::<PolicyId>(map.get("id"), "/id", &mut out);
    field::<String>(map.get("name"), "/name", &mut out);
    field::<String>(map.get("description"), "/description", &mut out);
    field::<PolicyAction>(map.get("action"), "/action", &mut out);
    field::<Option<MessageTemplate>>(map.get("message"), "/message", &mut out);
    field::<i32>(map.get("priority"), "/priority", &mut out);
    field::<bool>(map.get("enabled"), "/enabled", &mut out);
    field::<AppliesTo>(map.get("applies_to"), "/applies_to", &mut out);
    if let Some(raw) = map.get("condition") {
        let mut pointer = "/condition".to_owned();
        if let Some(condition) = parse_condition(raw, &mut pointer, 0, &mut out) {
            let mut problems = Vec::new();
            check_condition(&condition, &mut problems);
            for p in problems {
                let mut d = p.to_diagnostic(id);
                d.pointer.insert_str(0, "/condition");
                out.push(d);
            }
            never_matches(&condition, &mut "/condition".to_owned(), &mut out);
        }
    }
    for d in &mut out {
        d.policy = d.policy.or(id);
    }
    out
}

/// The JSON Schema (draft 7, via schemars) of a policy document.
pub fn policy_document_schema() -> schemars::schema::RootSchema {
    schemars::schema_for!(Policy)
}

fn error(pointer: &str, code: DiagnosticCode, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code,
        policy: None,
        pointer: pointer.to_owned(),
        message,
    }
}

fn field<T: DeserializeOwned>(
    raw: Option<&Value>,
    pointer: &str,
    out: &mut Vec<Diagnostic>,
) -> Option<T> {
    let raw = raw?;
    match serde_json::from_value::<T>(raw.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            out.push(error(pointer, DiagnosticCode::InvalidValue, e.to_string()));
            None
        }
    }
}

/// Warns about every empty `any`: it is never true.
fn never_matches(condition: &Condition, pointer: &mut String, out: &mut Vec<Diagnostic>) {
    let base = pointer.len();
    match condition {
        Condition::Any(items) if items.is_empty() => out.push(Diagnostic {
            severity: Severity::Warning,
            code: DiagnosticCode::NeverMatches,
            policy: None,
            pointer: pointer.clone(),
            message: "an empty \"any\" is never true, so this part never fires; \
                      an empty \"all\" is the condition that is always true"
                .to_owned(),
        }),
        Condition::All(items) | Condition::Any(items) => {
            let name = if matches!(condition, Condition::All(_)) {
                "all"
            } else {
                "any"
            };
            for (i, item) in items.iter().enumerate() {
                pointer.push_str(&format!("/{name}/{i}"));
                never_matches(item, pointer, out);
                pointer.truncate(base);
            }
        }
        Condition::Not(child) => {
            pointer.push_str("/not");
            never_matches(child, pointer, out);
            pointer.truncate(base);
        }
        Condition::Leaf(_) => {}
    }
}
