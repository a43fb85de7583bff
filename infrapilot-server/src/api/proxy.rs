//! Proxy and redirection hosts: CRUD, a preview of the rendered config, each host's apply
//! status, and a manual push of an agent's desired state (the push itself is
//! [`crate::ops::desired_state`]).
//!
//! A host is the core's own document (`ProxyHost` or `RedirectionHost`), validated by the
//! core's types on the way in, so every field that could reach nginx is typed before it is
//! stored; errors name the field (`host.domains[1]`). Every change raises the agent's
//! desired-state revision in the same transaction (audited), then the server pushes the
//! agent's whole state at that revision and waits for the apply report: each host is then
//! `applied`, `quarantined` (with nginx's own message; every other host is still served) or
//! `failed`; an offline agent leaves it `pending` until it connects, when the state is pushed
//! again. The agent persists what it received and keeps serving it with the server away.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use infrapilot_core::ids::{AgentId, ProxyHostId};
use infrapilot_core::nginx::{
    DefaultServer, HostKind, Layout, ProxyHost, RedirectionHost, render_proxy_host,
    render_redirection_host,
};
use infrapilot_core::policy::ActionKind;
use infrapilot_core::rbac::{Action, Resource};
use infrapilot_proto::v1::command::Kind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::agents::command_error;
use super::{Page, PageQuery, audit};
use crate::AppState;
use crate::agents::send_command;
use crate::auth::{ClientIp, Scoped};
use crate::error::{ApiJson, AppError, PolicyNotice, Problem};
use crate::ops::desired_state::{kind_uses_uploaded, push, push_now};
use crate::ops::policy_gate::{Gated, gate};
use crate::store::{OrgScope, ProxyHostRecord};
use crate::util::{new_id, now_micros, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_proxy_hosts, create_proxy_host))
        .routes(routes!(
            get_proxy_host,
            update_proxy_host,
            delete_proxy_host
        ))
        .routes(routes!(preview_proxy_host))
        .routes(routes!(test_proxy_host))
        .routes(routes!(agent_proxy_status))
        .routes(routes!(apply_agent_proxy))
        .routes(routes!(get_default_server, put_default_server))
        .routes(routes!(proxy_host_metrics))
}

/// An agent's default server: what nginx answers for names no host claims (404, with this
/// page) and the error pages every host shows.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"default_server": {
    "not_found_page": "<h1>Nothing here</h1>",
    "bad_gateway_page": null,
    "unclaimed": {"action": "drop"}
}}))]
pub struct DefaultServerDocument {
    /// `{"not_found_page": "<html>…" | null, "bad_gateway_page": "<html>…" | null,
    /// "unclaimed": {"action": "not_found" | "drop" | "redirect", …}}`: HTML of 1 byte to
    /// 64 KiB each, nginx's own pages when null; what a request for a name no host claims
    /// gets (404 by default). Unknown fields are refused.
    #[schema(value_type = Object)]
    pub default_server: Value,
}

/// The agent's default server.
#[utoipa::path(get, path = "/api/v1/agents/{id}/default-server", tag = "proxy", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 200, body = DefaultServerDocument),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_default_server(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
) -> Result<axum::Json<DefaultServerDocument>, AppError> {
    let scope = scoped.require(Action::View, Resource::ProxyHost)?;
    let mut tx = state.store().org_read(scope).await?;
    let document = tx.agent_default_server(id).await?;
    tx.commit().await?;
    let parsed: DefaultServer = serde_json::from_str(&document).map_err(AppError::internal)?;
    Ok(axum::Json(DefaultServerDocument {
        default_server: serde_json::to_value(parsed).map_err(AppError::internal)?,
    }))
}

/// Replaces the agent's default server (audited) and applies it.
#[utoipa::path(put, path = "/api/v1/agents/{id}/default-server", tag = "proxy", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), request_body = DefaultServerDocument, responses(
    (status = 200, body = DefaultServerDocument),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn put_default_server(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AgentId>,
    ApiJson(input): ApiJson<DefaultServerDocument>,
) -> Result<axum::Json<DefaultServerDocument>, AppError> {
    let scope = scoped.require(Action::Update, Resource::ProxyHost)?;
    let parsed: DefaultServer = serde_path_to_error::deserialize(&input.default_server)
        .map_err(|e| field_error("default_server", &input.default_server, e))?;
    if let infrapilot_core::nginx::Unclaimed::Redirect { target, .. } = &parsed.unclaimed
        && target.is_wildcard()
    {
        return Err(AppError::field(
            "default_server.unclaimed.target",
            "must be one name, not a wildcard",
        ));
    }
    let document = serde_json::to_value(&parsed).map_err(AppError::internal)?;
    let mut tx = state.store().org(scope).await?;
    tx.agent_default_server(id).await?;
    tx.bump_desired_revision(id).await?;
    tx.set_agent_default_server(id, &document.to_string())
        .await?;
    audit(
        &state,
        &mut tx,
        ip,
        "proxy_default_server.update",
        "agent",
        id,
        json!({
            "not_found_page": parsed.not_found_page.is_some(),
            "bad_gateway_page": parsed.bad_gateway_page.is_some(),
        }),
    )
    .await?;
    tx.commit().await?;
    push(&state, scope.org(), id).await;
    Ok(axum::Json(DefaultServerDocument {
        default_server: document,
    }))
}

/// Proxy host or redirection host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostKindDto {
    /// Proxies requests to an upstream.
    #[default]
    Proxy,
    /// Redirects to another domain.
    Redirection,
}

impl From<HostKindDto> for HostKind {
    fn from(k: HostKindDto) -> Self {
        match k {
            HostKindDto::Proxy => HostKind::Proxy,
            HostKindDto::Redirection => HostKind::Redirection,
        }
    }
}

impl From<HostKind> for HostKindDto {
    fn from(k: HostKind) -> Self {
        match k {
            HostKind::Proxy => HostKindDto::Proxy,
            HostKind::Redirection => HostKindDto::Redirection,
        }
    }
}

/// A new host, or the whole of a changed one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyHostInput {
    /// The agent whose nginx serves it.
    pub agent_id: AgentId,
    /// `proxy` (default) or `redirection`.
    #[serde(default)]
    pub kind: HostKindDto,
    /// Whether it is served (default true).
    pub enabled: Option<bool>,
    /// The host, as the core's document without its id. A proxy host: `{"domains":
    /// ["app.example.com"], "upstream": "http://web:8080" (or "container:web:8080"), "ssl":
    /// {"mode": "none" | "custom" | "lets_encrypt", …}, "headers": {…}, "proxy": {"websocket":
    /// true, …}, "rate_limit": {"requests_per_second": 10, "burst": 0–100000, "nodelay":
    /// false}, "locations": […], "access_list": {…}}`. A redirection host: `{"domains": […],
    /// "target": "example.org", "target_scheme": "keep" | "http" | "https", "status":
    /// "moved_permanently" (301) | "found" (302), "preserve_path": true}`. A field the
    /// document does not have is refused, at every level.
    #[schema(value_type = Object)]
    pub host: Value,
}

/// A host with its status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProxyHostView {
    /// Its id.
    pub id: ProxyHostId,
    /// The agent whose nginx serves it.
    pub agent_id: AgentId,
    /// Proxy or redirection host.
    pub kind: HostKindDto,
    /// Whether it is served.
    pub enabled: bool,
    /// Its domains.
    pub domains: Vec<String>,
    /// The host document, as validated (defaults filled in).
    #[schema(value_type = Object)]
    pub host: Value,
    /// `pending` (not yet applied: the agent is offline or busy), `applied`, `quarantined`
    /// (its config cannot load; every other host is served), `failed` (the apply failed as a
    /// whole; the last good config is served) or `disabled`.
    pub status: String,
    /// nginx's own message for a quarantined or failed host.
    pub status_error: Option<String>,
    /// The agent's desired-state revision the status is about.
    pub status_revision: i64,
    /// Who created it.
    pub created_by: Option<String>,
    /// When (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Policies with the action `warn` that fired on this change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<PolicyNotice>,
}

fn view(r: ProxyHostRecord, warnings: Vec<PolicyNotice>) -> ProxyHostView {
    ProxyHostView {
        id: r.id,
        agent_id: r.agent_id,
        kind: r.kind.into(),
        enabled: r.enabled,
        domains: r.domains,
        host: r.document,
        status: r.status,
        status_error: r.status_error,
        status_revision: r.status_revision,
        created_by: r.created_by,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
        warnings,
    }
}

/// A host document checked by the core's types.
struct Checked {
    document: Value,
    domains: Vec<String>,
    /// The certificate an HTTPS host names.
    certificate: Option<infrapilot_core::ids::CertificateId>,
    /// The attributes the policy engine reads (`ssl.certificate_id`, `ssl.force`, …).
    resource: Value,
}

/// A deserialization error of `document` as a field error under `prefix`
/// (`host.domains[0]`, `host.ssl.hsts.preloa`).
pub(crate) fn field_error(
    prefix: &str,
    document: &Value,
    e: serde_path_to_error::Error<serde_json::Error>,
) -> AppError {
    let message = e.inner().to_string();
    AppError::field(
        crate::error::document_field(Some(prefix), document, &e.path().to_string(), &message),
        message,
    )
}

/// Validates `host` as a document of `kind` with id `id`; errors name the field under `host`.
fn check_host(kind: HostKind, id: ProxyHostId, mut host: Value) -> Result<Checked, AppError> {
    let Some(object) = host.as_object_mut() else {
        return Err(AppError::field("host", "must be an object"));
    };
    if let Some(given) = object.get("id")
        && given != &json!(id)
    {
        return Err(AppError::field(
            "host.id",
            "is assigned by the server; leave it out",
        ));
    }
    object.insert("id".to_owned(), json!(id));
    // A Let's Encrypt host gets its own certificate, named by the host's id, unless it names
    // one to share with other hosts of the agent (one certificate covering all their names).
    if let Some(ssl) = object.get_mut("ssl").and_then(Value::as_object_mut)
        && ssl.get("mode") == Some(&json!("lets_encrypt"))
        && ssl.get("certificate").is_none_or(Value::is_null)
    {
        ssl.insert("certificate".to_owned(), json!(id));
    }
    let field_error = |e| field_error("host", &host, e);
    let (document, domains, ssl): (_, Vec<String>, _) = match kind {
        HostKind::Proxy => {
            let h: ProxyHost = serde_path_to_error::deserialize(&host).map_err(field_error)?;
            let domains = h
                .domains
                .as_slice()
                .iter()
                .map(|d| d.as_str().to_owned())
                .collect();
            let ssl = h.ssl.tls().map(|t| (t.certificate, t.force_https));
            (serde_json::to_value(&h), domains, ssl)
        }
        HostKind::Redirection => {
            let h: RedirectionHost =
                serde_path_to_error::deserialize(&host).map_err(field_error)?;
            let domains = h
                .domains
                .as_slice()
                .iter()
                .map(|d| d.as_str().to_owned())
                .collect();
            let ssl = h.ssl.tls().map(|t| (t.certificate, t.force_https));
            (serde_json::to_value(&h), domains, ssl)
        }
    };
    let document = document.map_err(AppError::internal)?;
    if document["ssl"]["mode"] == "lets_encrypt"
        && let Some(wildcard) = domains.iter().find(|d: &&String| d.starts_with("*."))
    {
        return Err(AppError::field(
            "host.domains",
            format!(
                "{wildcard}: Let's Encrypt validates names over HTTP-01, which cannot certify a wildcard; upload a wildcard certificate (\"mode\": \"custom\") instead"
            ),
        ));
    }
    let resource = json!({
        "kind": HostKindDto::from(kind),
        "domains": domains,
        "upstream": document.get("upstream"),
        "ssl": match ssl {
            Some((cert, force)) => json!({"certificate_id": cert, "force": force}),
            None => json!({}),
        },
    });
    Ok(Checked {
        document,
        domains,
        certificate: ssl.map(|(cert, _)| cert),
        resource,
    })
}

/// Which hosts to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProxyHostQuery {
    /// Only this agent's hosts.
    pub agent_id: Option<AgentId>,
}

/// Lists the organization's proxy and redirection hosts with their status.
#[utoipa::path(get, path = "/api/v1/proxy-hosts", tag = "proxy", security(("bearer" = [])),
    params(PageQuery, ProxyHostQuery), responses(
    (status = 200, body = Page<ProxyHostView>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_proxy_hosts(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(page): Query<PageQuery>,
    Query(q): Query<ProxyHostQuery>,
) -> Result<axum::Json<Page<ProxyHostView>>, AppError> {
    let scope = scoped.require(Action::View, Resource::ProxyHost)?;
    let limit = page.fetch_limit()?;
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx
        .list_proxy_hosts(q.agent_id, page.after()?, limit)
        .await?;
    tx.commit().await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        |r| (r.created_at, r.id.to_string()),
        |r| view(r, Vec::new()),
    )))
}

/// One host with its status.
#[utoipa::path(get, path = "/api/v1/proxy-hosts/{id}", tag = "proxy", security(("bearer" = [])),
    params(("id" = ProxyHostId, Path, description = "The host's id")), responses(
    (status = 200, body = ProxyHostView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_proxy_host(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<ProxyHostId>,
) -> Result<axum::Json<ProxyHostView>, AppError> {
    let scope = scoped.require(Action::View, Resource::ProxyHost)?;
    let mut tx = state.store().org_read(scope).await?;
    let record = tx.proxy_host(id).await?;
    tx.commit().await?;
    Ok(axum::Json(view(record, Vec::new())))
}

/// The period of a host's metrics.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// From (RFC 3339 or unix seconds); default one hour before `until`.
    pub since: Option<String>,
    /// Until (RFC 3339 or unix seconds); default now. At most 7 days after `since`.
    pub until: Option<String>,
}

/// A host's request metrics over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostMetricsView {
    /// The period's start (RFC 3339).
    pub since: String,
    /// The period's end (RFC 3339).
    pub until: String,
    /// The requests, by status class, the 5xx share and upstream time percentiles.
    #[schema(value_type = Object)]
    pub metrics: infrapilot_core::logs::AccessMetrics,
    /// Whether only the newest requests were counted (more than 200,000 in the period).
    pub sampled: bool,
}

/// The most requests one metrics answer reads.
const MAX_METRIC_SAMPLES: i64 = 200_000;

/// Request metrics of one host from its nginx access log, as the agent shipped it: requests,
/// status classes, the share of 5xx answers, p50/p95 upstream response time.
#[utoipa::path(get, path = "/api/v1/proxy-hosts/{id}/metrics", tag = "proxy", security(("bearer" = [])),
    params(("id" = ProxyHostId, Path, description = "The host's id"), MetricsQuery), responses(
    (status = 200, body = HostMetricsView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn proxy_host_metrics(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<ProxyHostId>,
    Query(q): Query<MetricsQuery>,
) -> Result<axum::Json<HostMetricsView>, AppError> {
    use infrapilot_core::logs::{RequestSample, summarize};
    let scope = scoped.require(Action::View, Resource::ProxyHost)?;
    let until = super::logs::parse_instant("until", q.until.as_deref())?.unwrap_or_else(now_micros);
    let since =
        super::logs::parse_instant("since", q.since.as_deref())?.unwrap_or(until - 3_600_000_000);
    if until <= since {
        return Err(AppError::field("until", "must be after since"));
    }
    if until - since > 7 * 86_400_000_000 {
        return Err(AppError::field("since", "the period may be at most 7 days"));
    }
    let mut tx = state.store().org_read(scope).await?;
    let host = tx.proxy_host(id).await?;
    let stream = infrapilot_core::nginx::names::access_log_stream(host.kind, id);
    let rows = tx
        .access_samples(host.agent_id, &stream, since, until, MAX_METRIC_SAMPLES + 1)
        .await?;
    tx.commit().await?;
    let sampled = rows.len() > usize::try_from(MAX_METRIC_SAMPLES).unwrap_or(usize::MAX);
    let metrics = summarize(
        rows.into_iter()
            .take(usize::try_from(MAX_METRIC_SAMPLES).unwrap_or(0))
            .map(|(status, upstream)| RequestSample {
                status: u16::try_from(status).unwrap_or(0),
                upstream_millis: upstream.and_then(|u| u64::try_from(u).ok()),
            }),
    );
    Ok(axum::Json(HostMetricsView {
        since: rfc3339(since),
        until: rfc3339(until),
        metrics,
        sampled,
    }))
}

/// Validates a host, passes the policies, stores it with a raised revision (audited), pushes
/// the agent's state and returns the host as it is then.
async fn save(
    state: &AppState,
    scope: &OrgScope,
    ip: Option<std::net::IpAddr>,
    id: ProxyHostId,
    existing: Option<ProxyHostRecord>,
    input: ProxyHostInput,
) -> Result<ProxyHostView, AppError> {
    let kind = HostKind::from(input.kind);
    let checked = check_host(kind, id, input.host)?;
    let mut tx = state.store().org_read(scope).await?;
    let agent = tx.agent(input.agent_id).await.map_err(|e| match e {
        crate::store::StoreError::NotFound { .. } => {
            AppError::field("agent_id", "names no agent of this organization")
        }
        other => other.into(),
    })?;
    if let Some(list) = checked
        .document
        .get("access_list_id")
        .and_then(Value::as_str)
    {
        if !checked.document["access_list"].is_null() {
            return Err(AppError::field(
                "host.access_list_id",
                "a host uses its own access_list or a shared one, not both",
            ));
        }
        let list: infrapilot_core::ids::AccessListId = list
            .parse()
            .map_err(|_| AppError::field("host.access_list_id", "is not an access list id"))?;
        tx.access_list(list).await.map_err(|e| match e {
            crate::store::StoreError::NotFound { .. } => AppError::field(
                "host.access_list_id",
                "names no access list of this organization (POST /api/v1/access-lists)",
            ),
            other => other.into(),
        })?;
    }
    if let Some(cert) = checked.certificate
        && kind_uses_uploaded(&checked.document)
    {
        let record = tx.certificate(cert).await.map_err(|e| match e {
            crate::store::StoreError::NotFound { .. } => AppError::field(
                "host.ssl.certificate",
                "names no certificate of this organization; upload it first (POST /api/v1/certificates)",
            ),
            other => other.into(),
        })?;
        if let Some(uncovered) = checked
            .domains
            .iter()
            .find(|d| !super::certificates::covers(&record.domains, d))
        {
            return Err(AppError::field(
                "host.ssl.certificate",
                format!(
                    "does not cover {uncovered} (it certifies {})",
                    record.domains.join(", ")
                ),
            ));
        }
    }
    tx.commit().await?;
    let (operation, action) = if existing.is_some() {
        (ActionKind::UpdateProxy, "proxy_host.update")
    } else {
        (ActionKind::CreateProxy, "proxy_host.create")
    };
    let name = checked.domains.first().cloned().unwrap_or_default();
    let warnings = gate(
        state,
        scope,
        ip,
        action,
        Gated {
            agent: &agent,
            operation,
            resource_kind: "proxy_host",
            resource_name: &name,
            resource: &checked.resource,
        },
    )
    .await?;
    let now = now_micros();
    let enabled = input
        .enabled
        .unwrap_or(existing.as_ref().is_none_or(|e| e.enabled));
    let mut tx = state.store().org(scope).await?;
    let revision = tx.bump_desired_revision(agent.id).await?;
    let record = ProxyHostRecord {
        id,
        agent_id: agent.id,
        kind,
        document: checked.document,
        domains: checked.domains,
        enabled,
        status: if enabled { "pending" } else { "disabled" }.to_owned(),
        status_error: None,
        status_revision: revision,
        created_by: existing.as_ref().map_or_else(
            || Some(scope.actor().audit_name()),
            |e| e.created_by.clone(),
        ),
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    };
    match &existing {
        Some(old) => {
            if old.agent_id != record.agent_id {
                // The old agent must stop serving it.
                tx.bump_desired_revision(old.agent_id).await?;
            }
            tx.update_proxy_host(&record).await?;
        }
        None => tx.insert_proxy_host(&record).await?,
    }
    audit(
        state,
        &mut tx,
        ip,
        action,
        "proxy_host",
        id,
        json!({"agent_id": agent.id, "domains": record.domains, "kind": input.kind, "enabled": enabled}),
    )
    .await?;
    tx.commit().await?;
    if let Some(old) = &existing
        && old.agent_id != record.agent_id
    {
        push(state, scope.org(), old.agent_id).await;
    }
    push(state, scope.org(), agent.id).await;
    let mut tx = state.store().org_read(scope).await?;
    let record = tx.proxy_host(id).await?;
    tx.commit().await?;
    Ok(view(record, warnings))
}

/// Creates a host on an agent and applies it.
#[utoipa::path(post, path = "/api/v1/proxy-hosts", tag = "proxy", security(("bearer" = [])),
    request_body(content = ProxyHostInput, examples(
        ("proxy" = (summary = "A proxy host with HTTPS, a rate limit and an API location", value = json!({
            "agent_id": "0190a0d6-7a2b-7c3d-8e4f-000000000001",
            "kind": "proxy",
            "host": {
                "domains": ["app.example.com"],
                "upstream": "container:web:8080",
                "ssl": {"mode": "lets_encrypt", "force_https": true, "http2": true},
                "headers": {"content_type_nosniff": true, "frame_options": "same-origin"},
                "proxy": {"websocket": true},
                "rate_limit": {"requests_per_second": 10, "burst": 0},
                "locations": [{"path": "/api/", "upstream": "http://api:9000"}]
            }
        }))),
        ("redirection" = (summary = "A permanent redirect to HTTPS that keeps the path", value = json!({
            "agent_id": "0190a0d6-7a2b-7c3d-8e4f-000000000001",
            "kind": "redirection",
            "host": {
                "domains": ["old.example.com"],
                "target": "example.org",
                "target_scheme": "https",
                "status": "moved_permanently",
                "preserve_path": true
            }
        }))),
    )), responses(
    (status = 201, body = ProxyHostView, description = "Stored; `status` says whether nginx serves it"),
    (status = 403, body = Problem, content_type = "application/problem+json", description = "A policy blocks it"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "Another host of the agent serves one of the domains"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_proxy_host(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(input): ApiJson<ProxyHostInput>,
) -> Result<(StatusCode, axum::Json<ProxyHostView>), AppError> {
    let scope = scoped.require(Action::Create, Resource::ProxyHost)?;
    let id = ProxyHostId::from_uuid(new_id());
    let host = save(&state, scope, ip, id, None, input).await?;
    Ok((StatusCode::CREATED, axum::Json(host)))
}

/// Replaces a host (the whole document) and applies it.
#[utoipa::path(put, path = "/api/v1/proxy-hosts/{id}", tag = "proxy", security(("bearer" = [])),
    params(("id" = ProxyHostId, Path, description = "The host's id")),
    request_body(content = ProxyHostInput, examples(
        ("proxy" = (summary = "The host moved to another upstream, HTTPS forced", value = json!({
            "agent_id": "0190a0d6-7a2b-7c3d-8e4f-000000000001",
            "kind": "proxy",
            "host": {
                "domains": ["app.example.com", "www.app.example.com"],
                "upstream": "http://web-v2:8080",
                "ssl": {"mode": "lets_encrypt", "force_https": true,
                        "hsts": {"max_age_seconds": 31536000, "include_subdomains": false, "preload": false}},
                "proxy": {"websocket": false}
            }
        }))),
    )), responses(
    (status = 200, body = ProxyHostView),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_proxy_host(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<ProxyHostId>,
    ApiJson(input): ApiJson<ProxyHostInput>,
) -> Result<axum::Json<ProxyHostView>, AppError> {
    let scope = scoped.require(Action::Update, Resource::ProxyHost)?;
    let mut tx = state.store().org_read(scope).await?;
    let existing = tx.proxy_host(id).await?;
    tx.commit().await?;
    if existing.kind != HostKind::from(input.kind) {
        return Err(AppError::field(
            "kind",
            "cannot change; delete the host and create a new one",
        ));
    }
    Ok(axum::Json(
        save(&state, scope, ip, id, Some(existing), input).await?,
    ))
}

/// Deletes a host; its agent stops serving it.
#[utoipa::path(delete, path = "/api/v1/proxy-hosts/{id}", tag = "proxy", security(("bearer" = [])),
    params(("id" = ProxyHostId, Path, description = "The host's id")), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_proxy_host(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<ProxyHostId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::ProxyHost)?;
    let mut tx = state.store().org(scope).await?;
    let record = tx.proxy_host(id).await?;
    tx.delete_proxy_host(id).await?;
    tx.bump_desired_revision(record.agent_id).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "proxy_host.delete",
        "proxy_host",
        id,
        json!({"agent_id": record.agent_id, "domains": record.domains}),
    )
    .await?;
    tx.commit().await?;
    push(&state, scope.org(), record.agent_id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The files nginx would get for a host, rendered with the layout (paths and ports) its agent
/// last reported.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// The host's files: its config first, then its htpasswd file if it has basic-auth users.
    pub files: Vec<PreviewFile>,
    /// Whether the paths and ports are the agent's own (`true`: as it reported them with its
    /// last apply) or the agent's defaults (`false`: it has not reported yet, e.g. it never
    /// connected).
    pub layout_reported: bool,
    /// The port plain HTTP is served on.
    pub http_port: u16,
    /// The port HTTPS is served on.
    pub https_port: u16,
    /// Files the config needs that the agent provides (certificate and key).
    pub required_files: Vec<String>,
}

/// One rendered file.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewFile {
    /// Where the agent writes it.
    pub path: String,
    /// The whole file.
    pub contents: String,
}

/// The agent's default layout, for previews of agents that have not reported theirs.
fn default_layout() -> Result<Layout, AppError> {
    serde_json::from_value(json!({
        "conf_dir": "/var/lib/infrapilot-agent/nginx/conf",
        "cert_dir": "/var/lib/infrapilot-agent/nginx/certs",
        "htpasswd_dir": "/var/lib/infrapilot-agent/nginx/htpasswd",
        "log_dir": "/var/lib/infrapilot-agent/nginx/logs",
        "temp_dir": "/var/lib/infrapilot-agent/nginx/tmp",
        "acme_webroot": "/var/lib/infrapilot-agent/nginx/acme",
        "pid_file": "/var/lib/infrapilot-agent/nginx/nginx.pid",
        "resolvers": ["127.0.0.11"],
        "ipv6": false
    }))
    .map_err(AppError::internal)
}

/// What to request when testing a host.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostTestInput {
    /// The path requested (default `/`): starts with `/`, visible ASCII, at most 1,024 bytes.
    pub path: Option<String>,
    /// Whether to test over HTTPS (default: when the host has TLS).
    pub https: Option<bool>,
}

/// What the agent saw when it requested the host through its own nginx.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostTestView {
    /// The request sent: `GET <path>` with the host's first domain, over HTTP or HTTPS.
    pub url: String,
    /// nginx's HTTP status, when it answered.
    pub status: Option<u16>,
    /// From connecting to the end of the answer, in milliseconds.
    pub latency_ms: u64,
    /// A redirect's target.
    pub location: Option<String>,
    /// The certificate nginx presented (HTTPS): its names, issuer and expiry (RFC 3339).
    pub certificate: Option<ServedCertificateView>,
    /// Why there is no answer, in the agent's words.
    pub error: Option<String>,
}

/// A certificate as nginx served it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServedCertificateView {
    /// Its DNS names.
    pub names: Vec<String>,
    /// Its issuer.
    pub issuer: String,
    /// Valid until (RFC 3339).
    pub not_after: String,
    /// Whether it covers the name requested.
    pub covers_domain: bool,
}

/// Tests a host: the agent sends one `GET` through its own nginx with the host's name and
/// reports what came back (status, latency, redirect, certificate).
#[utoipa::path(post, path = "/api/v1/proxy-hosts/{id}/test", tag = "proxy", security(("bearer" = [])),
    params(("id" = ProxyHostId, Path, description = "The host's id")), request_body = HostTestInput, responses(
    (status = 200, body = HostTestView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json", description = "The agent is offline"),
))]
pub async fn test_proxy_host(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<ProxyHostId>,
    ApiJson(input): ApiJson<HostTestInput>,
) -> Result<axum::Json<HostTestView>, AppError> {
    let scope = scoped.require(Action::Update, Resource::ProxyHost)?;
    let mut tx = state.store().org_read(scope).await?;
    let record = tx.proxy_host(id).await?;
    tx.commit().await?;
    let domain = record.domains.first().cloned().unwrap_or_default();
    let https = input
        .https
        .unwrap_or(record.document["ssl"]["mode"] != "none" && !record.document["ssl"].is_null());
    let check = infrapilot_core::desired::HostCheck {
        domain,
        https,
        path: input.path.unwrap_or_else(|| "/".to_owned()),
    };
    if let Some((field, reason)) = check.invalid() {
        return Err(AppError::field(field, reason));
    }
    let check_json = serde_json::to_vec(&check).map_err(AppError::internal)?;
    let reply = send_command(
        &state,
        scope.org(),
        record.agent_id,
        Kind::CheckHost(infrapilot_proto::v1::CheckHost { check_json }),
        Duration::from_secs(20),
    )
    .await
    .map_err(command_error)?;
    let result: infrapilot_core::desired::HostCheckResult =
        serde_json::from_slice(&reply).map_err(AppError::internal)?;
    let covers = |names: &[String]| super::certificates::covers(names, &check.domain);
    Ok(axum::Json(HostTestView {
        url: format!(
            "{}://{}{}",
            if https { "https" } else { "http" },
            check.domain,
            check.path
        ),
        status: result.status,
        latency_ms: result.latency_ms,
        location: result.location,
        certificate: result.certificate.map(|c| ServedCertificateView {
            covers_domain: covers(&c.names),
            names: c.names,
            issuer: c.issuer,
            not_after: rfc3339(c.not_after * 1_000_000),
        }),
        error: result.error,
    }))
}

/// The rendered nginx config of a host (what `nginx -t` would be given).
#[utoipa::path(get, path = "/api/v1/proxy-hosts/{id}/preview", tag = "proxy", security(("bearer" = [])),
    params(("id" = ProxyHostId, Path, description = "The host's id")), responses(
    (status = 200, body = Preview),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn preview_proxy_host(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<ProxyHostId>,
) -> Result<axum::Json<Preview>, AppError> {
    let scope = scoped.require(Action::View, Resource::ProxyHost)?;
    let mut tx = state.store().org_read(scope).await?;
    let record = tx.proxy_host(id).await?;
    let reported: Option<Layout> =
        serde_json::from_str(&tx.agent_layout(record.agent_id).await?).unwrap_or(None);
    let mut shared = None;
    if let Some(list) = record.document["access_list_id"]
        .as_str()
        .and_then(|l| l.parse().ok())
    {
        shared = tx.access_list(list).await.ok().map(|r| r.list);
    }
    tx.commit().await?;
    let layout_reported = reported.is_some();
    let layout = match reported {
        Some(layout) => layout,
        None => default_layout()?,
    };
    let files = match record.kind {
        HostKind::Proxy => {
            let mut h: ProxyHost =
                serde_json::from_value(record.document).map_err(AppError::internal)?;
            if h.access_list.is_none() {
                h.access_list = shared;
            }
            render_proxy_host(&h, &layout)
        }
        HostKind::Redirection => {
            let h: RedirectionHost =
                serde_json::from_value(record.document).map_err(AppError::internal)?;
            render_redirection_host(&h, &layout)
        }
    };
    Ok(axum::Json(Preview {
        layout_reported,
        http_port: layout.http_port,
        https_port: layout.https_port,
        files: files
            .files
            .into_iter()
            .map(|f| PreviewFile {
                path: f.path,
                contents: f.contents,
            })
            .collect(),
        required_files: files.required_files,
    }))
}

/// An agent's proxy state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentProxyStatus {
    /// The revision the server wants the agent to run.
    pub desired_revision: i64,
    /// The revision the agent last reported applying.
    pub applied_revision: i64,
    /// Whether the agent runs the desired revision.
    pub in_sync: bool,
    /// The agent's hosts with their status.
    pub hosts: Vec<ProxyHostView>,
    /// The Let's Encrypt certificates the agent obtains and renews for its hosts, as it last
    /// reported them.
    pub certificates: Vec<ManagedCertificateView>,
    /// How nginx reaches each container the hosts forward to (`container:NAME:PORT`
    /// upstreams), as the agent last reported it.
    pub networks: Vec<UpstreamNetworkView>,
}

/// How an agent's nginx reaches one upstream container.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamNetworkView {
    /// The container's name.
    pub container: String,
    /// The hosts that forward to it.
    pub hosts: Vec<ProxyHostId>,
    /// The network nginx reaches it over; absent when it cannot.
    pub network: Option<String>,
    /// The address nginx uses instead of the name (a container on the default bridge, or the
    /// host's nginx).
    pub address: Option<String>,
    /// Whether the agent connected nginx to `network` (it disconnects it when no host needs it
    /// any more).
    pub connected_by_agent: bool,
    /// Why nginx cannot reach it; its hosts answer 502 until it can.
    pub error: Option<String>,
}

impl From<infrapilot_core::nginx::upstreams::UpstreamNetworkStatus> for UpstreamNetworkView {
    fn from(n: infrapilot_core::nginx::upstreams::UpstreamNetworkStatus) -> Self {
        Self {
            container: n.container,
            hosts: n.hosts,
            network: n.network,
            address: n.address,
            connected_by_agent: n.connected_by_agent,
            error: n.error,
        }
    }
}

/// A Let's Encrypt certificate an agent manages.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManagedCertificateView {
    /// The id its hosts name in `ssl.certificate`.
    pub id: infrapilot_core::ids::CertificateId,
    /// The names it covers (or must cover once issued).
    pub domains: Vec<String>,
    /// `valid` (served), `pending` (not issued yet), `failing` (the last attempt failed; a
    /// valid certificate may still be served), `expired`.
    pub status: String,
    /// Its issuer, once issued.
    pub issuer: Option<String>,
    /// Valid until (RFC 3339), once issued.
    pub not_after: Option<String>,
    /// Whole days until it expires, once issued.
    pub days_until_expiry: Option<i64>,
    /// `ok`, `expiring` (30 days or fewer: renewal is due), `expired`.
    pub health: Option<String>,
    /// 0–100: 100 with 60 or more days left, falling to 0 at expiry.
    pub score: Option<u8>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// The last failure, verbatim from the ACME server or the agent.
    pub last_error: Option<String>,
    /// When the agent tries again after a failure (RFC 3339).
    pub next_attempt: Option<String>,
}

fn managed_view(
    c: infrapilot_core::desired::ManagedCertificateStatus,
    now_secs: i64,
) -> ManagedCertificateView {
    let r = c.record;
    let issued = r.not_after > 0;
    let health = issued.then(|| super::certificates::tls_health(r.not_after, now_secs));
    let status = if r.failures > 0 {
        "failing"
    } else if !issued {
        "pending"
    } else if r.not_after <= now_secs {
        "expired"
    } else {
        "valid"
    };
    ManagedCertificateView {
        id: c.id,
        domains: c.domains,
        status: status.to_owned(),
        issuer: issued.then_some(r.issuer),
        not_after: issued.then(|| rfc3339(r.not_after * 1_000_000)),
        days_until_expiry: health.map(|h| h.0),
        health: health.map(|h| h.1.to_owned()),
        score: health.map(|h| h.2),
        failures: r.failures,
        last_error: r.last_error,
        next_attempt: (r.failures > 0).then(|| rfc3339(r.next_attempt * 1_000_000)),
    }
}

async fn proxy_status(
    state: &AppState,
    scope: &OrgScope,
    id: AgentId,
) -> Result<AgentProxyStatus, AppError> {
    let mut tx = state.store().org_read(scope).await?;
    let (desired, applied) = tx.desired_revisions(id).await?;
    let hosts = tx.agent_proxy_hosts(id).await?;
    let certificates = tx.agent_certificates(id).await?;
    let networks = tx.agent_upstream_networks(id).await?;
    tx.commit().await?;
    let networks: Vec<infrapilot_core::nginx::upstreams::UpstreamNetworkStatus> =
        serde_json::from_str(&networks).map_err(AppError::internal)?;
    let certificates: Vec<infrapilot_core::desired::ManagedCertificateStatus> =
        serde_json::from_str(&certificates).map_err(AppError::internal)?;
    let now_secs = now_micros() / 1_000_000;
    Ok(AgentProxyStatus {
        desired_revision: desired,
        applied_revision: applied,
        in_sync: applied >= desired,
        hosts: hosts.into_iter().map(|h| view(h, Vec::new())).collect(),
        certificates: certificates
            .into_iter()
            .map(|c| managed_view(c, now_secs))
            .collect(),
        networks: networks.into_iter().map(Into::into).collect(),
    })
}

/// The agent's desired and applied revisions and its hosts' status.
#[utoipa::path(get, path = "/api/v1/agents/{id}/proxy", tag = "proxy", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 200, body = AgentProxyStatus),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn agent_proxy_status(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
) -> Result<axum::Json<AgentProxyStatus>, AppError> {
    let scope = scoped.require(Action::View, Resource::ProxyHost)?;
    Ok(axum::Json(proxy_status(&state, scope, id).await?))
}

/// Pushes the agent's desired state again and waits for its report (e.g. after fixing a
/// missing certificate file on the host).
#[utoipa::path(post, path = "/api/v1/agents/{id}/proxy/apply", tag = "proxy", security(("bearer" = [])),
    params(("id" = AgentId, Path, description = "The agent's id")), responses(
    (status = 200, body = AgentProxyStatus),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json", description = "The agent is offline"),
))]
pub async fn apply_agent_proxy(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AgentId>,
) -> Result<axum::Json<AgentProxyStatus>, AppError> {
    let scope = scoped.require(Action::Operate, Resource::ProxyHost)?;
    let mut tx = state.store().org_read(scope).await?;
    tx.agent(id).await?;
    tx.commit().await?;
    push_now(&state, scope.org(), id)
        .await
        .map_err(command_error)?;
    Ok(axum::Json(proxy_status(&state, scope, id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ProxyHostId {
        ProxyHostId::from_uuid(uuid::Uuid::from_u128(7))
    }

    fn field_of(e: AppError) -> String {
        match e {
            AppError::Invalid(fields) => fields[0].field.clone(),
            other => panic!("not a field error: {other:?}"),
        }
    }

    #[test]
    fn config_syntax_in_any_field_is_refused_with_the_field_named() {
        let base = json!({"domains": ["app.example.com"], "upstream": "http://web:8080"});
        assert!(check_host(HostKind::Proxy, id(), base.clone()).is_ok());
        for (field, value, named) in [
            ("domains", json!(["app.example.com;"]), "host.domains[0]"),
            (
                "domains",
                json!(["a.example.com { return 200; }"]),
                "host.domains[0]",
            ),
            (
                "domains",
                json!(["a.example.com\nlisten 81"]),
                "host.domains[0]",
            ),
            ("upstream", json!("http://web:8080;"), "host.upstream"),
            ("upstream", json!("http://web:8080/\"x"), "host.upstream"),
            (
                "upstream",
                json!("http://web:8080 } server {"),
                "host.upstream",
            ),
        ] {
            let mut host = base.clone();
            host[field] = value.clone();
            let e = check_host(HostKind::Proxy, id(), host)
                .err()
                .unwrap_or_else(|| panic!("{field} = {value} was accepted"));
            assert_eq!(field_of(e), named, "{field} = {value}");
        }
        let e = check_host(HostKind::Proxy, id(), json!({"domains": ["a.example.com"]}))
            .err()
            .unwrap();
        assert_eq!(field_of(e), "host", "a missing upstream names the host");
        let mut other_id = base.clone();
        other_id["id"] = json!(uuid::Uuid::from_u128(8));
        assert_eq!(
            field_of(check_host(HostKind::Proxy, id(), other_id).err().unwrap()),
            "host.id"
        );
    }
}
