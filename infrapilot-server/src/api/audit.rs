//! The audit log: filtered listing, chain verification with the server's checkpoint key, and
//! a full export that can be verified offline (the SDK's `verify`).

use axum::extract::{Query, State};
use infrapilot_core::audit::{self, AuditExport, ChainedEntry, VerifyReport};
use infrapilot_core::ids::OrgId;
use infrapilot_core::rbac::{Action, Resource};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Scoped;
use crate::error::{AppError, Problem};
use crate::store::AuditFilter;
use crate::util::rfc3339;

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit))
        .routes(routes!(verify_audit))
        .routes(routes!(export_audit))
}

/// Listing filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Exact action, e.g. `member.create`.
    pub action: Option<String>,
    /// Exact actor: `user:<id>`, `api_token:<id>` or `system`.
    pub actor: Option<String>,
    /// Exact resource kind, e.g. `member`.
    pub resource_kind: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// Entries at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Entries before this time (RFC 3339).
    pub to: Option<String>,
    /// How many entries (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One audit entry, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    /// Its place in the organization's chain.
    pub seq: u64,
    /// When (RFC 3339).
    pub time: String,
    /// Who: `{"type": "user", "id": …}`, `{"type": "api_token", …}`, `{"type": "system"}`.
    #[schema(value_type = Object)]
    pub actor: serde_json::Value,
    /// What, e.g. `member.create`.
    pub action: String,
    /// The resource kind.
    pub resource_kind: String,
    /// The resource id.
    pub resource_id: String,
    /// The client's address.
    pub source_ip: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Context.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// The chain hash, hex.
    pub hash: String,
}

/// A page of audit entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditItem>,
    /// Pass as `cursor` for older entries; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn item(e: ChainedEntry) -> AuditItem {
    let outcome = serde_json::to_value(e.entry.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    AuditItem {
        seq: e.seq,
        time: rfc3339(e.entry.time_us),
        actor: serde_json::to_value(e.entry.actor).unwrap_or_default(),
        action: e.entry.action.as_str().to_owned(),
        resource_kind: e.entry.resource.kind.as_str().to_owned(),
        resource_id: e.entry.resource.id.as_str().to_owned(),
        source_ip: e.entry.source_ip.map(|ip| ip.to_string()),
        outcome,
        details: e.entry.details,
        hash: e.hash.to_string(),
    }
}

fn time_param(field: &str, value: &Option<String>) -> Result<Option<i64>, AppError> {
    value
        .as_deref()
        .map(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX))
                .map_err(|_| {
                    AppError::field(
                        field,
                        "must be an RFC 3339 time such as 2026-01-31T12:00:00Z",
                    )
                })
        })
        .transpose()
}

/// Lists audit entries, newest first, with filters.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery), responses(
    (status = 200, body = AuditPage),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_audit(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<AuditPage>, AppError> {
    let scope = scoped.require(Action::View, Resource::Audit)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=super::MAX_PAGE).contains(&limit) {
        return Err(AppError::field(
            "limit",
            format!("must be from 1 to {}", super::MAX_PAGE),
        ));
    }
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| AppError::field("cursor", "is not a cursor this API returned"))
        })
        .transpose()?;
    if let Some(outcome) = &q.outcome
        && !["success", "failure", "denied"].contains(&outcome.as_str())
    {
        return Err(AppError::field(
            "outcome",
            "must be success, failure or denied",
        ));
    }
    let filter = AuditFilter {
        action: q.action.clone(),
        actor: q.actor.clone(),
        resource_kind: q.resource_kind.clone(),
        outcome: q.outcome.clone(),
        from: time_param("from", &q.from)?,
        to: time_param("to", &q.to)?,
    };
    let mut tx = state.store().org_read(scope).await?;
    let mut rows = tx.list_audit(&filter, before, limit + 1).await?;
    tx.commit().await?;
    let next_cursor = if rows.len() > usize::try_from(limit).unwrap_or(0) {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        rows.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        items: rows.into_iter().map(item).collect(),
        next_cursor,
    }))
}

/// Verifies the organization's whole chain against the server's checkpoint key.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = Object, description = "The verification report: `broken` is null for an intact chain"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn verify_audit(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<axum::Json<VerifyReport>, AppError> {
    let scope = scoped.require(Action::View, Resource::Audit)?;
    let mut tx = state.store().org_read(scope).await?;
    let (entries, checkpoints) = tx.audit_chain().await?;
    tx.commit().await?;
    let key = state.keys().audit_signing().verifying_key();
    let org: OrgId = scope.org();
    let report =
        tokio::task::spawn_blocking(move || audit::verify(org, &entries, &checkpoints, &key))
            .await
            .map_err(AppError::internal)?;
    Ok(axum::Json(report))
}

/// Exports the whole chain with its checkpoints and the public key, for offline verification.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = Object, description = "An audit export: org, entries, checkpoints"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn export_audit(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    let scope = scoped.require(Action::Export, Resource::Audit)?;
    let mut tx = state.store().org_read(scope).await?;
    let (entries, checkpoints) = tx.audit_chain().await?;
    tx.commit().await?;
    let export = AuditExport {
        org: scope.org(),
        entries,
        checkpoints,
    };
    let mut value = serde_json::to_value(&export).map_err(AppError::internal)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "public_key".to_owned(),
            serde_json::Value::String(hex::encode(
                state.keys().audit_signing().verifying_key().to_bytes(),
            )),
        );
    }
    Ok(axum::Json(value))
}
