//! The policy engine: compile a policy set from JSON, validate documents, evaluate resources.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use infrapilot_core::ids::PolicyId;
use infrapilot_core::policy as core;
use infrapilot_core::values::Labels;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::SdkError;

/// The namespace of the ids given to template references without an `id` (UUID v5 over the
/// template's name), so the same reference gets the same id in every process and language.
const TEMPLATE_NAMESPACE: Uuid = Uuid::from_u128(0x6c1b_2f0e_7a4d_4e7b_9a51_0c3f_1d2e_8b90);

/// The overall answer for one operation, strictest last: `allow < warn < block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Decision {
    /// Go ahead: no policy fired, or only `audit` ones.
    Allow,
    /// Go ahead, but at least one `warn` policy fired.
    Warn,
    /// Refuse: at least one `block` policy fired.
    Block,
}

impl Decision {
    /// The snake_case name used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Warn => "warn",
            Decision::Block => "block",
        }
    }
}

/// One problem found while validating a policy document or evaluating a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// `error` (the document is refused) or `warning`.
    pub severity: String,
    /// A stable machine-readable kind (`unknown_key`, `invalid_regex`, `type_mismatch`, …).
    pub code: String,
    /// The policy concerned, when known.
    pub policy: Option<String>,
    /// A JSON pointer (RFC 6901) into the document as given; empty for the document itself.
    pub pointer: String,
    /// What is wrong and what to change.
    pub message: String,
}

/// One policy that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// The policy's id.
    pub policy_id: String,
    /// The policy's name.
    pub policy_name: String,
    /// `block`, `warn` or `audit`.
    pub action: String,
    /// The rendered message.
    pub message: String,
    /// The attributes that made the condition true, with their actual values.
    pub evidence: Vec<Evidence>,
}

/// One attribute behind a violation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The concrete path (`mounts.1.source`).
    pub path: String,
    /// The actual value; `null` when the attribute is absent.
    pub actual: Option<Value>,
}

/// The answer for one resource: `{decision, violations, diagnostics}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The strictest action among the policies that fired.
    pub decision: Decision,
    /// Every policy that fired, in evaluation order (priority, then id).
    pub violations: Vec<Violation>,
    /// Comparisons the data did not allow (the leaf was taken as false).
    pub diagnostics: Vec<Diagnostic>,
}

impl Evaluation {
    /// Whether the operation may go ahead (`allow` or `warn`).
    pub fn is_allowed(&self) -> bool {
        self.decision != Decision::Block
    }
}

/// The answer of [`validate_policy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    /// Whether the document would be accepted (no diagnostic is an error).
    pub valid: bool,
    /// Every problem, errors and warnings, located by JSON pointer.
    pub diagnostics: Vec<Diagnostic>,
}

/// A built-in policy template, as listed by [`list_templates`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateInfo {
    /// The name to use in a template reference (`{"template": "no_root_containers"}`).
    pub name: String,
    /// What the template checks.
    pub description: String,
    /// What it does when it fires by default: `block`, `warn` or `audit`.
    pub action: String,
    /// The default parameters (empty for templates without any).
    pub parameters: Value,
    /// The full policy document the template stands for, with the id a reference without
    /// `id` gets.
    pub policy: Value,
}

/// A compiled policy set, ready to evaluate many resources.
///
/// Built from JSON by [`PolicyEngine::from_json`]; compiling checks everything once, so
/// evaluation never fails on the policies themselves.
#[derive(Debug)]
pub struct PolicyEngine {
    set: core::PolicySet,
}

/// The context of one evaluation, as JSON: `{"agent_labels": {"env": "production"},
/// "environment": "production", "now": 1700000000}`. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextJson {
    #[serde(default)]
    agent_labels: Labels,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    now: Option<i64>,
}

/// A template reference with the fields a user may override.
#[derive(Debug, Deserialize)]
struct TemplateRef {
    #[serde(default)]
    id: Option<PolicyId>,
    #[serde(default)]
    action: Option<core::PolicyAction>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    enabled: Option<bool>,
}

impl PolicyEngine {
    /// Compiles a policy set from JSON.
    ///
    /// `policies` is an array (or `{"policies": [...]}`) whose elements are policy documents
    /// or template references: `{"template": "max_container_age", "days": 30}`, optionally with
    /// `id`, `action`, `priority` and `enabled` overrides. A reference without `id` gets a
    /// fixed id derived from the template's name. On failure the diagnostics point into
    /// `policies` as given (`/2/condition/any/0/value`).
    pub fn from_json(policies: &Value) -> Result<Self, SdkError> {
        let (items, prefix) = match policies {
            Value::Array(items) => (items, String::new()),
            Value::Object(map) => match map.get("policies") {
                Some(Value::Array(items)) => (items, "/policies".to_owned()),
                _ => {
                    return Err(SdkError::input(
                        "policies",
                        "a policy set is an array of policies, or {\"policies\": [...]}",
                    ));
                }
            },
            _ => {
                return Err(SdkError::input(
                    "policies",
                    "a policy set is an array of policies, or {\"policies\": [...]}",
                ));
            }
        };
        let mut parsed = Vec::with_capacity(items.len());
        let mut diagnostics = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let base = format!("{prefix}/{index}");
            match policy_from_item(item, &base) {
                Ok(policy) => parsed.push(policy),
                Err(found) => diagnostics.extend(found),
            }
        }
        if let Some(first) = diagnostics.first() {
            return Err(SdkError::InvalidPolicy {
                message: format!("at {}: {}", first.pointer, first.message),
                diagnostics,
            });
        }
        let set = core::PolicySet::compile(parsed).map_err(|e| SdkError::InvalidPolicy {
            message: e.to_string(),
            diagnostics: Vec::new(),
        })?;
        Ok(Self { set })
    }

    /// Parses `policies` as a JSON string and compiles it; see [`PolicyEngine::from_json`].
    pub fn from_json_str(policies: &str) -> Result<Self, SdkError> {
        Self::from_json(&crate::error::parse_json(policies)?)
    }

    /// How many policies the set holds (enabled or not).
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether the set holds no policy.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The policy documents of the set, in evaluation order (templates expanded).
    pub fn policies(&self) -> Value {
        serde_json::to_value(self.set.policies()).unwrap_or(Value::Null)
    }

    /// Evaluates `resource` for `action` (`create`, `start`, `restart`, `stop`, `delete`,
    /// `exec`, `update`, `create_proxy`, `update_proxy`) in `context` (see the crate docs;
    /// `null` for none; `now` defaults to the current time).
    ///
    /// Fails only on a bad `action` or `context`; problems with the resource's data are
    /// diagnostics in the answer.
    pub fn evaluate(
        &self,
        resource: &Value,
        action: &str,
        context: &Value,
    ) -> Result<Evaluation, SdkError> {
        let action = parse_action(action)?;
        let context = parse_context(context)?;
        Ok(self.evaluate_with(resource, action, &context))
    }

    pub(crate) fn evaluate_with(
        &self,
        resource: &Value,
        action: core::ActionKind,
        context: &core::EvalContext,
    ) -> Evaluation {
        let response = self.set.evaluate(resource, action, context);
        Evaluation {
            decision: decision(response.decision()),
            violations: response.violations().iter().map(violation).collect(),
            diagnostics: response.diagnostics().iter().map(diagnostic).collect(),
        }
    }
}

/// Checks one policy document and returns every problem, each located by a JSON pointer into
/// the document. Template references are checked too (name, parameters and overrides).
pub fn validate_policy(document: &Value) -> Validation {
    let diagnostics = match document.get("template") {
        Some(_) => policy_from_item(document, "").err().unwrap_or_default(),
        None => core::validate(document).iter().map(diagnostic).collect(),
    };
    Validation {
        valid: diagnostics.iter().all(|d| d.severity != "error"),
        diagnostics,
    }
}

/// Every built-in template with its default parameters and the policy it stands for.
pub fn list_templates() -> Vec<TemplateInfo> {
    core::Template::catalog()
        .into_iter()
        .map(|template| {
            let policy = template.policy(template_id(template.name()));
            let mut parameters = serde_json::to_value(&template).unwrap_or(Value::Null);
            if let Some(map) = parameters.as_object_mut() {
                map.remove("template");
            }
            TemplateInfo {
                name: template.name().to_owned(),
                description: policy.description.clone(),
                action: action_name(policy.action).to_owned(),
                parameters,
                policy: serde_json::to_value(&policy).unwrap_or(Value::Null),
            }
        })
        .collect()
}

/// Parses an action name (`create`, `exec`, …).
pub(crate) fn parse_action(action: &str) -> Result<core::ActionKind, SdkError> {
    core::ActionKind::ALL
        .into_iter()
        .find(|a| a.as_str() == action)
        .ok_or_else(|| {
            let names: Vec<&str> = core::ActionKind::ALL.iter().map(|a| a.as_str()).collect();
            SdkError::input(
                "action",
                format!("unknown action {action:?}; use one of {}", names.join(", ")),
            )
        })
}

/// Reads an evaluation context; `null` is the empty context at the current time.
pub(crate) fn parse_context(context: &Value) -> Result<core::EvalContext, SdkError> {
    let parsed: ContextJson = match context {
        Value::Null => ContextJson::default(),
        other => SdkError::from_value(other, "context")?,
    };
    let environment = parsed.environment.or_else(|| {
        parsed
            .agent_labels
            .get("env")
            .map(|v| v.as_str().to_owned())
    });
    let now = parsed.now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    });
    Ok(core::EvalContext {
        agent_labels: parsed.agent_labels,
        environment,
        now,
    })
}

fn template_id(name: &str) -> PolicyId {
    PolicyId::from_uuid(Uuid::new_v5(&TEMPLATE_NAMESPACE, name.as_bytes()))
}

/// One element of a policy set: a document or a template reference. Problems are pointed at
/// with `base` (the element's pointer in the set) prepended.
fn policy_from_item(item: &Value, base: &str) -> Result<core::Policy, Vec<Diagnostic>> {
    let Some(map) = item.as_object().filter(|m| m.contains_key("template")) else {
        let found: Vec<Diagnostic> = core::validate(item)
            .iter()
            .filter(|d| d.severity == core::Severity::Error)
            .map(|d| {
                let mut d = diagnostic(d);
                d.pointer.insert_str(0, base);
                d
            })
            .collect();
        if !found.is_empty() {
            return Err(found);
        }
        return serde_json::from_value(item.clone())
            .map_err(|e| vec![error_at(base, "invalid_value", e.to_string())]);
    };
    let overrides = ["id", "action", "priority", "enabled"];
    let mut template_only = map.clone();
    template_only.retain(|k, _| !overrides.contains(&k.as_str()));
    let template: core::Template =
        serde_json::from_value(Value::Object(template_only)).map_err(|e| {
            let names: Vec<&str> = core::Template::catalog().iter().map(|t| t.name()).collect();
            vec![error_at(
                base,
                "invalid_value",
                format!(
                    "invalid template reference: {e}; the templates are {}",
                    names.join(", ")
                ),
            )]
        })?;
    let mut overrides_only = map.clone();
    overrides_only.retain(|k, _| overrides.contains(&k.as_str()));
    let refs: TemplateRef = serde_path_to_error::deserialize(Value::Object(overrides_only))
        .map_err(|e| {
            let pointer = format!("{base}/{}", e.path().to_string().replace('.', "/"));
            vec![error_at(
                &pointer,
                "invalid_value",
                e.into_inner().to_string(),
            )]
        })?;
    let mut policy = template.policy(refs.id.unwrap_or_else(|| template_id(template.name())));
    if let Some(action) = refs.action {
        policy.action = action;
    }
    if let Some(priority) = refs.priority {
        policy.priority = priority;
    }
    if let Some(enabled) = refs.enabled {
        policy.enabled = enabled;
    }
    Ok(policy)
}

fn error_at(pointer: &str, code: &str, message: String) -> Diagnostic {
    Diagnostic {
        severity: "error".to_owned(),
        code: code.to_owned(),
        policy: None,
        pointer: pointer.to_owned(),
        message,
    }
}

fn decision(d: core::Decision) -> Decision {
    match d {
        core::Decision::Allow => Decision::Allow,
        core::Decision::Warn => Decision::Warn,
        core::Decision::Block => Decision::Block,
    }
}

fn action_name(a: core::PolicyAction) -> &'static str {
    match a {
        core::PolicyAction::Block => "block",
        core::PolicyAction::Warn => "warn",
        core::PolicyAction::Audit => "audit",
    }
}

/// The snake_case JSON name of a serializable unit enum value.
fn snake_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => "unknown".to_owned(),
    }
}

fn diagnostic(d: &core::Diagnostic) -> Diagnostic {
    Diagnostic {
        severity: snake_name(&d.severity),
        code: snake_name(&d.code),
        policy: d.policy.map(|p| p.to_string()),
        pointer: d.pointer.clone(),
        message: d.message.clone(),
    }
}

fn violation(v: &core::Violation) -> Violation {
    Violation {
        policy_id: v.policy_id.to_string(),
        policy_name: v.policy_name.clone(),
        action: action_name(v.action).to_owned(),
        message: v.message.clone(),
        evidence: v
            .evidence
            .iter()
            .map(|e| Evidence {
                path: e.path.clone(),
                actual: e.actual.clone(),
            })
            .collect(),
    }
}

/// Builds the JSON of an evaluation context from Rust values (see the crate docs for its keys).
pub fn context_json(
    agent_labels: &BTreeMap<String, String>,
    environment: Option<&str>,
    now: Option<i64>,
) -> Value {
    serde_json::json!({
        "agent_labels": agent_labels,
        "environment": environment,
        "now": now,
    })
}
