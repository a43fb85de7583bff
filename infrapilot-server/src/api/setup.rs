//! First-run setup: creates the super admin and the first organization, exactly once.
//!
//! The request must carry the setup code the server logs on first start (derived from its
//! secret key, see [`crate::keys`]), so whoever reaches the port first cannot take the
//! instance.

use axum::extract::State;
use axum::http::StatusCode;
use infrapilot_core::identity::{Password, ThrottleKey, ThrottlePolicy};
use infrapilot_core::ids::{OrgId, UserId};
use infrapilot_core::rbac::{Effective, OrgRole, PlatformRole};
use infrapilot_core::values::Email;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Attempt;
use super::{audit, display_name, slug, slug_from_name};
use crate::app::AppState;
use crate::auth::ClientIp;
use crate::error::{ApiJson, AppError, Problem};
use crate::store::{Actor, NewUser, OrgRecord, OrgScope};
use crate::util::{new_id, now_micros};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(setup_status, setup))
}

/// Whether setup is still needed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupStatus {
    /// `true` until setup has been done.
    pub setup_required: bool,
    /// `community` or `saas`.
    pub edition: crate::config::Edition,
}

/// The first administrator and organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The code from the server's log.
    pub setup_code: String,
    /// The administrator's e-mail address (their login).
    pub email: String,
    /// The administrator's name.
    pub name: String,
    /// The administrator's password (12–128 characters).
    pub password: String,
    /// The first organization's name.
    pub organization_name: String,
    /// The first organization's slug (derived from the name when absent).
    pub organization_slug: Option<String>,
}

/// What setup created.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupResponse {
    /// The super admin's id.
    pub user_id: UserId,
    /// The organization's id.
    pub organization_id: OrgId,
    /// The organization's slug.
    pub organization_slug: String,
}

/// Whether first-run setup is still needed.
#[utoipa::path(get, path = "/api/v1/setup", tag = "setup", responses((status = 200, body = SetupStatus)))]
pub async fn setup_status(
    State(state): State<AppState>,
) -> Result<axum::Json<SetupStatus>, AppError> {
    let mut tx = state.store().global_read().await?;
    let done = tx.setup_completed().await?;
    tx.commit().await?;
    Ok(axum::Json(SetupStatus {
        setup_required: !done,
        edition: state.config().edition,
    }))
}

/// Creates the super admin and the first organization. Works exactly once.
#[utoipa::path(post, path = "/api/v1/setup", tag = "setup", request_body = SetupRequest, responses(
    (status = 201, body = SetupResponse),
    (status = 401, body = Problem, content_type = "application/problem+json", description = "Wrong setup code"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "Setup was already done"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn setup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<SetupRequest>,
) -> Result<(StatusCode, axum::Json<SetupResponse>), AppError> {
    let email = Email::parse(&body.email).map_err(|e| e.at("email"))?;
    let name = display_name("name", &body.name)?;
    let password =
        Password::new(&body.password, &[email.as_str(), &name]).map_err(|e| e.at("password"))?;
    let org_name = display_name("organization_name", &body.organization_name)?;
    let org_id = OrgId::from_uuid(new_id());
    let org_slug = match &body.organization_slug {
        Some(s) => slug("organization_slug", s)?,
        None => slug_from_name(&org_name, &org_id.to_string()[..8]),
    };
    let code_ok: bool = body
        .setup_code
        .trim()
        .as_bytes()
        .ct_eq(state.keys().setup_code().as_bytes())
        .into();
    // Wrong codes are counted (one key for the instance), so the code cannot be scanned.
    let mut tx = state.store().global().await?;
    let now_s = crate::util::now_secs();
    let attempt = Attempt::begin(&mut tx, ThrottleKey::Setup, ThrottlePolicy::SETUP, now_s).await?;
    let refusal = AppError::Unauthorized(
        "the setup code is wrong; it is in the server's log from its first start",
    );
    attempt
        .settle(tx, code_ok, now_s, refusal)
        .await?
        .commit()
        .await?;
    let hash = super::hash_password(&state, password).await?;
    let now = now_micros();
    let user_id = UserId::from_uuid(new_id());
    let mut tx = state.store().global().await?;
    if tx.setup_completed().await? {
        return Err(AppError::Conflict(
            "setup was already done; sign in instead".to_owned(),
        ));
    }
    tx.complete_setup(now)
        .await
        .map_err(|_| AppError::Conflict("setup was already done".to_owned()))?;
    tx.insert_user(&NewUser {
        id: user_id,
        email: email.clone(),
        name,
        password_hash: hash,
        platform_role: Some(PlatformRole::SuperAdmin),
        now,
    })
    .await?;
    tx.insert_org(&OrgRecord {
        id: org_id,
        name: org_name,
        slug: org_slug.clone(),
        max_users: None,
        max_agents: None,
        created_at: now,
        updated_at: now,
    })
    .await?;
    let scope = OrgScope::new(org_id, Actor::User(user_id), Effective::SuperAdmin);
    let mut tx = tx.into_org(&scope).await?;
    tx.insert_member(user_id, OrgRole::Owner, now).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "instance.setup",
        "organization",
        org_id,
        serde_json::json!({
            "email": email.as_str(), "organization_slug": org_slug,
        }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%user_id, %org_id, "first-run setup done");
    Ok((
        StatusCode::CREATED,
        axum::Json(SetupResponse {
            user_id,
            organization_id: org_id,
            organization_slug: org_slug,
        }),
    ))
}
