//! Reads a condition from raw JSON, reporting every structural problem with its pointer.

use serde_json::Value;

use super::compile::MAX_DEPTH;
use super::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use super::document::{Condition, Leaf, Operator};

/// Parses `raw` into a [`Condition`], pushing a diagnostic for each structural problem
/// (operands are checked later, by the compiler). Returns `None` when anything was wrong.
pub(crate) fn parse_condition(
    raw: &Value,
    pointer: &mut String,
    depth: usize,
    sink: &mut Vec<Diagnostic>,
) -> Option<Condition> {
    let mut error = |pointer: &str, code, message: String| {
        sink.push(Diagnostic {
            severity: Severity::Error,
            code,
            policy: None,
            pointer: pointer.to_owned(),
            message,
        });
    };
    if depth > MAX_DEPTH {
        error(
            pointer,
            DiagnosticCode::TooDeep,
            format!("conditions may be nested at most {MAX_DEPTH} deep"),
        );
        return None;
    }
    let Value::Object(map) = raw else {
        error(
            pointer,
            DiagnosticCode::NotAnObject,
            format!(
                "a condition must be an object ({{\"all\": …}}, {{\"any\": …}}, {{\"not\": …}} or {{\"field\", \"operator\", \"value\"}}), got {}",
                kind(raw)
            ),
        );
        return None;
    };
    for combinator in ["all", "any", "not"] {
        let Some(inner) = map.get(combinator) else {
            continue;
        };
        let mut ok = true;
        for key in map.keys().filter(|k| *k != combinator) {
            error(
                &format!("{pointer}/{}", escape(key)),
                DiagnosticCode::UnknownKey,
                format!("a {combinator:?} condition takes no other key, found {key:?}"),
            );
            ok = false;
        }
        let base = pointer.len();
        pointer.push('/');
        pointer.push_str(combinator);
        let result = if combinator == "not" {
            parse_condition(inner, pointer, depth + 1, sink).map(|c| Condition::Not(Box::new(c)))
        } else {
            parse_children(combinator, inner, pointer, depth, sink)
        };
        pointer.truncate(base);
        return result.filter(|_| ok);
    }
    parse_leaf(map, pointer, sink)
}

fn parse_children(
    combinator: &str,
    inner: &Value,
    pointer: &mut String,
    depth: usize,
    sink: &mut Vec<Diagnostic>,
) -> Option<Condition> {
    let Value::Array(items) = inner else {
        sink.push(Diagnostic {
            severity: Severity::Error,
            code: DiagnosticCode::InvalidValue,
            policy: None,
            pointer: pointer.clone(),
            message: format!(
                "{combinator:?} takes an array of conditions, got {}",
                kind(inner)
            ),
        });
        return None;
    };
    let mut children = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let base = pointer.len();
        pointer.push('/');
        pointer.push_str(&i.to_string());
        match parse_condition(item, pointer, depth + 1, sink) {
            Some(c) => children.push(c),
            None => ok = false,
        }
        pointer.truncate(base);
    }
    if !ok {
        return None;
    }
    Some(if combinator == "all" {
        Condition::All(children)
    } else {
        Condition::Any(children)
    })
}

fn parse_leaf(
    map: &serde_json::Map<String, Value>,
    pointer: &str,
    sink: &mut Vec<Diagnostic>,
) -> Option<Condition> {
    let mut error = |at: String, code, message: String| {
        sink.push(Diagnostic {
            severity: Severity::Error,
            code,
            policy: None,
            pointer: at,
            message,
        });
    };
    let mut ok = true;
    for key in map
        .keys()
        .filter(|k| !matches!(k.as_str(), "field" | "operator" | "value"))
    {
        error(
            format!("{pointer}/{}", escape(key)),
            DiagnosticCode::UnknownKey,
            format!(
                "unknown key {key:?}: a condition is {{\"all\"}}, {{\"any\"}}, {{\"not\"}} or a leaf with \"field\", \"operator\" and \"value\""
            ),
        );
        ok = false;
    }
    let field = match map.get("field") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            error(
                format!("{pointer}/field"),
                DiagnosticCode::InvalidValue,
                format!(
                    "\"field\" must be a string path such as \"config.user\", got {}",
                    kind(other)
                ),
            );
            None
        }
        None => {
            error(
                pointer.to_owned(),
                DiagnosticCode::MissingKey,
                "a leaf needs \"field\"".to_owned(),
            );
            None
        }
    };
    let operator = match map.get("operator") {
        Some(raw) => match serde_json::from_value::<Operator>(raw.clone()) {
            Ok(op) => Some(op),
            Err(_) => {
                error(
                    format!("{pointer}/operator"),
                    DiagnosticCode::InvalidValue,
                    format!(
                        "unknown operator {raw}; use equals, not_equals, contains, greater_than, less_than, in, not_in, exists, matches or older_than"
                    ),
                );
                None
            }
        },
        None => {
            error(
                pointer.to_owned(),
                DiagnosticCode::MissingKey,
                "a leaf needs \"operator\"".to_owned(),
            );
            None
        }
    };
    let value = map.get("value").cloned();
    if value.is_none() {
        error(
            pointer.to_owned(),
            DiagnosticCode::MissingKey,
            "a leaf needs \"value\"".to_owned(),
        );
    }
    match (field, operator, value) {
        (Some(field), Some(operator), Some(value)) if ok => Some(Condition::Leaf(Leaf {
            field,
            operator,
            value,
        })),
        _ => None,
    }
}

/// Escapes a key for use in a JSON pointer (RFC 6901).
pub(crate) fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The JSON type of a value, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
