//! Enrolled agents: list, inspect, rename/relabel/disable, delete, and live checks (ping,
//! info) through the agent's stream. A command to an offline agent answers 503.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use infrapilot_core::ids::AgentId;
use infrapilot_core::rbac::{Action, Resource};
use infrapilot_proto::v1::{Inspect, Ping, command};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageQuery, audit, display_name};
use crate::AppState;
use crate::agents::{CommandError, is_online, send_command};
use crate::auth::{ClientIp, Scoped};
use crate::error::{ApiJson, AppError, Problem};
use crate::store::AgentRecord;
use crate::util::{now_micros, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents))
        .routes(routes!(get_agent, update_agent, delete_agent))
        .routes(routes!(ping_agent))
        .routes(routes!(agent_info))
}

/// How long an API call waits for an agent's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// An agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Its display name.
    pub name: String,
    /// The host name it reported.
    pub hostname: String,
    /// The agent's version.
    pub version: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `online`, `offline` or `disabled`.
    pub status: &'static str,
    /// When it was last heard from (RFC 3339).
    pub last_seen_at: Option<String>,
    /// When its current connection opened (RFC 3339), while online.
    pub connected_at: Option<String>,
    /// The last heartbeat: host metrics and container summaries.
    #[schema(value_type = Object)]
    pub heartbeat: serde_json::Value,
    /// When its client certificate expires (RFC 3339); absent for the built-in agent, which
    /// has none.
    pub certificate_expires_at: Option<String>,
    /// When it enrolled (RFC 3339).
    pub created_at: String,
}

fn view(state: &AppState, a: AgentRecord, now: i64) -> Agent {
    let online = is_online(
        a.connected_replica.as_deref(),
        a.last_seen_at,
        now,
        state.config().heartbeat,
    );
    Agent {
        id: a.id,
        name: a.name,
        hostname: a.hostname,
        version: a.version,
        labels: a
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        status: if a.disabled {
            "disabled"
        } else if online {
            "online"
        } else {
            "offline"
        },
        last_seen_at: a.last_seen_at.map(rfc3339),
        connected_at: if online {
            a.connected_at.map(rfc3339)
        } else {
            None
        },
        heartbeat: a.heartbeat,
        certificate_expires_at: (a.cert_not_after > 0)
            .then(|| rfc3339(a.cert_not_after * 1_000_000)),
        created_at: rfc3339(a.created_at),
    }
}

/// Changes to an agent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    /// A new display name.
    pub name: Option<String>,
    /// Replaces the labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Disables (refuses its connections, closes its stream) or re-enables the agent.
    pub disabled: Option<bool>,
}

/// A ping's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct PingResult {
    /// The round trip through the agent's stream, milliseconds.
    pub round_trip_ms: f64,
}

/// The API error for a command that got no result: 503 for an offline agent or a timeout,
/// and the agent's own code and message (mapped to a status) for its errors.
pub(crate) fn command_error(e: CommandError) -> AppError {
    match e {
        CommandError::Offline | CommandError::Closed => AppError::Unavailable(format!(
            "{e}: it has no open connection to the control plane; check the agent's host and logs"
        )),
        CommandError::Timeout(_) => AppError::Unavailable(e.to_string()),
        CommandError::Agent { code, message } => AppError::Upstream { code, message },
    }
}

/// Lists agents.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<Agent>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_agents(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(page): Query<PageQuery>,
) -> Result<axum::Json<Page<Agent>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Agent)?;
    let limit = page.fetch_limit()?;
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx.list_agents(page.after()?, limit).await?;
    tx.commit().await?;
    let now = now_micros();
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        |a| (a.created_at, a.id.to_string()),
        |a| view(&state, a, now),
    )))
}

/// One agent, with its last heartbeat.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 200, body = Agent),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_agent(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
) -> Result<axum::Json<Agent>, AppError> {
    let scope = scoped.require(Action::View, Resource::Agent)?;
    let mut tx = state.store().org_read(scope).await?;
    let agent = tx.agent(id).await?;
    tx.commit().await?;
    Ok(axum::Json(view(&state, agent, now_micros())))
}

/// Renames, relabels, disables or re-enables an agent. Disabling closes its stream at once.
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), request_body = UpdateAgent, responses(
    (status = 200, body = Agent),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_agent(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AgentId>,
    ApiJson(body): ApiJson<UpdateAgent>,
) -> Result<axum::Json<Agent>, AppError> {
    let scope = scoped.require(Action::Update, Resource::Agent)?;
    let mut tx = state.store().org(scope).await?;
    let mut agent = tx.agent(id).await?;
    if let Some(name) = &body.name {
        agent.name = display_name("name", name)?;
    }
    if let Some(labels) = &body.labels {
        agent.labels = super::enrollment::labels_from(labels)?;
    }
    if let Some(disabled) = body.disabled {
        agent.disabled = disabled;
    }
    tx.update_agent(&agent).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "agent.update",
        "agent",
        id,
        serde_json::json!({
            "name": body.name, "labels": body.labels, "disabled": body.disabled,
        }),
    )
    .await?;
    tx.commit().await?;
    if agent.disabled {
        state.hub().disconnect(id, "this agent was disabled", true);
    }
    Ok(axum::Json(view(&state, agent, now_micros())))
}

/// Deletes an agent: its connection is closed and refused from now on.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 204, description = "Deleted"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_agent(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AgentId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Agent)?;
    let mut tx = state.store().org(scope).await?;
    let agent = tx.agent(id).await?;
    tx.delete_agent(id).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "agent.delete",
        "agent",
        id,
        serde_json::json!({"name": agent.name}),
    )
    .await?;
    tx.commit().await?;
    state.hub().disconnect(id, "this agent was deleted", true);
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a ping through the agent's stream and reports the round trip.
#[utoipa::path(post, path = "/api/v1/agents/{id}/ping", tag = "agents", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 200, body = PingResult),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json", description = "The agent is offline"),
))]
pub async fn ping_agent(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
) -> Result<axum::Json<PingResult>, AppError> {
    let scope = scoped.require(Action::View, Resource::Agent)?;
    let mut tx = state.store().org_read(scope).await?;
    tx.agent(id).await?;
    tx.commit().await?;
    let payload = crate::util::random::<16>().to_vec();
    let start = std::time::Instant::now();
    let echoed = send_command(
        &state,
        scope.org(),
        id,
        command::Kind::Ping(Ping {
            payload: payload.clone(),
        }),
        COMMAND_TIMEOUT,
    )
    .await
    .map_err(command_error)?;
    let round_trip_ms = start.elapsed().as_secs_f64() * 1000.0;
    if echoed != payload {
        return Err(AppError::Conflict(
            "the agent echoed a different payload".to_owned(),
        ));
    }
    Ok(axum::Json(PingResult { round_trip_ms }))
}

/// Asks the agent to describe itself: version, host, Docker availability.
#[utoipa::path(get, path = "/api/v1/agents/{id}/info", tag = "agents", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 200, body = Object),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json", description = "The agent is offline"),
))]
pub async fn agent_info(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    let scope = scoped.require(Action::View, Resource::Agent)?;
    let mut tx = state.store().org_read(scope).await?;
    tx.agent(id).await?;
    tx.commit().await?;
    let payload = send_command(
        &state,
        scope.org(),
        id,
        command::Kind::Inspect(Inspect {}),
        COMMAND_TIMEOUT,
    )
    .await
    .map_err(command_error)?;
    let value = serde_json::from_slice(&payload).map_err(|e| {
        AppError::Conflict(format!(
            "the agent answered something that is not JSON: {e}"
        ))
    })?;
    Ok(axum::Json(value))
}
