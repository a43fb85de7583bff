//! Alerts over HTTP: notification channels (SMTP, Slack, webhook; secrets sealed at rest and
//! shown only as set or not set; a test send that reports the remote's status, never its body),
//! rules (the core's rule documents, validated field by field) with the channels they
//! notify, and the alert history with each delivery's status.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use infrapilot_core::alerts::{AlertRule, AlertRuleSpec, RuleError, RuleState};
use infrapilot_core::ids::{AlertChannelId, AlertRuleId};
use infrapilot_core::rbac::{Action, Resource};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageQuery, audit, display_name};
use crate::AppState;
use crate::alerts::channels::{ChannelConfig, ChannelInput, deliver};
use crate::alerts::engine::{notification, open_config};
use crate::auth::{ClientIp, Scoped};
use crate::error::{ApiJson, AppError, FieldError, Problem};
use crate::store::{AlertRecord, ChannelRecord, RuleRecord, StoreError};
use crate::util::{new_id, now_micros, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(get_channel, update_channel, delete_channel))
        .routes(routes!(test_channel))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, update_rule, delete_rule))
        .routes(routes!(list_alerts))
        .routes(routes!(get_alert))
}

/// A channel to create or change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "ops webhook",
    "config": {
        "type": "webhook",
        "url": "https://hooks.example.com/infrapilot",
        "headers": {"Authorization": "Bearer 0123456789abcdef"},
        "secret": "a signing key of some length"
    }
}))]
pub struct ChannelBody {
    /// A name to recognise it by (1–100 characters), unique in the organization.
    pub name: String,
    /// `{"type": "smtp", "host", "port", "security": "starttls"|"tls"|"none", "username",
    /// "password", "from", "to": [...]}`, `{"type": "slack", "webhook_url"}` or
    /// `{"type": "webhook", "url", "headers": {...}, "secret"}`. On a change, a secret left
    /// out keeps its stored value, and so does a webhook header whose value is `null` (while
    /// the `url` stays the same); header values are shown only as set.
    #[schema(value_type = Object)]
    pub config: Value,
}

/// A channel as the API shows it: secrets only as set or not set.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `smtp`, `slack` or `webhook`.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
    /// The configuration, every secret replaced by `{"set": true|false}`.
    #[schema(value_type = Object)]
    pub config: Value,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

fn channel_view(state: &AppState, c: &ChannelRecord) -> Result<ChannelView, AppError> {
    let config = open_config(state, &c.config_sealed).map_err(AppError::internal)?;
    Ok(ChannelView {
        id: c.id.to_string(),
        name: c.name.clone(),
        kind: c.kind.clone(),
        config: config.redacted(),
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    })
}

fn checked_config(
    input: Value,
    previous: Option<&ChannelConfig>,
) -> Result<ChannelConfig, AppError> {
    let input: ChannelInput = serde_path_to_error::deserialize(&input)
        .map_err(|e| super::proxy::field_error("config", &input, e))?;
    ChannelConfig::validate(input, previous).map_err(|problems| {
        AppError::Invalid(
            problems
                .into_iter()
                .map(|p| FieldError {
                    field: format!("config.{}", p.field),
                    reason: p.reason,
                })
                .collect(),
        )
    })
}

fn seal(state: &AppState, config: &ChannelConfig) -> Result<String, AppError> {
    let json = serde_json::to_vec(config).map_err(AppError::internal)?;
    Ok(state.keys().seal(&json))
}

/// Every channel.
#[utoipa::path(get, path = "/api/v1/alert-channels", tag = "alerts", security(("bearer" = [])), responses(
    (status = 200, body = Vec<ChannelView>),
))]
pub async fn list_channels(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<axum::Json<Vec<ChannelView>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Alert)?;
    let mut tx = state.store().org_read(scope).await?;
    let channels = tx.list_channels().await?;
    tx.commit().await?;
    channels
        .iter()
        .map(|c| channel_view(&state, c))
        .collect::<Result<_, _>>()
        .map(axum::Json)
}

/// Creates a channel (audited).
#[utoipa::path(post, path = "/api/v1/alert-channels", tag = "alerts", security(("bearer" = [])),
    request_body = ChannelBody, responses(
    (status = 201, body = ChannelView),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_channel(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<ChannelBody>,
) -> Result<(StatusCode, axum::Json<ChannelView>), AppError> {
    let scope = scoped.require(Action::Create, Resource::Alert)?;
    let name = display_name("name", &body.name)?;
    let config = checked_config(body.config, None)?;
    let now = now_micros();
    let record = ChannelRecord {
        id: AlertChannelId::from_uuid(new_id()),
        name,
        kind: config.kind().to_owned(),
        config_sealed: seal(&state, &config)?,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.store().org(scope).await?;
    tx.insert_channel(&record).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "alert_channel.create",
        "alert_channel",
        record.id,
        json!({"name": record.name, "type": record.kind}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(channel_view(&state, &record)?),
    ))
}

/// One channel.
#[utoipa::path(get, path = "/api/v1/alert-channels/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = AlertChannelId, Path, description = "The channel's id")), responses(
    (status = 200, body = ChannelView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_channel(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AlertChannelId>,
) -> Result<axum::Json<ChannelView>, AppError> {
    let scope = scoped.require(Action::View, Resource::Alert)?;
    let mut tx = state.store().org_read(scope).await?;
    let channel = tx.channel(id).await?;
    tx.commit().await?;
    channel_view(&state, &channel).map(axum::Json)
}

/// Changes a channel (audited); secrets left out keep their stored values.
#[utoipa::path(put, path = "/api/v1/alert-channels/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = AlertChannelId, Path, description = "The channel's id")),
    request_body = ChannelBody, responses(
    (status = 200, body = ChannelView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_channel(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AlertChannelId>,
    ApiJson(body): ApiJson<ChannelBody>,
) -> Result<axum::Json<ChannelView>, AppError> {
    let scope = scoped.require(Action::Update, Resource::Alert)?;
    let name = display_name("name", &body.name)?;
    let mut tx = state.store().org(scope).await?;
    let mut record = tx.channel(id).await?;
    let previous = open_config(&state, &record.config_sealed).map_err(AppError::internal)?;
    let config = checked_config(body.config, Some(&previous))?;
    record.name = name;
    record.kind = config.kind().to_owned();
    record.config_sealed = seal(&state, &config)?;
    record.updated_at = now_micros();
    tx.update_channel(&record).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "alert_channel.update",
        "alert_channel",
        record.id,
        json!({"name": record.name, "type": record.kind}),
    )
    .await?;
    tx.commit().await?;
    channel_view(&state, &record).map(axum::Json)
}

/// Deletes a channel (audited); rules stop notifying it.
#[utoipa::path(delete, path = "/api/v1/alert-channels/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = AlertChannelId, Path, description = "The channel's id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_channel(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AlertChannelId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Alert)?;
    let mut tx = state.store().org(scope).await?;
    tx.lock_alert_cursor(now_micros()).await?;
    let channel = tx.channel(id).await?;
    tx.delete_channel(id).await?;
    for mut rule in tx.list_rules().await? {
        if rule.channels.contains(&id) {
            rule.channels.retain(|c| *c != id);
            tx.update_rule(&rule).await?;
        }
    }
    audit(
        &state,
        &mut tx,
        ip,
        "alert_channel.delete",
        "alert_channel",
        id,
        json!({"name": channel.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The outcome of a test send.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    /// Whether the remote accepted it.
    pub ok: bool,
    /// The remote's own error when it did not.
    pub error: Option<String>,
}

/// Sends a test notification through the channel now and says what the remote answered.
#[utoipa::path(post, path = "/api/v1/alert-channels/{id}/test", tag = "alerts", security(("bearer" = [])),
    params(("id" = AlertChannelId, Path, description = "The channel's id")), responses(
    (status = 200, body = TestResult),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn test_channel(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AlertChannelId>,
) -> Result<axum::Json<TestResult>, AppError> {
    let scope = scoped.require(Action::Operate, Resource::Alert)?;
    let mut tx = state.store().org_read(scope).await?;
    let channel = tx.channel(id).await?;
    tx.commit().await?;
    let config = open_config(&state, &channel.config_sealed).map_err(AppError::internal)?;
    let now = now_micros();
    let alert = AlertRecord {
        id: format!("test-{}", new_id()),
        rule_id: AlertRuleId::from_uuid(uuid::Uuid::nil()),
        rule_name: "Test notification".to_owned(),
        subject_key: String::new(),
        subject: format!("channel {}", channel.name),
        severity: "info".to_owned(),
        summary: "This is a test notification from InfraPilot: the channel works.".to_owned(),
        details: json!({}),
        fired_at: now,
        resolved_at: None,
        resolution: None,
    };
    let n = notification(&state, scope.org(), &alert, "test");
    let result = deliver(&config, &n, state.outbound(), now / 1_000_000).await;
    let error = result.err().map(|e| e.to_string());
    let mut tx = state.store().org(scope).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "alert_channel.test",
        "alert_channel",
        id,
        json!({"ok": error.is_none(), "error": error}),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(TestResult {
        ok: error.is_none(),
        error,
    }))
}

/// A rule to create or change: the core's rule document (`name`, `kind` with its
/// parameters, `scope`, `severity`, `cooldown_secs`, `enabled`, `notify_on_resolve`) plus
/// the channels to notify. Unknown fields are refused. An `agent_offline` rule's
/// `after_secs` must be at least two heartbeat intervals plus 10 seconds (70 with the
/// default `INFRAPILOT_HEARTBEAT_SECS` of 30): a connected agent is only heard from once per
/// interval, so a shorter delay would fire on it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "rule": {
        "name": "agent silent",
        "kind": "agent_offline",
        "after_secs": 300,
        "scope": {"agent_selector": {}},
        "severity": "critical",
        "cooldown_secs": 3600,
        "enabled": true,
        "notify_on_resolve": true
    },
    "channels": []
}))]
pub struct RuleBody {
    /// The rule document; see the core's `AlertRuleSpec` (its `id` is the server's).
    #[schema(value_type = Object)]
    pub rule: Value,
    /// The ids of the channels its alerts go to.
    #[serde(default)]
    pub channels: Vec<AlertChannelId>,
}

/// A rule as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    /// The rule document.
    #[schema(value_type = Object)]
    pub rule: Value,
    /// The channels it notifies.
    pub channels: Vec<String>,
    /// The subjects it currently fires for.
    #[schema(value_type = Vec<Object>)]
    pub active: Vec<Value>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed or was evaluated (RFC 3339).
    pub updated_at: String,
}

fn rule_view(r: &RuleRecord) -> RuleView {
    RuleView {
        rule: serde_json::to_value(&r.spec).unwrap_or(Value::Null),
        channels: r.channels.iter().map(ToString::to_string).collect(),
        active: r
            .state
            .active()
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .collect(),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

fn rule_error(e: RuleError) -> AppError {
    let field = match &e {
        RuleError::InvalidName { .. } => "rule.name".to_owned(),
        RuleError::ParameterOutOfRange { parameter, .. }
        | RuleError::ShorterThanHeartbeat { parameter, .. } => format!("rule.{parameter}"),
        RuleError::ContainerScopeNotApplicable { .. } => "rule.scope.containers".to_owned(),
        _ => "rule".to_owned(),
    };
    AppError::field(field, e.to_string())
}

/// Validates a rule body with id `id` for agents sending a heartbeat every `heartbeat`;
/// errors name the field under `rule`.
async fn checked_rule(
    tx: &mut crate::store::OrgTx,
    id: AlertRuleId,
    body: RuleBody,
    heartbeat: std::time::Duration,
) -> Result<(AlertRuleSpec, Vec<AlertChannelId>), AppError> {
    let mut rule = body.rule;
    let Some(object) = rule.as_object_mut() else {
        return Err(AppError::field("rule", "must be an object"));
    };
    object.insert("id".to_owned(), json!(id));
    let spec: AlertRuleSpec = serde_path_to_error::deserialize(&rule)
        .map_err(|e| super::proxy::field_error("rule", &rule, e))?;
    let rule = AlertRule::new(spec).map_err(rule_error)?;
    let heartbeat_secs = u32::try_from(heartbeat.as_secs()).unwrap_or(u32::MAX);
    rule.check_heartbeat(heartbeat_secs).map_err(rule_error)?;
    let spec = rule.spec().clone();
    if body.channels.len() > 20 {
        return Err(AppError::field("channels", "may name at most 20 channels"));
    }
    for (i, channel) in body.channels.iter().enumerate() {
        match tx.channel(*channel).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                return Err(AppError::field(
                    format!("channels[{i}]"),
                    "names no channel of this organization",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut channels = body.channels;
    channels.retain(|c| seen.insert(*c));
    Ok((spec, channels))
}

/// Every rule.
#[utoipa::path(get, path = "/api/v1/alert-rules", tag = "alerts", security(("bearer" = [])), responses(
    (status = 200, body = Vec<RuleView>),
))]
pub async fn list_rules(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<axum::Json<Vec<RuleView>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Alert)?;
    let mut tx = state.store().org_read(scope).await?;
    let rules = tx.list_rules().await?;
    tx.commit().await?;
    Ok(axum::Json(rules.iter().map(rule_view).collect()))
}

/// Creates a rule (audited).
#[utoipa::path(post, path = "/api/v1/alert-rules", tag = "alerts", security(("bearer" = [])),
    request_body = RuleBody, responses(
    (status = 201, body = RuleView),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_rule(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RuleBody>,
) -> Result<(StatusCode, axum::Json<RuleView>), AppError> {
    let scope = scoped.require(Action::Create, Resource::Alert)?;
    let id = AlertRuleId::from_uuid(new_id());
    let mut tx = state.store().org(scope).await?;
    let (spec, channels) = checked_rule(&mut tx, id, body, state.config().heartbeat).await?;
    let now = now_micros();
    let record = RuleRecord {
        spec,
        channels,
        state: RuleState::new(),
        created_at: now,
        updated_at: now,
    };
    tx.insert_rule(&record).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "alert_rule.create",
        "alert_rule",
        id,
        json!({"rule": record.spec, "channels": record.channels}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(rule_view(&record))))
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/alert-rules/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = AlertRuleId, Path, description = "The rule's id")), responses(
    (status = 200, body = RuleView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_rule(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<AlertRuleId>,
) -> Result<axum::Json<RuleView>, AppError> {
    let scope = scoped.require(Action::View, Resource::Alert)?;
    let mut tx = state.store().org_read(scope).await?;
    let rule = tx.rule(id).await?;
    tx.commit().await?;
    Ok(axum::Json(rule_view(&rule)))
}

/// Changes a rule (audited). A change of what it watches starts its memory over.
#[utoipa::path(put, path = "/api/v1/alert-rules/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = AlertRuleId, Path, description = "The rule's id")),
    request_body = RuleBody, responses(
    (status = 200, body = RuleView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_rule(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AlertRuleId>,
    ApiJson(body): ApiJson<RuleBody>,
) -> Result<axum::Json<RuleView>, AppError> {
    let scope = scoped.require(Action::Update, Resource::Alert)?;
    let mut tx = state.store().org(scope).await?;
    // Not while an evaluation of this organization runs: it would write back the old state.
    tx.lock_alert_cursor(now_micros()).await?;
    let mut record = tx.rule(id).await?;
    let (spec, channels) = checked_rule(&mut tx, id, body, state.config().heartbeat).await?;
    if spec.kind != record.spec.kind || spec.scope != record.spec.scope {
        record.state = RuleState::new();
    }
    record.spec = spec;
    record.channels = channels;
    record.updated_at = now_micros();
    tx.update_rule(&record).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "alert_rule.update",
        "alert_rule",
        id,
        json!({"rule": record.spec, "channels": record.channels}),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(rule_view(&record)))
}

/// Deletes a rule (audited); its history stays.
#[utoipa::path(delete, path = "/api/v1/alert-rules/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = AlertRuleId, Path, description = "The rule's id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_rule(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<AlertRuleId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Alert)?;
    let mut tx = state.store().org(scope).await?;
    let rule = tx.rule(id).await?;
    tx.delete_rule(id).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "alert_rule.delete",
        "alert_rule",
        id,
        json!({"name": rule.spec.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which alerts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `firing` (open) or `resolved`.
    pub status: Option<String>,
    /// Only this rule's.
    pub rule_id: Option<AlertRuleId>,
    /// How many (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One delivery of an alert to a channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The channel.
    pub channel_id: String,
    /// `firing` or `resolved`.
    pub event: String,
    /// `pending` (waiting for its next attempt), `sending`, `sent` or `failed` (given up).
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The next attempt (RFC 3339), while pending.
    pub next_attempt_at: Option<String>,
    /// The remote's own words for the last failure.
    pub last_error: Option<String>,
    /// When it was sent (RFC 3339).
    pub sent_at: Option<String>,
}

/// An alert with its deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertView {
    /// Its id.
    pub id: String,
    /// The rule that fired.
    pub rule_id: String,
    /// The rule's name then.
    pub rule_name: String,
    /// What it is about.
    pub subject: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// What happened.
    pub summary: String,
    /// The measured value and the subject, as the rule saw them.
    #[schema(value_type = Object)]
    pub details: Value,
    /// When it fired (RFC 3339).
    pub fired_at: String,
    /// When it resolved (RFC 3339).
    pub resolved_at: Option<String>,
    /// Why it resolved.
    pub resolution: Option<String>,
    /// Its deliveries, per channel.
    pub deliveries: Vec<DeliveryView>,
}

async fn alert_view(tx: &mut crate::store::OrgTx, a: AlertRecord) -> Result<AlertView, AppError> {
    let deliveries = tx.deliveries_of(&a.id).await?;
    Ok(AlertView {
        status: if a.resolved_at.is_some() {
            "resolved"
        } else {
            "firing"
        }
        .to_owned(),
        id: a.id,
        rule_id: a.rule_id.to_string(),
        rule_name: a.rule_name,
        subject: a.subject,
        severity: a.severity,
        summary: a.summary,
        details: a.details,
        fired_at: rfc3339(a.fired_at),
        resolved_at: a.resolved_at.map(rfc3339),
        resolution: a.resolution,
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryView {
                channel_id: d.channel_id.to_string(),
                next_attempt_at: (d.status == "pending").then(|| rfc3339(d.next_attempt_at)),
                event: d.event,
                status: d.status,
                attempts: d.attempts,
                last_error: d.last_error,
                sent_at: d.sent_at.map(rfc3339),
            })
            .collect(),
    })
}

/// The alert history, newest first, with each delivery's status.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", security(("bearer" = [])),
    params(AlertQuery), responses(
    (status = 200, body = Page<AlertView>),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_alerts(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(q): Query<AlertQuery>,
) -> Result<axum::Json<Page<AlertView>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Alert)?;
    let open = match q.status.as_deref() {
        None => None,
        Some("firing") => Some(true),
        Some("resolved") => Some(false),
        Some(_) => return Err(AppError::field("status", "must be firing or resolved")),
    };
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.fetch_limit()?;
    let mut tx = state.store().org_read(scope).await?;
    let mut rows = tx
        .list_alerts(open, q.rule_id, page.after()?, limit)
        .await?;
    let size = usize::try_from(limit - 1).unwrap_or(0);
    let next_cursor = if rows.len() > size {
        rows.truncate(size);
        rows.last().map(|a| super::cursor(a.fired_at, &a.id))
    } else {
        None
    };
    let mut items = Vec::with_capacity(rows.len());
    for a in rows {
        items.push(alert_view(&mut tx, a).await?);
    }
    tx.commit().await?;
    Ok(axum::Json(Page { items, next_cursor }))
}

/// One alert.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "The alert's id")), responses(
    (status = 200, body = AlertView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_alert(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<String>,
) -> Result<axum::Json<AlertView>, AppError> {
    let scope = scoped.require(Action::View, Resource::Alert)?;
    if id.len() > 64 {
        return Err(AppError::NotFound("alert"));
    }
    let mut tx = state.store().org_read(scope).await?;
    let alert = tx.alert(&id).await?;
    let view = alert_view(&mut tx, alert).await?;
    tx.commit().await?;
    Ok(axum::Json(view))
}
