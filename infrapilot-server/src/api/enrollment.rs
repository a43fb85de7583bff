//! Agent enrollment tokens: create (the secret and the one-line install command are returned
//! once), list, inspect, revoke, delete.
//!
//! A token pins the instance CA's fingerprint, so the agent checks the server before it sends
//! the token's secret (as k3s's secure tokens do). Redemption is the agent issue's.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use infrapilot_core::enrollment::{
    EnrollmentToken, TokenPolicy, TokenPublicId, TokenRecord, TokenSecret, TokenStatus,
};
use infrapilot_core::rbac::{Action, Resource};
use infrapilot_core::values::{LabelKey, LabelValue, Labels};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageQuery, audit, display_name};
use crate::app::AppState;
use crate::auth::{ClientIp, Scoped};
use crate::error::{ApiJson, AppError, Problem};
use crate::store::StoredEnrollmentToken;
use crate::util::{now_secs, random, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(get_token, delete_token))
        .routes(routes!(revoke_token))
}

/// The default lifetime of a token: one day.
const DEFAULT_TTL_SECS: i64 = 86_400;
/// The longest lifetime: one year.
const MAX_TTL_SECS: i64 = 365 * 86_400;

/// An enrollment token, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentTokenView {
    /// Its public id (16 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Labels every agent enrolled with it gets.
    #[schema(value_type = BTreeMap<String, String>)]
    pub labels: Labels,
    /// `active`, `revoked`, `expired` or `exhausted`.
    #[schema(value_type = String)]
    pub status: TokenStatus,
    /// How many agents enrolled with it.
    pub uses: u32,
    /// How many may (absent: unlimited).
    pub max_uses: Option<u32>,
    /// When it expires (RFC 3339), if ever.
    pub expires_at: Option<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

fn view(t: &StoredEnrollmentToken, now: i64) -> EnrollmentTokenView {
    let r = &t.record;
    EnrollmentTokenView {
        id: r.public_id().to_string(),
        name: t.name.clone(),
        labels: r.labels().clone(),
        status: r.status(now),
        uses: r.uses(),
        max_uses: r.max_uses().map(NonZeroU32::get),
        expires_at: r.expires_at().map(|s| rfc3339(s * 1_000_000)),
        created_at: rfc3339(r.created_at() * 1_000_000),
    }
}

/// A new enrollment token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentToken {
    /// A name to recognise it by.
    pub name: String,
    /// Labels for the agents it enrolls (`env: production`, …).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Seconds until it expires (60 – 31536000, default 86400).
    pub expires_in_secs: Option<i64>,
    /// How many agents may enroll with it (default: unlimited until it expires).
    pub max_uses: Option<u32>,
}

/// A created token, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEnrollmentToken {
    /// The token's record.
    pub enrollment_token: EnrollmentTokenView,
    /// The token itself (`IPT1.<ca fingerprint>.<id>.<secret>`); it is not shown again.
    pub token: String,
    /// The command that installs, enrolls and starts an agent on a host.
    pub install_command: String,
}

pub(crate) fn labels_from(input: &BTreeMap<String, String>) -> Result<Labels, AppError> {
    let mut labels = Labels::new();
    for (k, v) in input {
        let key = LabelKey::parse(k).map_err(|e| e.at(format!("labels.{k}")))?;
        let value = LabelValue::parse(v).map_err(|e| e.at(format!("labels.{k}")))?;
        labels.insert(key, value).map_err(|e| e.at("labels"))?;
    }
    Ok(labels)
}

fn parse_id(text: &str) -> Result<TokenPublicId, AppError> {
    text.parse()
        .map_err(|_| AppError::NotFound("enrollment token"))
}

/// Lists enrollment tokens.
#[utoipa::path(get, path = "/api/v1/enrollment-tokens", tag = "tokens", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<EnrollmentTokenView>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_tokens(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(page): Query<PageQuery>,
) -> Result<axum::Json<Page<EnrollmentTokenView>>, AppError> {
    let scope = scoped.require(Action::View, Resource::EnrollmentToken)?;
    let limit = page.fetch_limit()?;
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx.list_enrollment_tokens(page.after()?, limit).await?;
    tx.commit().await?;
    let now = now_secs();
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        |t| (t.record.created_at(), t.record.public_id().to_string()),
        |t| view(&t, now),
    )))
}

/// Creates an enrollment token; returns its secret and the install command once.
#[utoipa::path(post, path = "/api/v1/enrollment-tokens", tag = "tokens", security(("bearer" = [])), request_body = CreateEnrollmentToken, responses(
    (status = 201, body = CreatedEnrollmentToken),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_token(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateEnrollmentToken>,
) -> Result<(StatusCode, axum::Json<CreatedEnrollmentToken>), AppError> {
    let scope = scoped.require(Action::Create, Resource::EnrollmentToken)?;
    let name = display_name("name", &body.name)?;
    let labels = labels_from(&body.labels)?;
    let ttl = body.expires_in_secs.unwrap_or(DEFAULT_TTL_SECS);
    if !(60..=MAX_TTL_SECS).contains(&ttl) {
        return Err(AppError::field(
            "expires_in_secs",
            format!("must be from 60 to {MAX_TTL_SECS}"),
        ));
    }
    let max_uses = match body.max_uses {
        None => None,
        Some(n) => Some(
            NonZeroU32::new(n)
                .filter(|n| n.get() <= 100_000)
                .ok_or_else(|| AppError::field("max_uses", "must be from 1 to 100000"))?,
        ),
    };
    let now = now_secs();
    let token = EnrollmentToken {
        ca_fingerprint: state.ca().fingerprint(),
        public_id: TokenPublicId::from_bytes(random()),
        secret: TokenSecret::from_bytes(random()),
    };
    let record = TokenRecord::issue(
        scope.org(),
        &token,
        TokenPolicy {
            labels,
            expires_at: Some(now + ttl),
            max_uses,
        },
        now,
    )
    .map_err(AppError::internal)?;
    let stored = StoredEnrollmentToken {
        name,
        record,
        created_by: scope.actor().user(),
    };
    let mut tx = state.store().org(scope).await?;
    tx.insert_enrollment_token(&stored).await?;
    audit(&state, &mut tx, ip, "enrollment_token.create", "enrollment_token", token.public_id, serde_json::json!({
        "name": stored.name, "labels": stored.record.labels(), "max_uses": body.max_uses, "expires_in_secs": ttl,
    }))
    .await?;
    tx.commit().await?;
    let text = token.to_string();
    let install_command = format!(
        "curl -fsSL {}/install.sh | INFRAPILOT_ENROLL_TOKEN='{text}' sh",
        state.config().public_url
    );
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedEnrollmentToken {
            enrollment_token: view(&stored, now),
            token: text,
            install_command,
        }),
    ))
}

/// One enrollment token.
#[utoipa::path(get, path = "/api/v1/enrollment-tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "The token's public id")), responses(
    (status = 200, body = EnrollmentTokenView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_token(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<String>,
) -> Result<axum::Json<EnrollmentTokenView>, AppError> {
    let scope = scoped.require(Action::View, Resource::EnrollmentToken)?;
    let mut tx = state.store().org_read(scope).await?;
    let token = tx.enrollment_token(parse_id(&id)?).await?;
    tx.commit().await?;
    Ok(axum::Json(view(&token, now_secs())))
}

/// Revokes a token: no further agent can enroll with it.
#[utoipa::path(post, path = "/api/v1/enrollment-tokens/{id}/revoke", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "The token's public id")), responses(
    (status = 200, body = EnrollmentTokenView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_token(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<axum::Json<EnrollmentTokenView>, AppError> {
    let scope = scoped.require(Action::Delete, Resource::EnrollmentToken)?;
    let mut tx = state.store().org(scope).await?;
    let mut token = tx.enrollment_token(parse_id(&id)?).await?;
    if !token.record.is_revoked() {
        token.record = token.record.revoke();
        tx.update_enrollment_token(&token.record).await?;
        audit(
            &state,
            &mut tx,
            ip,
            "enrollment_token.revoke",
            "enrollment_token",
            &id,
            serde_json::json!({"name": token.name}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(axum::Json(view(&token, now_secs())))
}

/// Deletes a token.
#[utoipa::path(delete, path = "/api/v1/enrollment-tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "The token's public id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_token(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::EnrollmentToken)?;
    let public_id = parse_id(&id)?;
    let mut tx = state.store().org(scope).await?;
    let token = tx.enrollment_token(public_id).await?;
    tx.delete_enrollment_token(public_id).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "enrollment_token.delete",
        "enrollment_token",
        &id,
        serde_json::json!({"name": token.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
