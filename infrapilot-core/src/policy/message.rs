//! Violation message templates: `"container runs as {value}"`.

use std::str::FromStr;

use serde_json::Value;

use crate::values::{ValueError, string_value_serde};

/// The longest template accepted, in characters.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Longest rendering of an interpolated value, so a huge attribute does not become a huge message.
const MAX_VALUE_ECHO: usize = 128;

/// A message shown when a policy fires. It may interpolate `{value}` (the offending actual
/// value; `<unset>` when the violation is that the attribute is absent), `{field}` (the
/// concrete attribute path, e.g. `mounts.1.source`) and `{policy}` (the policy name). Write
/// `{{` and `}}` for literal braces. Any other placeholder is refused when parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTemplate {
    raw: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value,
    Field,
    Policy,
}

impl MessageTemplate {
    /// Parses a template, refusing unknown placeholders and unbalanced braces.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("message", input, reason);
        if input.chars().count() > MAX_MESSAGE_LEN {
            return Err(err(&format!(
                "must be at most {MAX_MESSAGE_LEN} characters long"
            )));
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = input.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(err("has a '{' without a closing '}'")),
                        }
                    }
                    let part = match name.as_str() {
                        "value" => Part::Value,
                        "field" => Part::Field,
                        "policy" => Part::Policy,
                        other => {
                            return Err(err(&format!(
                                "has an unknown placeholder {{{other}}}; use {{value}}, {{field}} or {{policy}} (or {{{{ for a brace)"
                            )));
                        }
                    };
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(part);
                }
                '}' => {
                    return Err(err(
                        "has a '}' without an opening '{' (write }} for a brace)",
                    ));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self {
            raw: input.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Fills in the placeholders. `value` is `None` when the attribute is absent.
    pub fn render(&self, policy: &str, field: &str, value: Option<&Value>) -> String {
        let mut out = String::with_capacity(self.raw.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value => out.push_str(&render_value(value)),
                Part::Field => out.push_str(field),
                Part::Policy => out.push_str(policy),
            }
        }
        out
    }
}

/// Renders an actual value for a message: strings bare, other values as compact JSON,
/// absent as `<unset>`, cut to 128 characters.
pub(crate) fn render_value(value: Option<&Value>) -> String {
    let text = match value {
        None => return "<unset>".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if text.chars().count() > MAX_VALUE_ECHO {
        let cut: String = text.chars().take(MAX_VALUE_ECHO).collect();
        format!("{cut}…")
    } else {
        text
    }
}

impl FromStr for MessageTemplate {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    MessageTemplate,
    "MessageTemplate",
    "A violation message; may use {value}, {field} and {policy}; {{ and }} for braces"
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(template: &str, value: Option<Value>, expected: Result<&str, &str>) {
        match (MessageTemplate::parse(template), expected) {
            (Ok(t), Ok(want)) => {
                assert_eq!(t.render("no_root", "config.user", value.as_ref()), want);
            }
            (Err(e), Err(want)) => assert!(e.reason().contains(want), "{template}: {e}"),
            (got, want) => panic!("{template}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn templates() {
        check("runs as {value}", Some(json!("root")), Ok("runs as root"));
        check("{field} is {value}", None, Ok("config.user is <unset>"));
        check(
            "{field}={value}",
            Some(json!({"a": 1})),
            Ok(r#"config.user={"a":1}"#),
        );
        check("{policy}: {{literal}}", None, Ok("no_root: {literal}"));
        check("plain", None, Ok("plain"));
        check("{nope}", None, Err("unknown placeholder"));
        check("{value", None, Err("without a closing"));
        check("a } b", None, Err("without an opening"));
    }

    #[test]
    fn long_values_are_cut() {
        let t = MessageTemplate::parse("{value}").unwrap();
        let long = "x".repeat(500);
        assert_eq!(t.render("p", "f", Some(&json!(long))).chars().count(), 129);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(input in "[a-z{}]{0,20}") {
            if let Ok(t) = MessageTemplate::parse(&input) {
                proptest::prop_assert_eq!(t.as_str(), input.as_str());
                let _ = t.render("p", "f", None);
            }
        }
    }
}
