//! Policies over the core engine: CRUD, templates, a dry run, recorded violations (list,
//! filter, resolve) and statistics. The gate every mutating Docker action passes first is
//! [`crate::ops::policy_gate::gate`].
//!
//! A policy is stored as the engine's own document, validated with
//! [`infrapilot_core::policy::validate`] (every problem reported with its JSON pointer) before
//! it is saved. At gate time the organization's enabled policies are compiled and evaluated
//! against the resource with the agent's labels: `block` refuses (403, the violations in the
//! problem body), `warn` lets the operation proceed and returns the warnings, `audit` records
//! silently. Every violation is stored and written to the audit log in one transaction.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use infrapilot_core::ids::{AgentId, PolicyId, ViolationId};
use infrapilot_core::policy::{
    ActionKind, EvalContext, Policy, PolicySet, Severity, Template, validate,
};
use infrapilot_core::rbac::{Action, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageQuery, audit, display_name};
use crate::AppState;
use crate::auth::{ClientIp, Scoped};
use crate::error::{ApiJson, AppError, FieldError, Problem};
use crate::store::{OrgScope, PolicyRecord, ViolationFilter, ViolationRecord};
use crate::util::{now_micros, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_policies, create_policy))
        .routes(routes!(list_templates))
        .routes(routes!(create_from_template))
        .routes(routes!(policy_stats))
        .routes(routes!(evaluate_policies))
        .routes(routes!(get_policy, update_policy, delete_policy))
        .routes(routes!(list_violations))
        .routes(routes!(get_violation))
        .routes(routes!(resolve_violation))
}

/// A stored policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// The policy document (id, name, condition, action, message, priority, enabled,
    /// applies_to), as the engine reads it.
    #[schema(value_type = Object)]
    pub policy: Value,
    /// The template it was made from, if any.
    pub template: Option<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// When (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

fn policy_view(r: PolicyRecord) -> PolicyView {
    PolicyView {
        policy: serde_json::to_value(&r.policy).unwrap_or(Value::Null),
        template: r.template,
        created_by: r.created_by,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

/// A new policy (or the full replacement of one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// A short name, unique in the organization.
    pub name: String,
    /// A longer explanation.
    #[serde(default)]
    pub description: String,
    /// When this is true for a resource, the policy fires (`{"all": […]}`, `{"any": […]}`,
    /// `{"not": …}` or `{"field", "operator", "value"}`).
    #[schema(value_type = Object)]
    pub condition: Value,
    /// `block`, `warn` or `audit`.
    #[schema(value_type = String)]
    pub action: Value,
    /// The message shown when it fires (`{field}` and `{value}` are filled in).
    #[serde(default)]
    pub message: Option<String>,
    /// Higher first.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Whether it is evaluated (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Which agents, environments and operations it applies to.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub applies_to: Option<Value>,
}

/// Changes to a policy; absent fields stay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// A new name.
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// A new condition.
    #[schema(value_type = Object)]
    pub condition: Option<Value>,
    /// A new action.
    #[schema(value_type = String)]
    pub action: Option<Value>,
    /// A new message.
    pub message: Option<String>,
    /// A new priority.
    pub priority: Option<i32>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
    /// A new scope.
    #[schema(value_type = Object)]
    pub applies_to: Option<Value>,
}

/// Builds and validates a policy document; every problem becomes a field error named by its
/// JSON pointer.
fn checked_policy(document: Value) -> Result<Policy, AppError> {
    let problems: Vec<FieldError> = validate(&document)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            let path = match pointer_to_field(&d.pointer) {
                whole if d.pointer.is_empty() => whole,
                field => crate::error::document_field(None, &document, &field, &d.message),
            };
            FieldError {
                field: path,
                reason: d.message,
            }
        })
        .collect();
    if !problems.is_empty() {
        return Err(AppError::Invalid(problems));
    }
    serde_json::from_value(document).map_err(|e| AppError::field("policy", e.to_string()))
}

/// `/condition/any/1/value` → `condition.any[1].value`.
fn pointer_to_field(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    if out.is_empty() {
        "policy".to_owned()
    } else {
        out
    }
}

fn document_from_input(id: PolicyId, input: PolicyInput) -> Result<Policy, AppError> {
    let name = display_name("name", &input.name)?;
    let mut doc = json!({
        "id": id,
        "name": name,
        "description": input.description,
        "condition": input.condition,
        "action": input.action,
    });
    if let Some(m) = input.message {
        doc["message"] = json!(m);
    }
    if let Some(p) = input.priority {
        doc["priority"] = json!(p);
    }
    if let Some(e) = input.enabled {
        doc["enabled"] = json!(e);
    }
    if let Some(a) = input.applies_to {
        doc["applies_to"] = a;
    }
    checked_policy(doc)
}

/// Lists the organization's policies.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<PolicyView>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_policies(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(page): Query<PageQuery>,
) -> Result<axum::Json<Page<PolicyView>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Policy)?;
    let limit = page.fetch_limit()?;
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx.list_policies(page.after()?, limit).await?;
    tx.commit().await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        |r| (r.created_at, r.policy.id.to_string()),
        policy_view,
    )))
}

async fn store_new_policy(
    state: &AppState,
    scope: &OrgScope,
    ip: Option<std::net::IpAddr>,
    policy: Policy,
    template: Option<String>,
) -> Result<PolicyRecord, AppError> {
    let now = now_micros();
    let record = PolicyRecord {
        policy,
        template,
        created_by: Some(scope.actor().audit_name()),
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.store().org(scope).await?;
    tx.insert_policy(&record).await?;
    audit(
        state,
        &mut tx,
        ip,
        "policy.create",
        "policy",
        record.policy.id,
        json!({
            "name": record.policy.name, "action": record.policy.action, "template": record.template,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(record)
}

/// Creates a policy. Every problem in the document is reported with its location.
#[utoipa::path(post, path = "/api/v1/policies", tag = "policies", security(("bearer" = [])),
    request_body(content = PolicyInput, examples(
        ("block" = (summary = "No privileged or `latest` containers on payments' production agents", value = json!({
            "name": "pinned-unprivileged-payments",
            "description": "Production containers of the payments team run pinned and unprivileged",
            "condition": {"any": [
                {"field": "image", "operator": "matches", "value": ":latest$"},
                {"field": "host_config.privileged", "operator": "equals", "value": true}
            ]},
            "action": "block",
            "message": "{field} is {value}: refused on payments' production agents",
            "priority": 10,
            "enabled": true,
            "applies_to": {"labels": {"team": "payments"}, "environments": ["production"],
                           "actions": ["create", "start"]}
        }))),
    )), responses(
    (status = 201, body = PolicyView),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "The name is taken"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_policy(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<PolicyInput>,
) -> Result<(StatusCode, axum::Json<PolicyView>), AppError> {
    let scope = scoped.require(Action::Create, Resource::Policy)?;
    let policy = document_from_input(PolicyId::from_uuid(crate::util::new_id()), body)?;
    let record = store_new_policy(&state, scope, ip, policy, None).await?;
    Ok((StatusCode::CREATED, axum::Json(policy_view(record))))
}

/// A built-in template.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    /// The template's name (`no_privileged_containers`).
    pub template: String,
    /// The template with its default parameters, as `create from template` takes it.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The policy it creates (with a placeholder id).
    #[schema(value_type = Object)]
    pub policy: Value,
}

/// Lists the built-in templates.
#[utoipa::path(get, path = "/api/v1/policies/templates", tag = "policies", security(("bearer" = [])), responses(
    (status = 200, body = Vec<TemplateView>),
))]
pub async fn list_templates(scoped: Scoped) -> Result<axum::Json<Vec<TemplateView>>, AppError> {
    scoped.require(Action::View, Resource::Policy)?;
    let placeholder = PolicyId::from_uuid(uuid::Uuid::nil());
    Ok(axum::Json(
        Template::catalog()
            .into_iter()
            .map(|t| TemplateView {
                template: t.name().to_owned(),
                parameters: serde_json::to_value(&t).unwrap_or(Value::Null),
                policy: serde_json::to_value(t.policy(placeholder)).unwrap_or(Value::Null),
            })
            .collect(),
    ))
}

/// A policy from a template, optionally adjusted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromTemplate {
    /// The template with its parameters: `{"template": "max_container_age", "days": 30}`.
    #[schema(value_type = Object)]
    pub template: Value,
    /// A name (the template's when absent).
    pub name: Option<String>,
    /// Override the template's action.
    #[schema(value_type = Option<String>)]
    pub action: Option<Value>,
    /// Override the priority.
    pub priority: Option<i32>,
    /// Start disabled.
    pub enabled: Option<bool>,
    /// Restrict to agents, environments or operations.
    #[schema(value_type = Option<Object>)]
    pub applies_to: Option<Value>,
}

/// Creates a policy from a built-in template.
#[utoipa::path(post, path = "/api/v1/policies/from-template", tag = "policies", security(("bearer" = [])),
    request_body(content = FromTemplate, examples(
        ("age" = (summary = "Warn about containers older than 30 days on staging agents", value = json!({
            "template": {"template": "max_container_age", "days": 30},
            "name": "old-staging-containers",
            "action": "warn",
            "priority": 5,
            "enabled": true,
            "applies_to": {"environments": ["staging"]}
        }))),
    )), responses(
    (status = 201, body = PolicyView),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_from_template(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<FromTemplate>,
) -> Result<(StatusCode, axum::Json<PolicyView>), AppError> {
    let scope = scoped.require(Action::Create, Resource::Policy)?;
    let template: Template = serde_path_to_error::deserialize(&body.template).map_err(|e| {
        let message = e.inner().to_string();
        AppError::field(
            crate::error::document_field(
                Some("template"),
                &body.template,
                &e.path().to_string(),
                &message,
            ),
            format!(
                "{message}; the templates are {}",
                Template::catalog()
                    .iter()
                    .map(Template::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let policy = template.policy(PolicyId::from_uuid(crate::util::new_id()));
    let mut doc = serde_json::to_value(&policy).map_err(AppError::internal)?;
    if let Some(name) = body.name {
        doc["name"] = json!(display_name("name", &name)?);
    }
    if let Some(action) = body.action {
        doc["action"] = action;
    }
    if let Some(p) = body.priority {
        doc["priority"] = json!(p);
    }
    if let Some(e) = body.enabled {
        doc["enabled"] = json!(e);
    }
    if let Some(a) = body.applies_to {
        doc["applies_to"] = a;
    }
    let policy = checked_policy(doc)?;
    let record =
        store_new_policy(&state, scope, ip, policy, Some(template.name().to_owned())).await?;
    Ok((StatusCode::CREATED, axum::Json(policy_view(record))))
}

/// One policy.
#[utoipa::path(get, path = "/api/v1/policies/{id}", tag = "policies", security(("bearer" = [])),
    params(("id" = PolicyId, Path, description = "The policy's id")), responses(
    (status = 200, body = PolicyView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_policy(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<PolicyId>,
) -> Result<axum::Json<PolicyView>, AppError> {
    let scope = scoped.require(Action::View, Resource::Policy)?;
    let mut tx = state.store().org_read(scope).await?;
    let record = tx.policy(id).await?;
    tx.commit().await?;
    Ok(axum::Json(policy_view(record)))
}

/// Changes a policy; absent fields stay as they are.
#[utoipa::path(patch, path = "/api/v1/policies/{id}", tag = "policies", security(("bearer" = [])),
    params(("id" = PolicyId, Path, description = "The policy's id")),
    request_body(content = PolicyPatch, examples(
        ("audit" = (summary = "Only record exec into production containers, whoever runs it", value = json!({
            "name": "exec-in-production",
            "description": "Every exec into a production container is recorded",
            "condition": {"all": []},
            "action": "audit",
            "message": "exec into {value}",
            "priority": 1,
            "enabled": true,
            "applies_to": {"environments": ["production"], "actions": ["exec"]}
        }))),
    )), responses(
    (status = 200, body = PolicyView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_policy(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<PolicyId>,
    ApiJson(body): ApiJson<PolicyPatch>,
) -> Result<axum::Json<PolicyView>, AppError> {
    let scope = scoped.require(Action::Update, Resource::Policy)?;
    let mut tx = state.store().org(scope).await?;
    let mut record = tx.policy(id).await?;
    let mut doc = serde_json::to_value(&record.policy).map_err(AppError::internal)?;
    let mut changed = Vec::new();
    if let Some(name) = body.name {
        doc["name"] = json!(display_name("name", &name)?);
        changed.push("name");
    }
    let fields: [(&str, Option<Value>); 7] = [
        ("description", body.description.map(Value::String)),
        ("condition", body.condition),
        ("action", body.action),
        ("message", body.message.map(Value::String)),
        ("priority", body.priority.map(|p| json!(p))),
        ("enabled", body.enabled.map(Value::Bool)),
        ("applies_to", body.applies_to),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            doc[key] = value;
            changed.push(key);
        }
    }
    record.policy = checked_policy(doc)?;
    record.updated_at = now_micros();
    tx.update_policy(&record).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "policy.update",
        "policy",
        id,
        json!({
            "name": record.policy.name, "changed": changed,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(policy_view(record)))
}

/// Deletes a policy; its recorded violations stay.
#[utoipa::path(delete, path = "/api/v1/policies/{id}", tag = "policies", security(("bearer" = [])),
    params(("id" = PolicyId, Path, description = "The policy's id")), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_policy(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<PolicyId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Policy)?;
    let mut tx = state.store().org(scope).await?;
    let record = tx.policy(id).await?;
    tx.delete_policy(id).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "policy.delete",
        "policy",
        id,
        json!({"name": record.policy.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A dry run: what the organization's policies decide for a resource.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// The resource's attributes (the container or proxy host shape the templates document).
    #[schema(value_type = Object)]
    pub resource: Value,
    /// The operation (`create`, `start`, `exec`, …).
    #[schema(value_type = String)]
    pub operation: ActionKind,
    /// The agent whose labels (and `env` label) apply; absent: none.
    pub agent_id: Option<AgentId>,
}

/// Evaluates the organization's enabled policies against a resource without doing anything
/// or recording anything.
#[utoipa::path(post, path = "/api/v1/policies/evaluate", tag = "policies", security(("bearer" = [])),
    request_body(content = EvaluateRequest, examples(
        ("exec" = (summary = "Would an exec into this container on this agent be allowed?", value = json!({
            "resource": {"name": "pay-api", "image": "registry.example.com/pay/api:1.4.2", "user": "app"},
            "operation": "exec",
            "agent_id": "0190a0d6-7a2b-7c3d-8e4f-000000000001"
        }))),
    )), responses(
    (status = 200, body = Object, description = "The engine's response: decision, violations, diagnostics"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn evaluate_policies(
    State(state): State<AppState>,
    scoped: Scoped,
    ApiJson(body): ApiJson<EvaluateRequest>,
) -> Result<axum::Json<Value>, AppError> {
    let scope = scoped.require(Action::View, Resource::Policy)?;
    let mut tx = state.store().org_read(scope).await?;
    let labels = match body.agent_id {
        Some(agent) => tx.agent(agent).await?.labels,
        None => Default::default(),
    };
    let policies = tx.all_policies().await?;
    tx.commit().await?;
    let set = PolicySet::compile(policies).map_err(AppError::internal)?;
    let ctx = EvalContext::for_agent(labels, now_micros() / 1_000_000);
    let response = set.evaluate(&body.resource, body.operation, &ctx);
    Ok(axum::Json(
        serde_json::to_value(&response).map_err(AppError::internal)?,
    ))
}

/// Counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyStats {
    /// Policies in the organization.
    pub policies: usize,
    /// Of which enabled.
    pub enabled: usize,
    /// Enabled policies per action (`block`, `warn`, `audit`).
    pub enabled_by_action: BTreeMap<String, usize>,
    /// The window the violation counts cover, days.
    pub days: u32,
    /// Violations in the window.
    pub violations: i64,
    /// Of which unresolved.
    pub open: i64,
    /// Violations per action: `{"block": {"total": 3, "open": 1}}`.
    #[schema(value_type = Object)]
    pub by_action: BTreeMap<String, Value>,
    /// The policies that fired most, with their counts.
    #[schema(value_type = Vec<Object>)]
    pub top_policies: Vec<Value>,
}

/// The statistics window.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Days back (1–365, default 30).
    pub days: Option<u32>,
}

/// Policy and violation statistics.
#[utoipa::path(get, path = "/api/v1/policies/stats", tag = "policies", security(("bearer" = [])), params(StatsQuery), responses(
    (status = 200, body = PolicyStats),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn policy_stats(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(q): Query<StatsQuery>,
) -> Result<axum::Json<PolicyStats>, AppError> {
    let scope = scoped.require(Action::View, Resource::Policy)?;
    let days = q.days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(AppError::field("days", "must be from 1 to 365"));
    }
    let since = now_micros() - i64::from(days) * 86_400 * 1_000_000;
    let mut tx = state.store().org_read(scope).await?;
    let policies = tx.all_policies().await?;
    let counts = tx.violation_counts(since).await?;
    tx.commit().await?;
    let mut enabled_by_action = BTreeMap::new();
    for p in policies.iter().filter(|p| p.enabled) {
        *enabled_by_action
            .entry(crate::ops::policy_gate::action_name(p.action).to_owned())
            .or_insert(0) += 1;
    }
    Ok(axum::Json(PolicyStats {
        policies: policies.len(),
        enabled: policies.iter().filter(|p| p.enabled).count(),
        enabled_by_action,
        days,
        violations: counts.by_action.iter().map(|(_, t, _)| t).sum(),
        open: counts.by_action.iter().map(|(_, _, o)| o).sum(),
        by_action: counts
            .by_action
            .iter()
            .map(|(a, t, o)| (a.clone(), json!({"total": t, "open": o})))
            .collect(),
        top_policies: counts
            .by_policy
            .iter()
            .take(10)
            .map(|(id, name, t, o)| json!({"policy_id": id, "policy": name, "total": t, "open": o}))
            .collect(),
    }))
}

/// A recorded violation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ViolationView {
    /// Its id.
    pub id: ViolationId,
    /// The policy.
    pub policy_id: PolicyId,
    /// The policy's name when it fired.
    pub policy: String,
    /// `block`, `warn` or `audit`.
    pub action: String,
    /// The operation (`start`, `exec`, …).
    pub operation: String,
    /// The agent.
    pub agent_id: Option<AgentId>,
    /// `container`, …
    pub resource_kind: String,
    /// The resource's name.
    pub resource: String,
    /// The policy's message.
    pub message: String,
    /// The attribute paths and values behind it.
    #[schema(value_type = Vec<Object>)]
    pub evidence: Value,
    /// Who attempted the operation.
    pub actor: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// When it was resolved (RFC 3339).
    pub resolved_at: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// The resolution note.
    pub resolution_note: Option<String>,
}

fn violation_view(v: ViolationRecord) -> ViolationView {
    ViolationView {
        id: v.id,
        policy_id: v.policy_id,
        policy: v.policy_name,
        action: v.action,
        operation: v.operation,
        agent_id: v.agent_id,
        resource_kind: v.resource_kind,
        resource: v.resource,
        message: v.message,
        evidence: v.evidence,
        actor: v.actor,
        created_at: rfc3339(v.created_at),
        resolved_at: v.resolved_at.map(rfc3339),
        resolved_by: v.resolved_by,
        resolution_note: v.resolution_note,
    }
}

/// Violation filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViolationQuery {
    /// Only this policy's.
    pub policy_id: Option<PolicyId>,
    /// Only `block`, `warn` or `audit`.
    pub action: Option<String>,
    /// Only this agent's.
    pub agent_id: Option<AgentId>,
    /// `open` or `resolved`.
    pub status: Option<String>,
    /// Only at or after this time (RFC 3339).
    pub since: Option<String>,
    /// How many (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Lists recorded violations, newest first.
#[utoipa::path(get, path = "/api/v1/policy-violations", tag = "policies", security(("bearer" = [])), params(ViolationQuery), responses(
    (status = 200, body = Page<ViolationView>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_violations(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(q): Query<ViolationQuery>,
) -> Result<axum::Json<Page<ViolationView>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Violation)?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.fetch_limit()?;
    if let Some(a) = &q.action
        && !["block", "warn", "audit"].contains(&a.as_str())
    {
        return Err(AppError::field("action", "must be block, warn or audit"));
    }
    let resolved = match q.status.as_deref() {
        None => None,
        Some("open") => Some(false),
        Some("resolved") => Some(true),
        Some(_) => return Err(AppError::field("status", "must be open or resolved")),
    };
    let since = q
        .since
        .as_deref()
        .map(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MIN))
                .map_err(|e| AppError::field("since", format!("is not an RFC 3339 time: {e}")))
        })
        .transpose()?;
    let filter = ViolationFilter {
        policy: q.policy_id,
        action: q.action,
        agent: q.agent_id,
        resolved,
        since,
    };
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx.list_violations(&filter, page.after()?, limit).await?;
    tx.commit().await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        |v| (v.created_at, v.id.to_string()),
        violation_view,
    )))
}

/// One violation.
#[utoipa::path(get, path = "/api/v1/policy-violations/{id}", tag = "policies", security(("bearer" = [])),
    params(("id" = ViolationId, Path, description = "The violation's id")), responses(
    (status = 200, body = ViolationView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_violation(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<ViolationId>,
) -> Result<axum::Json<ViolationView>, AppError> {
    let scope = scoped.require(Action::View, Resource::Violation)?;
    let mut tx = state.store().org_read(scope).await?;
    let v = tx.violation(id).await?;
    tx.commit().await?;
    Ok(axum::Json(violation_view(v)))
}

/// A resolution.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// What was done about it (at most 1000 characters).
    pub note: Option<String>,
}

/// Marks a violation resolved.
#[utoipa::path(post, path = "/api/v1/policy-violations/{id}/resolve", tag = "policies", security(("bearer" = [])),
    params(("id" = ViolationId, Path, description = "The violation's id")), request_body = Resolve, responses(
    (status = 200, body = ViolationView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "Already resolved"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn resolve_violation(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<ViolationId>,
    ApiJson(body): ApiJson<Resolve>,
) -> Result<axum::Json<ViolationView>, AppError> {
    let scope = scoped.require(Action::Update, Resource::Violation)?;
    let note = body
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if let Some(n) = &note
        && (n.chars().count() > 1000 || n.chars().any(|c| c.is_control() && c != '\n'))
    {
        return Err(AppError::field(
            "note",
            "must be at most 1000 characters without control characters",
        ));
    }
    let mut tx = state.store().org(scope).await?;
    let v = tx
        .resolve_violation(
            id,
            &scope.actor().audit_name(),
            note.as_deref(),
            now_micros(),
        )
        .await?;
    audit(
        &state,
        &mut tx,
        ip,
        "policy_violation.resolve",
        "policy_violation",
        id,
        json!({
            "policy": v.policy_name, "note": note,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(violation_view(v)))
}
