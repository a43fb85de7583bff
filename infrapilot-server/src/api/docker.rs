//! Docker operations on an agent's engine, under `/api/v1/agents/{id}/…`: containers (list,
//! inspect, start, stop, restart, delete, stats), logs, exec, compose stacks, networks, images
//! and volumes.
//!
//! Every call goes to the agent as a [`DockerRequest`] over its stream ([`send_command`], which
//! also reaches agents held by another replica). Live streams — logs follow, stats, the
//! interactive terminal — are WebSockets; when another replica holds the agent's stream, it
//! relays them ([`crate::agents::open_stream`]).
//!
//! Mutating container operations pass the policy engine first ([`gate`]) with the container's
//! attributes ([`policy_resource`]) and the agent's labels: `block` refuses with 403 and the
//! policies' messages, `warn` proceeds and returns the warnings beside the result. Every
//! mutating operation is written to the audit log, with its outcome. Docker's own errors come
//! back with Docker's message and a matching status (404, 409, 400, …); an offline agent is a
//! 503.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use infrapilot_core::docker::{
    ActionReport, ContainerDetail, ContainerPath, ContainerRef, ContainerSummary, DockerRequest,
    ExecCommand, ExecResult, ExecUser, ImageDetail, ImageRef, ImageSummary, LogsPage, MAX_LOG_TAIL,
    MAX_STOP_TIMEOUT, NetworkAttachment, NetworkDetail, NetworkRef, NetworkSummary, ProjectName,
    PruneReport, Stack, StackReport, StackVerb, StatsSample, VolumeRef, VolumeSummary, confirm,
    policy_resource,
};
use infrapilot_core::ids::AgentId;
use infrapilot_core::policy::ActionKind;
use infrapilot_core::rbac::{Action, Resource};
use infrapilot_proto::v1::{Docker, Resize, command, command_input};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::agents::command_error;
use super::audit_outcome;
use crate::AppState;
use crate::agents::{CommandStream, StreamEvent, send_command};
use crate::auth::{ClientIp, Liveness, Revoked, Scoped};
use crate::error::{ApiJson, AppError, PolicyNotice, Problem};
use crate::ops::policy_gate::{Gated, gate};
use crate::store::{AgentRecord, OrgScope};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_containers))
        .routes(routes!(inspect_container, delete_container))
        .routes(routes!(start_container))
        .routes(routes!(stop_container))
        .routes(routes!(restart_container))
        .routes(routes!(container_stats))
        .routes(routes!(container_stats_ws))
        .routes(routes!(container_logs))
        .routes(routes!(container_logs_ws))
        .routes(routes!(exec_once))
        .routes(routes!(exec_ws))
        .routes(routes!(container_networks))
        .routes(routes!(list_stacks))
        .routes(routes!(stack_action))
        .routes(routes!(list_networks))
        .routes(routes!(inspect_network))
        .routes(routes!(connect_network))
        .routes(routes!(disconnect_network))
        .routes(routes!(list_images))
        .routes(routes!(inspect_image, remove_image))
        .routes(routes!(prune_images))
        .routes(routes!(list_volumes))
        .routes(routes!(inspect_volume, remove_volume))
        .routes(routes!(prune_volumes))
}

/// How long a quick Docker call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a call that waits on containers (stop, restart, stacks, prune) may take beyond its
/// own stop timeout.
const SLOW_TIMEOUT: Duration = Duration::from_secs(120);

/// The result of a mutating operation, with the warnings of the policies that fired.
#[derive(Debug, Serialize, ToSchema)]
pub struct Outcome<T> {
    /// What the agent reported.
    pub result: T,
    /// Policies with the action `warn` that fired; the operation went ahead.
    pub warnings: Vec<PolicyNotice>,
}

fn container_ref(raw: &str) -> Result<ContainerRef, AppError> {
    Ok(ContainerRef::parse(raw)?)
}

async fn agent_record(
    state: &AppState,
    scope: &OrgScope,
    id: AgentId,
) -> Result<AgentRecord, AppError> {
    let mut tx = state.store().org_read(scope).await?;
    let agent = tx.agent(id).await?;
    tx.commit().await?;
    Ok(agent)
}

fn docker_kind(request: &DockerRequest) -> command::Kind {
    command::Kind::Docker(Docker {
        request_json: request.to_json(),
    })
}

/// Sends one request and decodes the agent's answer.
async fn call<T: DeserializeOwned>(
    state: &AppState,
    scope: &OrgScope,
    agent: AgentId,
    request: &DockerRequest,
    timeout: Duration,
) -> Result<T, AppError> {
    let payload = send_command(state, scope.org(), agent, docker_kind(request), timeout)
        .await
        .map_err(command_error)?;
    serde_json::from_slice(&payload).map_err(|e| AppError::Upstream {
        code: "internal".to_owned(),
        message: format!(
            "the agent's answer to {} is not what this server expects (is the agent older or newer?): {e}",
            request.op()
        ),
    })
}

async fn inspect(
    state: &AppState,
    scope: &OrgScope,
    agent: AgentId,
    container: &ContainerRef,
) -> Result<ContainerDetail, AppError> {
    call(
        state,
        scope,
        agent,
        &DockerRequest::InspectContainer {
            container: container.clone(),
        },
        CALL_TIMEOUT,
    )
    .await
}

/// Writes the audit entry of a mutating operation: success with `details`, or failure with the
/// error's message.
async fn audit_result<T>(
    state: &AppState,
    scope: &OrgScope,
    ip: Option<std::net::IpAddr>,
    action: &'static str,
    resource: (&'static str, String),
    mut details: Value,
    result: &Result<T, AppError>,
) -> Result<(), AppError> {
    let outcome = match result {
        Ok(_) => infrapilot_core::audit::Outcome::Success,
        Err(e) => {
            details["error"] = json!(e.problem().detail);
            infrapilot_core::audit::Outcome::Failure
        }
    };
    let mut tx = state.store().org(scope).await?;
    audit_outcome(state, &mut tx, ip, action, resource, outcome, details).await?;
    tx.commit().await?;
    Ok(())
}

/// What a gated container operation needs.
struct ContainerOp<'a> {
    agent: &'a AgentRecord,
    container: &'a ContainerRef,
    operation: ActionKind,
    audit_action: &'static str,
    details: Value,
    timeout: Duration,
}

/// Inspects the container, checks the confirmation, passes the policies, runs `request` and
/// audits the result.
async fn gated_container_op<T: DeserializeOwned>(
    state: &AppState,
    scope: &OrgScope,
    ip: Option<std::net::IpAddr>,
    op: ContainerOp<'_>,
    confirmation: Option<Option<&str>>,
    request: DockerRequest,
) -> Result<Outcome<T>, AppError> {
    let detail = inspect(state, scope, op.agent.id, op.container).await?;
    let name = detail.summary.name.clone();
    if let Some(given) = confirmation {
        confirm("confirm", given, &name)?;
    }
    let resource = policy_resource(&detail);
    let warnings = gate(
        state,
        scope,
        ip,
        op.audit_action,
        Gated {
            agent: op.agent,
            operation: op.operation,
            resource_kind: "container",
            resource_name: &name,
            resource: &resource,
        },
    )
    .await?;
    let result = call::<T>(state, scope, op.agent.id, &request, op.timeout).await;
    let mut details = op.details;
    details["agent_id"] = json!(op.agent.id);
    details["container_id"] = json!(detail.summary.id);
    if !warnings.is_empty() {
        details["warnings"] = json!(warnings.iter().map(|w| &w.policy).collect::<Vec<_>>());
    }
    audit_result(
        state,
        scope,
        ip,
        op.audit_action,
        ("container", name),
        details,
        &result,
    )
    .await?;
    Ok(Outcome {
        result: result?,
        warnings,
    })
}

/// Whether to include stopped containers.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Include stopped containers (default true).
    pub all: Option<bool>,
}

/// Lists the agent's containers with CPU, memory, restart count, health, ports, labels and
/// compose project.
#[utoipa::path(get, path = "/api/v1/agents/{id}/containers", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ListQuery), responses(
    (status = 200, body = Vec<ContainerSummary>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json", description = "The agent is offline"),
))]
pub async fn list_containers(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<ContainerSummary>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Container)?;
    agent_record(&state, scope, id).await?;
    let request = DockerRequest::ListContainers {
        all: q.all.unwrap_or(true),
    };
    Ok(axum::Json(
        call(&state, scope, id, &request, CALL_TIMEOUT).await?,
    ))
}

/// One container in detail: configuration, mounts, networks and the *names* of its
/// environment variables (values never leave the host).
#[utoipa::path(get, path = "/api/v1/agents/{id}/containers/{container}", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name")), responses(
    (status = 200, body = ContainerDetail),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn inspect_container(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((id, container)): Path<(AgentId, String)>,
) -> Result<axum::Json<ContainerDetail>, AppError> {
    let scope = scoped.require(Action::View, Resource::Container)?;
    let container = container_ref(&container)?;
    agent_record(&state, scope, id).await?;
    Ok(axum::Json(inspect(&state, scope, id, &container).await?))
}

/// Starts a container (after the policies allow it).
#[utoipa::path(post, path = "/api/v1/agents/{id}/containers/{container}/start", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name")), responses(
    (status = 200, body = Outcome<ActionReport>),
    (status = 403, body = Problem, content_type = "application/problem+json", description = "A policy blocked it"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn start_container(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path((id, container)): Path<(AgentId, String)>,
) -> Result<axum::Json<Outcome<ActionReport>>, AppError> {
    let scope = scoped.require(Action::Operate, Resource::Container)?;
    let container = container_ref(&container)?;
    let agent = agent_record(&state, scope, id).await?;
    let op = ContainerOp {
        agent: &agent,
        container: &container,
        operation: ActionKind::Start,
        audit_action: "container.start",
        details: json!({}),
        timeout: CALL_TIMEOUT,
    };
    let request = DockerRequest::StartContainer {
        container: container.clone(),
    };
    Ok(axum::Json(
        gated_container_op(&state, scope, ip, op, None, request).await?,
    ))
}

/// How long to wait for a graceful stop.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StopQuery {
    /// Seconds between SIGTERM and SIGKILL (0–600; Docker's default, 10, when absent).
    pub timeout: Option<u32>,
}

fn stop_timeout(q: &StopQuery) -> Result<(Option<u32>, Duration), AppError> {
    if let Some(t) = q.timeout
        && t > MAX_STOP_TIMEOUT
    {
        return Err(AppError::field(
            "timeout",
            format!("must be from 0 to {MAX_STOP_TIMEOUT} seconds"),
        ));
    }
    let wait = CALL_TIMEOUT + Duration::from_secs(u64::from(q.timeout.unwrap_or(10)));
    Ok((q.timeout, wait))
}

/// Stops a container: SIGTERM, then SIGKILL after the timeout.
#[utoipa::path(post, path = "/api/v1/agents/{id}/containers/{container}/stop", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name"), StopQuery), responses(
    (status = 200, body = Outcome<ActionReport>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn stop_container(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path((id, container)): Path<(AgentId, String)>,
    Query(q): Query<StopQuery>,
) -> Result<axum::Json<Outcome<ActionReport>>, AppError> {
    let scope = scoped.require(Action::Operate, Resource::Container)?;
    let container = container_ref(&container)?;
    let (timeout_secs, wait) = stop_timeout(&q)?;
    let agent = agent_record(&state, scope, id).await?;
    let op = ContainerOp {
        agent: &agent,
        container: &container,
        operation: ActionKind::Stop,
        audit_action: "container.stop",
        details: json!({"timeout_secs": timeout_secs}),
        timeout: wait,
    };
    let request = DockerRequest::StopContainer {
        container: container.clone(),
        timeout_secs,
    };
    Ok(axum::Json(
        gated_container_op(&state, scope, ip, op, None, request).await?,
    ))
}

/// Restarts a container.
#[utoipa::path(post, path = "/api/v1/agents/{id}/containers/{container}/restart", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name"), StopQuery), responses(
    (status = 200, body = Outcome<ActionReport>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn restart_container(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path((id, container)): Path<(AgentId, String)>,
    Query(q): Query<StopQuery>,
) -> Result<axum::Json<Outcome<ActionReport>>, AppError> {
    let scope = scoped.require(Action::Operate, Resource::Container)?;
    let container = container_ref(&container)?;
    let (timeout_secs, wait) = stop_timeout(&q)?;
    let agent = agent_record(&state, scope, id).await?;
    let op = ContainerOp {
        agent: &agent,
        container: &container,
        operation: ActionKind::Restart,
        audit_action: "container.restart",
        details: json!({"timeout_secs": timeout_secs}),
        timeout: wait,
    };
    let request = DockerRequest::RestartContainer {
        container: container.clone(),
        timeout_secs,
    };
    Ok(axum::Json(
        gated_container_op(&state, scope, ip, op, None, request).await?,
    ))
}

/// How to delete a container.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// The container's name, typed to confirm (required).
    pub confirm: Option<String>,
    /// Kill it first if it runs.
    pub force: Option<bool>,
    /// Remove its anonymous volumes too.
    pub volumes: Option<bool>,
}

/// Deletes a container. The container's name must be repeated in `confirm`.
#[utoipa::path(delete, path = "/api/v1/agents/{id}/containers/{container}", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name"), DeleteQuery), responses(
    (status = 200, body = Outcome<ActionReport>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "It runs and force was not given"),
    (status = 422, body = Problem, content_type = "application/problem+json", description = "The confirmation is missing or wrong"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_container(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path((id, container)): Path<(AgentId, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<axum::Json<Outcome<ActionReport>>, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Container)?;
    let container = container_ref(&container)?;
    let agent = agent_record(&state, scope, id).await?;
    let force = q.force.unwrap_or(false);
    let volumes = q.volumes.unwrap_or(false);
    let op = ContainerOp {
        agent: &agent,
        container: &container,
        operation: ActionKind::Delete,
        audit_action: "container.delete",
        details: json!({"force": force, "volumes": volumes}),
        timeout: SLOW_TIMEOUT,
    };
    let request = DockerRequest::RemoveContainer {
        container: container.clone(),
        force,
        volumes,
    };
    Ok(axum::Json(
        gated_container_op(&state, scope, ip, op, Some(q.confirm.as_deref()), request).await?,
    ))
}

/// One resource-usage sample of a container.
#[utoipa::path(get, path = "/api/v1/agents/{id}/containers/{container}/stats", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name")), responses(
    (status = 200, body = StatsSample),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn container_stats(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((id, container)): Path<(AgentId, String)>,
) -> Result<axum::Json<StatsSample>, AppError> {
    let scope = scoped.require(Action::View, Resource::Container)?;
    let container = container_ref(&container)?;
    agent_record(&state, scope, id).await?;
    let request = DockerRequest::Stats {
        container,
        stream: false,
    };
    Ok(axum::Json(
        call(&state, scope, id, &request, CALL_TIMEOUT).await?,
    ))
}

/// Opens a streamed command on the agent, wherever its stream is (relayed when another
/// replica holds it).
async fn open_stream(
    state: &AppState,
    scope: &OrgScope,
    agent: &AgentRecord,
    request: &DockerRequest,
) -> Result<CommandStream, AppError> {
    crate::agents::open_stream(state, scope.org(), agent.id, docker_kind(request))
        .await
        .map_err(command_error)
}

/// The upgrade, or a problem saying this endpoint is a WebSocket.
fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, AppError> {
    ws.map_err(|e| {
        AppError::Malformed(format!(
            "this endpoint is a WebSocket: connect with Upgrade: websocket ({e})"
        ))
    })
}

/// A text frame with a JSON body.
fn json_frame(value: &Value) -> Message {
    Message::Text(value.to_string().into())
}

/// The frame that reports an error and ends a WebSocket.
fn error_frame(e: &AppError) -> Message {
    json_frame(&json!({"type": "error", "problem": e.problem()}))
}

/// Relays a stream's chunks as text frames until it ends, the client goes away or the
/// request's authority ends (an error frame with the refusal, then close).
async fn relay_text_stream(mut socket: WebSocket, mut stream: CommandStream, mut revoked: Revoked) {
    loop {
        tokio::select! {
            refusal = &mut revoked => {
                let _ = socket.send(error_frame(&refusal)).await;
                break;
            }
            event = stream.next() => match event {
                Some(StreamEvent::Chunk(bytes)) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Some(StreamEvent::Done(_)) | None => {
                    let _ = socket.send(json_frame(&json!({"type": "end"}))).await;
                    break;
                }
                Some(StreamEvent::Failed(e)) => {
                    let _ = socket.send(error_frame(&command_error(e))).await;
                    break;
                }
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// Streams resource-usage samples over a WebSocket: one text frame of [`StatsSample`] JSON
/// about every second, until the client closes, or `{"type":"error",…}` within seconds of its
/// session or token being revoked or its member losing access.
#[utoipa::path(get, path = "/api/v1/agents/{id}/containers/{container}/stats/ws", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name")), responses(
    (status = 400, body = Problem, content_type = "application/problem+json", description = "Not a WebSocket request"),
    (status = 101, description = "WebSocket: text frames of StatsSample JSON"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn container_stats_ws(
    State(state): State<AppState>,
    scoped: Scoped,
    liveness: Liveness,
    Path((id, container)): Path<(AgentId, String)>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let scope = scoped.require(Action::View, Resource::Container)?;
    let container = container_ref(&container)?;
    let agent = agent_record(&state, scope, id).await?;
    let ws = upgrade(ws)?;
    let stream = open_stream(
        &state,
        scope,
        &agent,
        &DockerRequest::Stats {
            container,
            stream: true,
        },
    )
    .await?;
    let revoked = liveness.watch(Action::View, Resource::Container);
    Ok(ws.on_upgrade(move |socket| relay_text_stream(socket, stream, revoked)))
}

/// Which log lines.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Lines from the end (1–10000, default 200).
    pub tail: Option<u32>,
    /// Only lines at or after this time: unix seconds or RFC 3339.
    pub since: Option<String>,
    /// Only lines before this time: unix seconds or RFC 3339.
    pub until: Option<String>,
}

fn parse_time(field: &str, raw: Option<&str>) -> Result<Option<i64>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    if let Ok(secs) = raw.parse::<i64>() {
        return Ok(Some(secs));
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(t.unix_timestamp()))
        .map_err(|_| {
            AppError::field(
                field,
                "must be unix seconds or an RFC 3339 time (2026-01-31T12:00:00Z)",
            )
        })
}

fn logs_request(
    container: ContainerRef,
    q: &LogsQuery,
    follow: bool,
) -> Result<DockerRequest, AppError> {
    if let Some(t) = q.tail
        && !(1..=MAX_LOG_TAIL).contains(&t)
    {
        return Err(AppError::field(
            "tail",
            format!("must be from 1 to {MAX_LOG_TAIL}"),
        ));
    }
    let since = parse_time("since", q.since.as_deref())?;
    let until = parse_time("until", q.until.as_deref())?;
    if let (Some(s), Some(u)) = (since, until)
        && u <= s
    {
        return Err(AppError::field("until", "must be after since"));
    }
    Ok(DockerRequest::Logs {
        container,
        tail: q.tail,
        since,
        until,
        follow,
    })
}

/// The last lines of a container's log (stdout and stderr), with timestamps.
#[utoipa::path(get, path = "/api/v1/agents/{id}/containers/{container}/logs", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name"), LogsQuery), responses(
    (status = 200, body = LogsPage),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn container_logs(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((id, container)): Path<(AgentId, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<axum::Json<LogsPage>, AppError> {
    let scope = scoped.require(Action::View, Resource::Container)?;
    let request = logs_request(container_ref(&container)?, &q, false)?;
    agent_record(&state, scope, id).await?;
    Ok(axum::Json(
        call(&state, scope, id, &request, CALL_TIMEOUT).await?,
    ))
}

/// Follows a container's log over a WebSocket: the last `tail` lines, then new lines as they
/// come. Each text frame is a JSON array of log lines; `{"type":"end"}` when the container's
/// log ends, `{"type":"error",…}` on failure or within seconds of its session or token being
/// revoked or its member losing access.
#[utoipa::path(get, path = "/api/v1/agents/{id}/containers/{container}/logs/ws", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name"), LogsQuery), responses(
    (status = 400, body = Problem, content_type = "application/problem+json", description = "Not a WebSocket request"),
    (status = 101, description = "WebSocket: text frames, each a JSON array of LogLine"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn container_logs_ws(
    State(state): State<AppState>,
    scoped: Scoped,
    liveness: Liveness,
    Path((id, container)): Path<(AgentId, String)>,
    Query(q): Query<LogsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let scope = scoped.require(Action::View, Resource::Container)?;
    let request = logs_request(container_ref(&container)?, &q, true)?;
    let agent = agent_record(&state, scope, id).await?;
    let ws = upgrade(ws)?;
    let stream = open_stream(&state, scope, &agent, &request).await?;
    let revoked = liveness.watch(Action::View, Resource::Container);
    Ok(ws.on_upgrade(move |socket| relay_text_stream(socket, stream, revoked)))
}

/// A command to run in a container.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecInput {
    /// The argument vector (`["sh", "-c", "ls /"]`); no shell is involved unless named.
    #[schema(value_type = Vec<String>)]
    pub cmd: ExecCommand,
    /// Allocate a terminal (merges stderr into stdout).
    #[serde(default)]
    pub tty: bool,
    /// Run as this user (`name`, `uid`, `uid:gid`).
    #[schema(value_type = Option<String>)]
    pub user: Option<ExecUser>,
    /// The working directory.
    #[schema(value_type = Option<String>)]
    pub workdir: Option<ContainerPath>,
    /// Initial terminal rows (interactive).
    pub rows: Option<u16>,
    /// Initial terminal columns (interactive).
    pub cols: Option<u16>,
}

async fn gate_exec(
    state: &AppState,
    scope: &OrgScope,
    ip: Option<std::net::IpAddr>,
    agent: &AgentRecord,
    container: &ContainerRef,
) -> Result<(ContainerDetail, Vec<PolicyNotice>), AppError> {
    let detail = inspect(state, scope, agent.id, container).await?;
    let resource = policy_resource(&detail);
    let warnings = gate(
        state,
        scope,
        ip,
        "container.exec",
        Gated {
            agent,
            operation: ActionKind::Exec,
            resource_kind: "container",
            resource_name: &detail.summary.name,
            resource: &resource,
        },
    )
    .await?;
    Ok((detail, warnings))
}

/// Runs a command in a running container and returns its exit code and output (at most 1 MiB
/// per stream is kept).
#[utoipa::path(post, path = "/api/v1/agents/{id}/containers/{container}/exec", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name")),
    request_body = ExecInput, responses(
    (status = 200, body = Outcome<ExecResult>),
    (status = 403, body = Problem, content_type = "application/problem+json", description = "A policy blocked it"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "The container is not running"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn exec_once(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path((id, container)): Path<(AgentId, String)>,
    ApiJson(body): ApiJson<ExecInput>,
) -> Result<axum::Json<Outcome<ExecResult>>, AppError> {
    let scope = scoped.require(Action::Exec, Resource::Container)?;
    let container = container_ref(&container)?;
    let agent = agent_record(&state, scope, id).await?;
    let (detail, warnings) = gate_exec(&state, scope, ip, &agent, &container).await?;
    let request = DockerRequest::Exec {
        container,
        cmd: body.cmd.clone(),
        tty: body.tty,
        interactive: false,
        user: body.user,
        workdir: body.workdir,
        rows: None,
        cols: None,
    };
    let result = call::<ExecResult>(&state, scope, id, &request, SLOW_TIMEOUT).await;
    let exit_code = result.as_ref().ok().and_then(|r| r.exit_code);
    audit_result(
        &state,
        scope,
        ip,
        "container.exec",
        ("container", detail.summary.name),
        json!({"agent_id": id, "cmd": body.cmd.args(), "tty": body.tty, "exit_code": exit_code}),
        &result,
    )
    .await?;
    Ok(axum::Json(Outcome {
        result: result?,
        warnings,
    }))
}

/// A control message of the terminal WebSocket.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TerminalControl {
    Resize { rows: u16, cols: u16 },
    CloseStdin,
}

/// An interactive terminal over a WebSocket.
///
/// 1. The client's first frame is text: the [`ExecInput`] JSON (`{"cmd": ["sh"], "tty": true}`).
/// 2. The server answers `{"type":"started","warnings":[…]}`, or `{"type":"error","problem":…}`
///    and closes (a policy block is a 403 problem).
/// 3. Binary frames from the client are stdin; text frames are `{"type":"resize","rows":…,"cols":…}`
///    or `{"type":"close_stdin"}`.
/// 4. Binary frames from the server are output: the first byte names the stream (1 stdout,
///    2 stderr; with a TTY everything is 1), the rest is raw bytes.
/// 5. When the process ends: `{"type":"exit","exit_code":N}`, then close.
///
/// The terminal ends with `{"type":"error",…}` within seconds of its session or token being
/// revoked or its member losing the role it needs (an operator's, to exec); so do the log and
/// stats WebSockets.
#[utoipa::path(get, path = "/api/v1/agents/{id}/containers/{container}/exec/ws", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name")), responses(
    (status = 400, body = Problem, content_type = "application/problem+json", description = "Not a WebSocket request"),
    (status = 101, description = "WebSocket terminal (see the description)"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn exec_ws(
    State(state): State<AppState>,
    scoped: Scoped,
    liveness: Liveness,
    ClientIp(ip): ClientIp,
    Path((id, container)): Path<(AgentId, String)>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let scope = scoped.require(Action::Exec, Resource::Container)?.clone();
    let container = container_ref(&container)?;
    let agent = agent_record(&state, &scope, id).await?;
    let ws = upgrade(ws)?;
    let revoked = liveness.watch(Action::Exec, Resource::Container);
    Ok(ws.on_upgrade(move |socket| async move {
        terminal(socket, state, scope, ip, agent, container, revoked).await;
    }))
}

async fn terminal(
    mut socket: WebSocket,
    state: AppState,
    scope: OrgScope,
    ip: Option<std::net::IpAddr>,
    agent: AgentRecord,
    container: ContainerRef,
    mut revoked: Revoked,
) {
    // The authority is watched from the upgrade on: a session revoked while the client
    // composes its first frame starts nothing.
    let first = tokio::select! {
        refusal = &mut revoked => Err(refusal),
        frame = tokio::time::timeout(Duration::from_secs(30), socket.recv()) => Ok(frame),
    };
    let start = match first {
        Err(refusal) => Err(refusal),
        Ok(Ok(Some(Ok(Message::Text(text))))) => {
            serde_json::from_str::<ExecInput>(&text).map_err(|e| {
                AppError::field("cmd", format!("the first frame must be the exec JSON: {e}"))
            })
        }
        Ok(_) => Err(AppError::Malformed(
            "the first frame must be a text frame with the exec JSON, within 30 seconds".to_owned(),
        )),
    };
    let started = match start {
        Ok(input) => start_terminal(&state, &scope, ip, &agent, container, input).await,
        Err(e) => Err(e),
    };
    let (mut stream, warnings, name, cmd) = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = socket.send(error_frame(&e)).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    if socket
        .send(json_frame(
            &json!({"type": "started", "warnings": warnings}),
        ))
        .await
        .is_err()
    {
        return;
    }
    let input = stream.input();
    let mut exit_code = None;
    let mut failure = None;
    loop {
        tokio::select! {
            refusal = &mut revoked => {
                failure = Some(refusal.problem().detail);
                let _ = socket.send(error_frame(&refusal)).await;
                break;
            }
            event = stream.next() => match event {
                Some(StreamEvent::Chunk(bytes)) => {
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                Some(StreamEvent::Done(payload)) => {
                    exit_code = serde_json::from_slice::<ExecResult>(&payload).ok().and_then(|r| r.exit_code);
                    let _ = socket.send(json_frame(&json!({"type": "exit", "exit_code": exit_code}))).await;
                    break;
                }
                Some(StreamEvent::Failed(e)) => {
                    let e = command_error(e);
                    failure = Some(e.problem().detail);
                    let _ = socket.send(error_frame(&e)).await;
                    break;
                }
                None => break,
            },
            incoming = socket.recv() => {
                let kind = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(Message::Binary(bytes))) => Some(command_input::Kind::Stdin(bytes.to_vec())),
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<TerminalControl>(&text) {
                        Ok(TerminalControl::Resize { rows, cols }) => Some(command_input::Kind::Resize(Resize {
                            rows: u32::from(rows),
                            cols: u32::from(cols),
                        })),
                        Ok(TerminalControl::CloseStdin) => Some(command_input::Kind::CloseStdin(true)),
                        Err(e) => {
                            let _ = socket.send(error_frame(&AppError::Malformed(format!(
                                "control frames are {{\"type\":\"resize\",\"rows\":…,\"cols\":…}} or {{\"type\":\"close_stdin\"}}: {e}"
                            )))).await;
                            None
                        }
                    },
                    Some(Ok(_)) => None,
                };
                if let Some(kind) = kind
                    && input.send(kind).await.is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    drop(stream);
    let mut details =
        json!({"agent_id": agent.id, "cmd": cmd, "interactive": true, "exit_code": exit_code});
    let outcome = match failure {
        None => infrapilot_core::audit::Outcome::Success,
        Some(f) => {
            details["error"] = json!(f);
            infrapilot_core::audit::Outcome::Failure
        }
    };
    if let Ok(mut tx) = state.store().org(&scope).await {
        let written = audit_outcome(
            &state,
            &mut tx,
            ip,
            "container.exec",
            ("container", name),
            outcome,
            details,
        )
        .await;
        if written.is_ok() {
            let _ = tx.commit().await;
        }
    }
}

type Started = (CommandStream, Vec<PolicyNotice>, String, Vec<String>);

async fn start_terminal(
    state: &AppState,
    scope: &OrgScope,
    ip: Option<std::net::IpAddr>,
    agent: &AgentRecord,
    container: ContainerRef,
    input: ExecInput,
) -> Result<Started, AppError> {
    let (detail, warnings) = gate_exec(state, scope, ip, agent, &container).await?;
    let cmd = input.cmd.args().to_vec();
    let request = DockerRequest::Exec {
        container,
        cmd: input.cmd,
        tty: input.tty,
        interactive: true,
        user: input.user,
        workdir: input.workdir,
        rows: input.rows,
        cols: input.cols,
    };
    let stream = open_stream(state, scope, agent, &request).await?;
    Ok((stream, warnings, detail.summary.name, cmd))
}

/// The networks a container is attached to.
#[utoipa::path(get, path = "/api/v1/agents/{id}/containers/{container}/networks", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("container" = String, Path, description = "Container id or name")), responses(
    (status = 200, body = Vec<NetworkAttachment>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn container_networks(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((id, container)): Path<(AgentId, String)>,
) -> Result<axum::Json<Vec<NetworkAttachment>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Network)?;
    let container = container_ref(&container)?;
    agent_record(&state, scope, id).await?;
    Ok(axum::Json(
        inspect(&state, scope, id, &container)
            .await?
            .network_attachments,
    ))
}

/// Compose projects on the agent, with running/total counts.
#[utoipa::path(get, path = "/api/v1/agents/{id}/stacks", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 200, body = Vec<Stack>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_stacks(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
) -> Result<axum::Json<Vec<Stack>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Stack)?;
    agent_record(&state, scope, id).await?;
    Ok(axum::Json(
        call(&state, scope, id, &DockerRequest::ListStacks, CALL_TIMEOUT).await?,
    ))
}

/// Starts, stops or restarts every container of a compose project. Each container passes the
/// policies first; one block refuses the whole action.
#[utoipa::path(post, path = "/api/v1/agents/{id}/stacks/{project}/{action}", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("project" = String, Path, description = "The compose project"),
           ("action" = String, Path, description = "start, stop or restart")), responses(
    (status = 200, body = Outcome<StackReport>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn stack_action(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path((id, project, action)): Path<(AgentId, String, String)>,
) -> Result<axum::Json<Outcome<StackReport>>, AppError> {
    let scope = scoped.require(Action::Operate, Resource::Stack)?;
    let project = ProjectName::parse(&project)?;
    let (verb, operation, audit_action) = match action.as_str() {
        "start" => (StackVerb::Start, ActionKind::Start, "stack.start"),
        "stop" => (StackVerb::Stop, ActionKind::Stop, "stack.stop"),
        "restart" => (StackVerb::Restart, ActionKind::Restart, "stack.restart"),
        _ => return Err(AppError::field("action", "must be start, stop or restart")),
    };
    let agent = agent_record(&state, scope, id).await?;
    let stacks: Vec<Stack> =
        call(&state, scope, id, &DockerRequest::ListStacks, CALL_TIMEOUT).await?;
    let stack = stacks
        .into_iter()
        .find(|s| s.project == project.as_str())
        .ok_or(AppError::NotFound("compose project"))?;
    let mut warnings = Vec::new();
    for member in &stack.containers {
        let container = container_ref(&member.id)?;
        let detail = inspect(&state, scope, id, &container).await?;
        let resource = policy_resource(&detail);
        warnings.extend(
            gate(
                &state,
                scope,
                ip,
                audit_action,
                Gated {
                    agent: &agent,
                    operation,
                    resource_kind: "container",
                    resource_name: &detail.summary.name,
                    resource: &resource,
                },
            )
            .await?,
        );
    }
    let request = DockerRequest::StackAction {
        project: project.clone(),
        action: verb,
    };
    let result = call::<StackReport>(&state, scope, id, &request, SLOW_TIMEOUT).await;
    audit_result(
        &state,
        scope,
        ip,
        audit_action,
        ("stack", project.as_str().to_owned()),
        json!({"agent_id": id, "containers": stack.total}),
        &result,
    )
    .await?;
    Ok(axum::Json(Outcome {
        result: result?,
        warnings,
    }))
}

/// Lists the agent's networks (with whether InfraPilot may attach containers to each).
#[utoipa::path(get, path = "/api/v1/agents/{id}/networks", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 200, body = Vec<NetworkSummary>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_networks(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
) -> Result<axum::Json<Vec<NetworkSummary>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Network)?;
    agent_record(&state, scope, id).await?;
    Ok(axum::Json(
        call(
            &state,
            scope,
            id,
            &DockerRequest::ListNetworks,
            CALL_TIMEOUT,
        )
        .await?,
    ))
}

/// One network with its containers.
#[utoipa::path(get, path = "/api/v1/agents/{id}/networks/{network}", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("network" = String, Path, description = "Network id or name")), responses(
    (status = 200, body = NetworkDetail),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn inspect_network(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((id, network)): Path<(AgentId, String)>,
) -> Result<axum::Json<NetworkDetail>, AppError> {
    let scope = scoped.require(Action::View, Resource::Network)?;
    let network = NetworkRef::parse(&network)?;
    agent_record(&state, scope, id).await?;
    let request = DockerRequest::InspectNetwork { network };
    Ok(axum::Json(
        call(&state, scope, id, &request, CALL_TIMEOUT).await?,
    ))
}

/// A container to connect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectInput {
    /// The container's id or name.
    #[schema(value_type = String)]
    pub container: ContainerRef,
    /// Extra DNS names for it on this network.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub aliases: Vec<ContainerRef>,
}

/// A container to disconnect.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisconnectInput {
    /// The container's id or name.
    #[schema(value_type = String)]
    pub container: ContainerRef,
    /// Disconnect even if it is not running.
    #[serde(default)]
    pub force: bool,
}

/// Connects a container to a network. The host and none networks and swarm networks are
/// refused, with the reason.
#[utoipa::path(post, path = "/api/v1/agents/{id}/networks/{network}/connect", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("network" = String, Path, description = "Network id or name")),
    request_body = ConnectInput, responses(
    (status = 200, body = Outcome<ActionReport>),
    (status = 400, body = Problem, content_type = "application/problem+json", description = "The network cannot take containers (host, none, swarm)"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn connect_network(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path((id, network)): Path<(AgentId, String)>,
    ApiJson(body): ApiJson<ConnectInput>,
) -> Result<axum::Json<Outcome<ActionReport>>, AppError> {
    let scope = scoped.require(Action::Operate, Resource::Network)?;
    let network = NetworkRef::parse(&network)?;
    let agent = agent_record(&state, scope, id).await?;
    let op = ContainerOp {
        agent: &agent,
        container: &body.container,
        operation: ActionKind::Update,
        audit_action: "network.connect",
        details: json!({"network": network.as_str(), "aliases": body.aliases}),
        timeout: CALL_TIMEOUT,
    };
    let request = DockerRequest::ConnectNetwork {
        network: network.clone(),
        container: body.container.clone(),
        aliases: body.aliases.clone(),
    };
    Ok(axum::Json(
        gated_container_op(&state, scope, ip, op, None, request).await?,
    ))
}

/// Disconnects a container from a network.
#[utoipa::path(post, path = "/api/v1/agents/{id}/networks/{network}/disconnect", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("network" = String, Path, description = "Network id or name")),
    request_body = DisconnectInput, responses(
    (status = 200, body = Outcome<ActionReport>),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn disconnect_network(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path((id, network)): Path<(AgentId, String)>,
    ApiJson(body): ApiJson<DisconnectInput>,
) -> Result<axum::Json<Outcome<ActionReport>>, AppError> {
    let scope = scoped.require(Action::Operate, Resource::Network)?;
    let network = NetworkRef::parse(&network)?;
    let agent = agent_record(&state, scope, id).await?;
    let op = ContainerOp {
        agent: &agent,
        container: &body.container,
        operation: ActionKind::Update,
        audit_action: "network.disconnect",
        details: json!({"network": network.as_str(), "force": body.force}),
        timeout: CALL_TIMEOUT,
    };
    let request = DockerRequest::DisconnectNetwork {
        network: network.clone(),
        container: body.container.clone(),
        force: body.force,
    };
    Ok(axum::Json(
        gated_container_op(&state, scope, ip, op, None, request).await?,
    ))
}

/// Lists the agent's images.
#[utoipa::path(get, path = "/api/v1/agents/{id}/images", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 200, body = Vec<ImageSummary>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_images(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
) -> Result<axum::Json<Vec<ImageSummary>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Image)?;
    agent_record(&state, scope, id).await?;
    Ok(axum::Json(
        call(&state, scope, id, &DockerRequest::ListImages, CALL_TIMEOUT).await?,
    ))
}

/// One image (URL-encode a reference's `/`).
#[utoipa::path(get, path = "/api/v1/agents/{id}/images/{image}", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("image" = String, Path, description = "Image id or reference")), responses(
    (status = 200, body = ImageDetail),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn inspect_image(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((id, image)): Path<(AgentId, String)>,
) -> Result<axum::Json<ImageDetail>, AppError> {
    let scope = scoped.require(Action::View, Resource::Image)?;
    let image = ImageRef::parse(&image)?;
    agent_record(&state, scope, id).await?;
    let request = DockerRequest::InspectImage { image };
    Ok(axum::Json(
        call(&state, scope, id, &request, CALL_TIMEOUT).await?,
    ))
}

/// Whether to force a removal.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Remove even if in use (images: by stopped containers; volumes: by any).
    pub force: Option<bool>,
    /// Volumes: the volume's name, typed to confirm (required).
    pub confirm: Option<String>,
}

/// Removes an image.
#[utoipa::path(delete, path = "/api/v1/agents/{id}/images/{image}", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("image" = String, Path, description = "Image id or reference"), RemoveQuery), responses(
    (status = 200, body = PruneReport),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "In use"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn remove_image(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path((id, image)): Path<(AgentId, String)>,
    Query(q): Query<RemoveQuery>,
) -> Result<axum::Json<PruneReport>, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Image)?;
    let image = ImageRef::parse(&image)?;
    agent_record(&state, scope, id).await?;
    let force = q.force.unwrap_or(false);
    let request = DockerRequest::RemoveImage {
        image: image.clone(),
        force,
    };
    let result = call::<PruneReport>(&state, scope, id, &request, SLOW_TIMEOUT).await;
    audit_result(
        &state,
        scope,
        ip,
        "image.delete",
        ("image", image.as_str().to_owned()),
        json!({"agent_id": id, "force": force}),
        &result,
    )
    .await?;
    Ok(axum::Json(result?))
}

/// A prune, confirmed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneInput {
    /// Must be `prune`.
    pub confirm: Option<String>,
    /// Images: every unused image, not only dangling ones. Volumes: named volumes too.
    #[serde(default)]
    pub all: bool,
    /// Only what carries every one of these labels.
    #[serde(default)]
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

fn prune_labels(body: &PruneInput) -> Result<Option<infrapilot_core::values::Labels>, AppError> {
    body.labels
        .as_ref()
        .map(super::enrollment::labels_from)
        .transpose()
}

async fn prune(
    state: &AppState,
    scope: &OrgScope,
    ip: Option<std::net::IpAddr>,
    id: AgentId,
    body: &PruneInput,
    request: DockerRequest,
    what: &'static str,
) -> Result<PruneReport, AppError> {
    confirm("confirm", body.confirm.as_deref(), "prune")?;
    agent_record(state, scope, id).await?;
    let result = call::<PruneReport>(state, scope, id, &request, SLOW_TIMEOUT).await;
    let details = match &result {
        Ok(r) => {
            json!({"agent_id": id, "all": body.all, "deleted": r.deleted.len(), "space_reclaimed": r.space_reclaimed})
        }
        Err(_) => json!({"agent_id": id, "all": body.all}),
    };
    let action = if what == "image" {
        "image.prune"
    } else {
        "volume.prune"
    };
    audit_result(
        state,
        scope,
        ip,
        action,
        (what, "*".to_owned()),
        details,
        &result,
    )
    .await?;
    result
}

/// Removes unused images (dangling ones, or all unused with `all`). `confirm` must be `prune`.
#[utoipa::path(post, path = "/api/v1/agents/{id}/images/prune", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), request_body = PruneInput, responses(
    (status = 200, body = PruneReport),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn prune_images(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AgentId>,
    ApiJson(body): ApiJson<PruneInput>,
) -> Result<axum::Json<PruneReport>, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Image)?;
    let request = DockerRequest::PruneImages {
        all: body.all,
        labels: prune_labels(&body)?,
    };
    Ok(axum::Json(
        prune(&state, scope, ip, id, &body, request, "image").await?,
    ))
}

/// Lists the agent's volumes with the containers using each.
#[utoipa::path(get, path = "/api/v1/agents/{id}/volumes", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 200, body = Vec<VolumeSummary>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_volumes(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
) -> Result<axum::Json<Vec<VolumeSummary>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Volume)?;
    agent_record(&state, scope, id).await?;
    Ok(axum::Json(
        call(&state, scope, id, &DockerRequest::ListVolumes, CALL_TIMEOUT).await?,
    ))
}

/// One volume.
#[utoipa::path(get, path = "/api/v1/agents/{id}/volumes/{volume}", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("volume" = String, Path, description = "Volume name")), responses(
    (status = 200, body = VolumeSummary),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn inspect_volume(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((id, volume)): Path<(AgentId, String)>,
) -> Result<axum::Json<VolumeSummary>, AppError> {
    let scope = scoped.require(Action::View, Resource::Volume)?;
    let volume = VolumeRef::parse(&volume)?;
    agent_record(&state, scope, id).await?;
    let request = DockerRequest::InspectVolume { volume };
    Ok(axum::Json(
        call(&state, scope, id, &request, CALL_TIMEOUT).await?,
    ))
}

/// Removes a volume. Its name must be repeated in `confirm`.
#[utoipa::path(delete, path = "/api/v1/agents/{id}/volumes/{volume}", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id"), ("volume" = String, Path, description = "Volume name"), RemoveQuery), responses(
    (status = 200, body = ActionReport),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "In use"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn remove_volume(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path((id, volume)): Path<(AgentId, String)>,
    Query(q): Query<RemoveQuery>,
) -> Result<axum::Json<ActionReport>, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Volume)?;
    let volume = VolumeRef::parse(&volume)?;
    confirm("confirm", q.confirm.as_deref(), volume.as_str())?;
    agent_record(&state, scope, id).await?;
    let force = q.force.unwrap_or(false);
    let request = DockerRequest::RemoveVolume {
        volume: volume.clone(),
        force,
    };
    let result = call::<ActionReport>(&state, scope, id, &request, SLOW_TIMEOUT).await;
    audit_result(
        &state,
        scope,
        ip,
        "volume.delete",
        ("volume", volume.as_str().to_owned()),
        json!({"agent_id": id, "force": force}),
        &result,
    )
    .await?;
    Ok(axum::Json(result?))
}

/// Removes volumes no container uses (anonymous ones, or named ones too with `all`).
/// `confirm` must be `prune`.
#[utoipa::path(post, path = "/api/v1/agents/{id}/volumes/prune", tag = "docker", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), request_body = PruneInput, responses(
    (status = 200, body = PruneReport),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn prune_volumes(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AgentId>,
    ApiJson(body): ApiJson<PruneInput>,
) -> Result<axum::Json<PruneReport>, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Volume)?;
    let request = DockerRequest::PruneVolumes {
        all: body.all,
        labels: prune_labels(&body)?,
    };
    Ok(axum::Json(
        prune(&state, scope, ip, id, &body, request, "volume").await?,
    ))
}
