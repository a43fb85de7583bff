//! The policy gate: an operation on a container, stack or proxy host passes through the
//! organization's policies before it runs. Violations are recorded (with an inventory event
//! and an audit entry, in one transaction); `block` refuses the operation, `warn` returns the
//! warnings to show with its result, `audit` records silently.

use infrapilot_core::ids::ViolationId;
use infrapilot_core::policy::{ActionKind, Decision, EvalContext, PolicyAction, PolicySet};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::{AppError, PolicyNotice};
use crate::ops::audit::audit_outcome;
use crate::store::{AgentRecord, OrgScope, ViolationRecord};
use crate::util::now_micros;

/// A policy action's name, as stored and shown.
pub(crate) fn action_name(a: PolicyAction) -> &'static str {
    match a {
        PolicyAction::Block => "block",
        PolicyAction::Warn => "warn",
        PolicyAction::Audit => "audit",
    }
}

/// What a gated operation is about.
#[derive(Debug, Clone)]
pub struct Gated<'a> {
    /// The agent it runs on.
    pub agent: &'a AgentRecord,
    /// The operation.
    pub operation: ActionKind,
    /// `container`, `stack`, …
    pub resource_kind: &'static str,
    /// The resource's name.
    pub resource_name: &'a str,
    /// Its attributes as the engine reads them.
    pub resource: &'a Value,
}

/// Passes an operation through the organization's policies. `block` → `Err(PolicyBlocked)`
/// after recording the violations and a denied audit entry; otherwise the warnings to return
/// with the result (warn) — audit-only violations are recorded silently.
pub async fn gate(
    state: &AppState,
    scope: &OrgScope,
    ip: Option<std::net::IpAddr>,
    audit_action: &'static str,
    gated: Gated<'_>,
) -> Result<Vec<PolicyNotice>, AppError> {
    let mut tx = state.store().org_read(scope).await?;
    let policies = tx.all_policies().await?;
    tx.commit().await?;
    if policies.is_empty() {
        return Ok(Vec::new());
    }
    let set = PolicySet::compile(policies).map_err(AppError::internal)?;
    let now = now_micros();
    let ctx = EvalContext::for_agent(gated.agent.labels.clone(), now / 1_000_000);
    let response = set.evaluate(gated.resource, gated.operation, &ctx);
    if response.violations().is_empty() {
        return Ok(Vec::new());
    }
    let actor = scope.actor().audit_name();
    let mut notices = Vec::new();
    let mut tx = state.store().org(scope).await?;
    for v in response.violations() {
        let id = ViolationId::from_uuid(crate::util::new_id());
        let action = action_name(v.action);
        tx.insert_violation(&ViolationRecord {
            id,
            policy_id: v.policy_id,
            policy_name: v.policy_name.clone(),
            action: action.to_owned(),
            operation: gated.operation.as_str().to_owned(),
            agent_id: Some(gated.agent.id),
            resource_kind: gated.resource_kind.to_owned(),
            resource: gated.resource_name.to_owned(),
            message: v.message.clone(),
            evidence: serde_json::to_value(&v.evidence).unwrap_or(Value::Null),
            actor: actor.clone(),
            created_at: now,
            resolved_at: None,
            resolved_by: None,
            resolution_note: None,
        })
        .await?;
        notices.push(PolicyNotice {
            violation_id: id.to_string(),
            policy_id: v.policy_id.to_string(),
            policy: v.policy_name.clone(),
            action: action.to_owned(),
            message: v.message.clone(),
        });
    }
    let blocked = response.decision() == Decision::Block;
    for n in &notices {
        crate::logs::record_event_in(
            &mut tx,
            crate::logs::ServerEvent {
                kind: infrapilot_core::events::EventKind::PolicyViolation,
                severity: match n.action.as_str() {
                    "block" => infrapilot_core::events::Severity::Error,
                    "warn" => infrapilot_core::events::Severity::Warning,
                    _ => infrapilot_core::events::Severity::Info,
                },
                agent: Some(gated.agent.id),
                summary: format!(
                    "policy {:?} ({}) on {} {}: {}",
                    n.policy, n.action, gated.resource_kind, gated.resource_name, n.message
                ),
                details: json!({
                    "violation_id": n.violation_id, "policy_id": n.policy_id, "action": n.action,
                    "operation": gated.operation, "resource_kind": gated.resource_kind,
                    "resource": gated.resource_name,
                }),
            },
        )
        .await?;
    }
    audit_outcome(
        state,
        &mut tx,
        ip,
        if blocked { audit_action } else { "policy.violation" },
        (gated.resource_kind, gated.resource_name.to_owned()),
        if blocked {
            infrapilot_core::audit::Outcome::Denied
        } else {
            infrapilot_core::audit::Outcome::Success
        },
        json!({
            "agent_id": gated.agent.id, "operation": gated.operation, "violations": notices.iter().map(|n| json!({
                "policy": n.policy, "action": n.action, "message": n.message, "violation_id": n.violation_id,
            })).collect::<Vec<_>>(),
        }),
    )
    .await?;
    tx.commit().await?;
    if blocked {
        return Err(AppError::PolicyBlocked(notices));
    }
    Ok(notices.into_iter().filter(|n| n.action == "warn").collect())
}
