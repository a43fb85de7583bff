//! Access lists shared by proxy hosts: address rules and basic-auth users (password hashes
//! only) kept once and named by hosts with `access_list_id`. A change reaches every agent
//! whose hosts use the list; a list in use cannot be deleted.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use infrapilot_core::ids::{AccessListId, AgentId};
use infrapilot_core::nginx::AccessList;
use infrapilot_core::rbac::{Action, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{audit, display_name};
use crate::AppState;
use crate::auth::{ClientIp, Scoped};
use crate::error::{ApiJson, AppError, Problem};
use crate::store::{AccessListRecord, OrgTx};
use crate::util::{new_id, now_micros, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_access_lists, create_access_list))
        .routes(routes!(
            get_access_list,
            update_access_list,
            delete_access_list
        ))
}

/// An access list to create or change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "office",
    "list": {
        "rules": [{"action": "allow", "cidr": "203.0.113.0/24"}],
        "users": [{"username": "ops", "password_hash": "$apr1$abcdefgh$0123456789abcdefghijkl"}],
        "satisfy": "any"
    }
}))]
pub struct AccessListBody {
    /// A name to recognise it by (1–100 characters), unique in the organization.
    pub name: String,
    /// `{"rules": [{"action": "allow"|"deny", "cidr": "10.0.0.0/8"}], "users":
    /// [{"username", "password_hash"}], "satisfy": "any"|"all"}`.
    #[schema(value_type = Object)]
    pub list: Value,
}

/// An access list with the hosts that use it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessListView {
    /// Its id (what hosts name as `access_list_id`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The rules and users.
    #[schema(value_type = Object)]
    pub list: Value,
    /// The proxy hosts that use it.
    pub hosts: Vec<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

async fn view(tx: &mut OrgTx, r: &AccessListRecord) -> Result<AccessListView, AppError> {
    let hosts = tx.hosts_using_access_list(r.id).await?;
    Ok(AccessListView {
        id: r.id.to_string(),
        name: r.name.clone(),
        list: serde_json::to_value(&r.list).map_err(AppError::internal)?,
        hosts: hosts.into_iter().map(|(h, _)| h).collect(),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    })
}

fn checked(body: &AccessListBody) -> Result<(String, AccessList), AppError> {
    let name = display_name("name", &body.name)?;
    let list: AccessList = serde_path_to_error::deserialize(&body.list)
        .map_err(|e| super::proxy::field_error("list", &body.list, e))?;
    if list.rules.is_empty() && list.users.is_empty() {
        return Err(AppError::field(
            "list",
            "needs at least one address rule or user",
        ));
    }
    Ok((name, list))
}

/// Every shared access list with the hosts that use it.
#[utoipa::path(get, path = "/api/v1/access-lists", tag = "proxy", security(("bearer" = [])), responses(
    (status = 200, body = Vec<AccessListView>),
))]
pub async fn list_access_lists(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<axum::Json<Vec<AccessListView>>, AppError> {
    let scope = scoped.require(Action::View, Resource::ProxyHost)?;
    let mut tx = state.store().org_read(scope).await?;
    let mut out = Vec::new();
    for r in tx.list_access_lists().await? {
        out.push(view(&mut tx, &r).await?);
    }
    tx.commit().await?;
    Ok(axum::Json(out))
}

/// Creates a shared access list (audited).
#[utoipa::path(post, path = "/api/v1/access-lists", tag = "proxy", security(("bearer" = [])),
    request_body = AccessListBody, responses(
    (status = 201, body = AccessListView),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_access_list(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<AccessListBody>,
) -> Result<(StatusCode, axum::Json<AccessListView>), AppError> {
    let scope = scoped.require(Action::Create, Resource::ProxyHost)?;
    let (name, list) = checked(&body)?;
    let now = now_micros();
    let record = AccessListRecord {
        id: AccessListId::from_uuid(new_id()),
        name,
        list,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.store().org(scope).await?;
    tx.insert_access_list(&record).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "access_list.create",
        "access_list",
        record.id,
        json!({"name": record.name, "rules": record.list.rules.len(), "users": record.list.users.len()}),
    )
    .await?;
    let out = view(&mut tx, &record).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

/// One shared access list.
#[utoipa::path(get, path = "/api/v1/access-lists/{id}", tag = "proxy", security(("bearer" = [])),
    params(("id" = AccessListId, Path, description = "The access list's id")), responses(
    (status = 200, body = AccessListView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_access_list(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AccessListId>,
) -> Result<axum::Json<AccessListView>, AppError> {
    let scope = scoped.require(Action::View, Resource::ProxyHost)?;
    let mut tx = state.store().org_read(scope).await?;
    let record = tx.access_list(id).await?;
    let out = view(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(axum::Json(out))
}

/// Changes a shared access list (audited): every agent whose hosts use it gets its new state.
#[utoipa::path(put, path = "/api/v1/access-lists/{id}", tag = "proxy", security(("bearer" = [])),
    params(("id" = AccessListId, Path, description = "The access list's id")),
    request_body = AccessListBody, responses(
    (status = 200, body = AccessListView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_access_list(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AccessListId>,
    ApiJson(body): ApiJson<AccessListBody>,
) -> Result<axum::Json<AccessListView>, AppError> {
    let scope = scoped.require(Action::Update, Resource::ProxyHost)?;
    let (name, list) = checked(&body)?;
    let mut tx = state.store().org(scope).await?;
    let mut record = tx.access_list(id).await?;
    record.name = name;
    record.list = list;
    record.updated_at = now_micros();
    tx.update_access_list(&record).await?;
    let agents: BTreeSet<AgentId> = tx
        .hosts_using_access_list(id)
        .await?
        .into_iter()
        .filter_map(|(_, agent)| agent.parse().ok())
        .collect();
    for agent in &agents {
        tx.bump_desired_revision(*agent).await?;
    }
    audit(
        &state,
        &mut tx,
        ip,
        "access_list.update",
        "access_list",
        id,
        json!({"name": record.name, "rules": record.list.rules.len(), "users": record.list.users.len(),
               "agents": agents.len()}),
    )
    .await?;
    let out = view(&mut tx, &record).await?;
    tx.commit().await?;
    for agent in agents {
        crate::ops::desired_state::push(&state, scope.org(), agent).await;
    }
    Ok(axum::Json(out))
}

/// Deletes a shared access list (audited); refused while a host uses it.
#[utoipa::path(delete, path = "/api/v1/access-lists/{id}", tag = "proxy", security(("bearer" = [])),
    params(("id" = AccessListId, Path, description = "The access list's id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_access_list(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AccessListId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::ProxyHost)?;
    let mut tx = state.store().org(scope).await?;
    let record = tx.access_list(id).await?;
    let hosts = tx.hosts_using_access_list(id).await?;
    if !hosts.is_empty() {
        let names: Vec<String> = hosts.into_iter().map(|(h, _)| h).collect();
        return Err(AppError::Conflict(format!(
            "the access list is used by proxy hosts {}; change them first",
            names.join(", ")
        )));
    }
    tx.delete_access_list(id).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "access_list.delete",
        "access_list",
        id,
        json!({"name": record.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
