//! Personal API tokens, for automation scripts.
//!
//! A token belongs to one user in one organization and acts with at most its creator's role
//! (and never more than the creator's role at the time of use). The secret is shown once;
//! only its hash is stored.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use infrapilot_core::identity::{OpaqueToken, TokenKind};
use infrapilot_core::ids::{ApiTokenId, UserId};
use infrapilot_core::rbac::{Action, Effective, OrgRole, Resource};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageQuery, audit, display_name};
use crate::app::AppState;
use crate::auth::{ClientIp, Scoped};
use crate::error::{ApiJson, AppError, Problem};
use crate::store::ApiTokenRecord;
use crate::util::{new_id, now_micros, random, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_api_tokens, create_api_token))
        .routes(routes!(revoke_api_token))
}

/// An API token, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiToken {
    /// Its id.
    pub id: ApiTokenId,
    /// Its owner.
    pub user_id: UserId,
    /// Its name.
    pub name: String,
    /// The most it may do.
    pub role: OrgRole,
    /// When it expires (RFC 3339), if ever.
    pub expires_at: Option<String>,
    /// When it was last used (RFC 3339, to the minute).
    pub last_used_at: Option<String>,
    /// When it was revoked (RFC 3339).
    pub revoked_at: Option<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

fn view(t: ApiTokenRecord) -> ApiToken {
    ApiToken {
        id: t.id,
        user_id: t.user_id,
        name: t.name,
        role: t.role,
        expires_at: t.expires_at.map(rfc3339),
        last_used_at: t.last_used_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
        created_at: rfc3339(t.created_at),
    }
}

/// A new API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// A name to recognise it by.
    pub name: String,
    /// The most it may do (default and maximum: your own role).
    pub role: Option<OrgRole>,
    /// Days until it expires (1–3650); absent means never.
    pub expires_in_days: Option<i64>,
}

/// A created token with its secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiToken {
    /// The token.
    pub api_token: ApiToken,
    /// The secret to use as `Authorization: Bearer …`; it is not shown again.
    pub token: String,
}

/// Listing options.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenListQuery {
    /// Admins: list every member's tokens, not only your own.
    pub all: Option<bool>,
    /// How many items to return (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn is_admin(role: Effective) -> bool {
    role >= Effective::Org(OrgRole::Admin)
}

/// Lists API tokens: your own, or (admins, `all=true`) everyone's in the organization.
#[utoipa::path(get, path = "/api/v1/api-tokens", tag = "tokens", security(("bearer" = [])), params(TokenListQuery), responses(
    (status = 200, body = Page<ApiToken>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_api_tokens(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(q): Query<TokenListQuery>,
) -> Result<axum::Json<Page<ApiToken>>, AppError> {
    let scope = scoped.require(Action::View, Resource::ApiToken)?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.fetch_limit()?;
    let owner = if q.all == Some(true) {
        if !is_admin(scope.role()) {
            return Err(AppError::Forbidden {
                action: Action::View,
                resource: Resource::User,
            });
        }
        None
    } else {
        Some(
            scope
                .actor()
                .user()
                .ok_or(AppError::Unauthorized("sign in as a user"))?,
        )
    };
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx.list_api_tokens(owner, page.after()?, limit).await?;
    tx.commit().await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        |t| (t.created_at, t.id.to_string()),
        view,
    )))
}

/// Creates an API token for yourself in the current organization.
#[utoipa::path(post, path = "/api/v1/api-tokens", tag = "tokens", security(("bearer" = [])), request_body = CreateApiToken, responses(
    (status = 201, body = CreatedApiToken),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_api_token(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateApiToken>,
) -> Result<(StatusCode, axum::Json<CreatedApiToken>), AppError> {
    let scope = scoped.require(Action::Create, Resource::ApiToken)?;
    let user = scope
        .actor()
        .user()
        .ok_or(AppError::Unauthorized("sign in as a user"))?;
    if matches!(scope.actor(), crate::store::Actor::ApiToken { .. }) {
        return Err(AppError::Refused(
            "an API token cannot create API tokens; sign in".to_owned(),
        ));
    }
    let name = display_name("name", &body.name)?;
    let ceiling = match scope.role() {
        Effective::SuperAdmin => OrgRole::Owner,
        Effective::Org(role) => role,
    };
    let role = body.role.unwrap_or(ceiling);
    if role > ceiling {
        return Err(AppError::field(
            "role",
            format!("cannot exceed your own role ({ceiling})"),
        ));
    }
    let now = now_micros();
    let expires_at = match body.expires_in_days {
        None => None,
        Some(days) if (1..=3650).contains(&days) => Some(now + days * 86_400_000_000),
        Some(_) => return Err(AppError::field("expires_in_days", "must be from 1 to 3650")),
    };
    let id = ApiTokenId::from_uuid(new_id());
    let token = OpaqueToken::new(TokenKind::PersonalApiToken, id.as_uuid(), random());
    let record = ApiTokenRecord {
        id,
        user_id: user,
        name,
        secret_hash: token.hash().to_hex(),
        role,
        expires_at,
        last_used_at: None,
        revoked_at: None,
        created_at: now,
    };
    let mut tx = state.store().org(scope).await?;
    tx.insert_api_token(&record).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "api_token.create",
        "api_token",
        id,
        serde_json::json!({
            "name": record.name, "role": role, "expires_at": expires_at,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedApiToken {
            api_token: view(record),
            token: token.to_string(),
        }),
    ))
}

/// Revokes an API token (your own; admins: anyone's in the organization).
#[utoipa::path(delete, path = "/api/v1/api-tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = ApiTokenId, Path, description = "The token's id")), responses(
    (status = 204, description = "Revoked"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_api_token(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<ApiTokenId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::ApiToken)?;
    let mut tx = state.store().org(scope).await?;
    let mut token = tx.api_token(id).await?;
    if Some(token.user_id) != scope.actor().user() && !is_admin(scope.role()) {
        return Err(AppError::NotFound("api token"));
    }
    if token.revoked_at.is_none() {
        token.revoked_at = Some(now_micros());
        tx.update_api_token(&token).await?;
        audit(
            &state,
            &mut tx,
            ip,
            "api_token.revoke",
            "api_token",
            id,
            serde_json::json!({"name": token.name}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
