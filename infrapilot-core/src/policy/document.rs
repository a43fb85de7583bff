//! The policy document: what a user writes and the API stores.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::action::{ActionKind, PolicyAction};
use super::message::MessageTemplate;
use crate::ids::PolicyId;
use crate::values::Labels;

/// One policy.
///
/// The condition describes the **violation**: when it evaluates to true for a resource, the
/// policy *fires* and its `action` applies. `{"field": "host_config.privileged", "operator":
/// "equals", "value": true}` therefore reads "privileged containers violate this policy".
///
/// Deserialization checks the whole document (paths, operands, regexes, message placeholders),
/// so a `Policy` read from JSON always compiles on its own; [`super::PolicySet::compile`] checks
/// again for values built in Rust and for ids shared between policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The policy's id.
    pub id: PolicyId,
    /// A short human name, shown with each violation.
    pub name: String,
    /// A longer explanation for the policy list.
    #[serde(default)]
    pub description: String,
    /// When this is true for a resource, the policy fires.
    pub condition: Condition,
    /// What happens when the policy fires.
    pub action: PolicyAction,
    /// The message shown when the policy fires; the policy name is used when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageTemplate>,
    /// Evaluation and reporting order: higher first. Ties are ordered by id.
    #[serde(default)]
    pub priority: i32,
    /// A disabled policy is kept but never evaluated.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Which operations the policy is asked about at all.
    #[serde(default)]
    pub applies_to: AppliesTo,
}

fn enabled_default() -> bool {
    true
}

/// Selects the operations a policy applies to. Every part must match; an empty part matches
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppliesTo {
    /// The agent must carry all of these labels (with these values).
    #[serde(default)]
    pub labels: Labels,
    /// The context's environment must be one of these; when non-empty, a context without an
    /// environment does not match.
    #[serde(default)]
    pub environments: Vec<String>,
    /// The operation must be one of these.
    #[serde(default)]
    pub actions: Vec<ActionKind>,
}

/// A condition tree: leaves compare one attribute, `all`/`any`/`not` combine them.
///
/// In JSON: `{"all": [...]}` (true when every child is; `{"all": []}` is always true, the idiom
/// for "fire whenever `applies_to` matches"), `{"any": [...]}` (true when some child is; an
/// empty `any` is never true), `{"not": {...}}`, or a [`Leaf`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// True when every child is true.
    All(Vec<Condition>),
    /// True when at least one child is true.
    Any(Vec<Condition>),
    /// True when the child is false.
    Not(Box<Condition>),
    /// A comparison on one attribute.
    #[serde(untagged)]
    Leaf(Leaf),
}

impl Condition {
    /// A leaf comparing the attribute at `field` with `value`.
    pub fn leaf(field: impl Into<String>, operator: Operator, value: impl Into<Value>) -> Self {
        Condition::Leaf(Leaf {
            field: field.into(),
            operator,
            value: value.into(),
        })
    }

    /// `{"all": children}`.
    pub fn all(children: impl IntoIterator<Item = Condition>) -> Self {
        Condition::All(children.into_iter().collect())
    }

    /// `{"any": children}`.
    pub fn any(children: impl IntoIterator<Item = Condition>) -> Self {
        Condition::Any(children.into_iter().collect())
    }

    /// `{"not": child}`.
    #[allow(clippy::should_implement_trait)]
    pub fn not(child: Condition) -> Self {
        Condition::Not(Box::new(child))
    }

    /// A condition that is always true: `{"all": []}`.
    pub fn always() -> Self {
        Condition::All(Vec::new())
    }
}

/// A comparison: `{"field": "config.user", "operator": "equals", "value": "root"}`.
///
/// `field` is a dot path into the resource JSON (`host_config.privileged`); a numeric segment
/// indexes an array (`mounts.0.source`); `*` means *any* element of an array or value of an
/// object (`mounts.*.source`), and the leaf is true when the operator holds for at least one of
/// them (so `{"not": ...}` around it means "for none of them"). Write `\.` for a dot inside a
/// key and `\*` for a literal `*` key. JSON `null` counts as absent.
///
/// An absent attribute makes every operator false except `exists`. An attribute of a type the
/// operator cannot compare (`greater_than` on a string) also makes the leaf false, and the
/// evaluation reports it as a diagnostic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Leaf {
    /// The attribute path.
    pub field: String,
    /// How to compare.
    pub operator: Operator,
    /// The operand; its required type depends on the operator.
    pub value: Value,
}

/// How a leaf compares the attribute (`actual`) with its operand (`value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// `actual == value`, deep JSON equality with numbers compared by value (`1 == 1.0`).
    /// `value` must not be `null` (use `exists`).
    Equals,
    /// The attribute is present and `actual != value`.
    NotEquals,
    /// A string `actual` contains the string `value` as a substring, or an array `actual` has an
    /// element equal to `value`.
    Contains,
    /// Numeric `actual > value`; `value` must be a number.
    GreaterThan,
    /// Numeric `actual < value`; `value` must be a number.
    LessThan,
    /// `actual` equals one element of the array `value`.
    In,
    /// The attribute is present and equals no element of the array `value`.
    NotIn,
    /// `value` is `true`: the attribute is present (and not null); `false`: it is absent. With a
    /// wildcard path, "present" means at least one element has it.
    Exists,
    /// The string `actual` matches the regular expression `value` (Rust `regex` syntax,
    /// unanchored: use `^` and `$`). Compiled once.
    Matches,
    /// The numeric `actual` is a unix time (seconds) more than `value` seconds before the
    /// context's `now`. An extension used by the `max_container_age` template.
    OlderThan,
}

impl Operator {
    /// The snake_case name used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "equals",
            Operator::NotEquals => "not_equals",
            Operator::Contains => "contains",
            Operator::GreaterThan => "greater_than",
            Operator::LessThan => "less_than",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::Exists => "exists",
            Operator::Matches => "matches",
            Operator::OlderThan => "older_than",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        let mut sink = Vec::new();
        let parsed = super::shape::parse_condition(&raw, &mut String::new(), 0, &mut sink);
        if let Some(first) = sink.first() {
            return Err(serde::de::Error::custom(first));
        }
        let Some(condition) = parsed else {
            return Err(serde::de::Error::custom("invalid condition"));
        };
        let mut problems = Vec::new();
        super::compile::check_condition(&condition, &mut problems);
        match problems.first() {
            Some(p) => Err(serde::de::Error::custom(p)),
            None => Ok(condition),
        }
    }
}

/// The JSON shape of a condition, for the schema only: serde's per-variant `untagged` is not
/// understood by schemars 0.8, so the schema is derived from this mirror.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
#[serde(untagged, deny_unknown_fields)]
enum ConditionSchema {
    All { all: Vec<Condition> },
    Any { any: Vec<Condition> },
    Not { not: Box<Condition> },
    Leaf(Leaf),
}

impl schemars::JsonSchema for Condition {
    fn schema_name() -> String {
        "Condition".to_owned()
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        ConditionSchema::json_schema(generator)
    }
}
