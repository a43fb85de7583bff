//! Accounts, as the platform sees them. Accounts belong to their owners: an organization's
//! admins see their members' accounts but never create, change or delete one (they manage
//! memberships under `/api/v1/members`); the account itself changes its profile, password and
//! MFA under `/api/v1/auth`. Creating, changing (name, disabled, a password reset) and deleting
//! accounts is a super admin's, signed in with a session, and audited in the organization the
//! request acts in. The role matrix says so (`User` changes need `super_admin`), so these
//! handlers check nothing else about who is asking.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use infrapilot_core::identity::{Password, RevocationReason};
use infrapilot_core::ids::UserId;
use infrapilot_core::rbac::{Action, Effective, OrgRole, Resource};
use infrapilot_core::values::Email;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::members::check_member_limit;
use super::{Page, PageQuery, audit, display_name};
use crate::app::AppState;
use crate::auth::{ClientIp, Scoped};
use crate::error::{ApiJson, AppError, Problem};
use crate::store::{NewUser, UserRecord};
use crate::util::{new_id, now_micros, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// The e-mail address.
    pub email: String,
    /// The display name.
    pub name: String,
    /// `super_admin` or absent.
    pub platform_role: Option<String>,
    /// Whether sign-in is blocked.
    pub disabled: bool,
    /// Whether TOTP is on.
    pub mfa_enabled: bool,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

fn view(u: UserRecord) -> User {
    User {
        id: u.id,
        email: u.email.to_string(),
        name: u.name,
        platform_role: u.platform_role.map(|_| "super_admin".to_owned()),
        disabled: u.disabled,
        mfa_enabled: u.totp_enabled,
        created_at: rfc3339(u.created_at),
    }
}

/// A new account, made a member of the current organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The e-mail address (the login).
    pub email: String,
    /// The display name.
    pub name: String,
    /// The initial password (12–128 characters).
    pub password: String,
    /// The role in the current organization.
    pub role: OrgRole,
}

/// Account changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// A new display name.
    pub name: Option<String>,
    /// Block or allow sign-in (blocking also ends the account's sessions).
    pub disabled: Option<bool>,
    /// A new password, set by a super admin (ends the account's sessions).
    pub password: Option<String>,
}

/// Lists accounts: the current organization's members, or every account for a super admin.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<User>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_users(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(page): Query<PageQuery>,
) -> Result<axum::Json<Page<User>>, AppError> {
    let scope = scoped.require(Action::View, Resource::User)?;
    let limit = page.fetch_limit()?;
    if scope.role() == Effective::SuperAdmin {
        let mut g = state.store().global_read().await?;
        let rows = g.list_users(page.after()?, limit).await?;
        g.commit().await?;
        return Ok(axum::Json(Page::from_rows(
            rows,
            limit,
            |u| (u.created_at, u.id.to_string()),
            view,
        )));
    }
    let mut tx = state.store().org_read(scope).await?;
    let members = tx.list_members(page.after()?, limit).await?;
    tx.commit().await?;
    let mut g = state.store().global_read().await?;
    let mut rows = Vec::with_capacity(members.len());
    for m in members {
        rows.push((m.created_at, g.user(m.user_id).await?));
    }
    g.commit().await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        |(t, u)| (*t, u.id.to_string()),
        |(_, u)| view(u),
    )))
}

/// Creates an account and adds it to the current organization.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])), request_body = CreateUser, responses(
    (status = 201, body = User),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_user(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, axum::Json<User>), AppError> {
    let scope = scoped.require(Action::Create, Resource::User)?;
    let email = Email::parse(&body.email).map_err(|e| e.at("email"))?;
    let name = display_name("name", &body.name)?;
    let password =
        Password::new(&body.password, &[email.as_str(), &name]).map_err(|e| e.at("password"))?;
    let password_hash = super::hash_password(&state, password).await?;
    let now = now_micros();
    let id = UserId::from_uuid(new_id());
    let mut g = state.store().global().await?;
    g.insert_user(&NewUser {
        id,
        email: email.clone(),
        name,
        password_hash,
        platform_role: None,
        now,
    })
    .await?;
    let user = g.user(id).await?;
    let mut tx = g.into_org(scope).await?;
    check_member_limit(&mut tx).await?;
    tx.insert_member(id, body.role, now).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "user.create",
        "user",
        id,
        serde_json::json!({"email": email.as_str(), "role": body.role}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(view(user))))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The account's id")), responses(
    (status = 200, body = User),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_user(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(id): Path<UserId>,
) -> Result<axum::Json<User>, AppError> {
    let scope = scoped.require(Action::View, Resource::User)?;
    let mut g = state.store().global_read().await?;
    let user = g.user(id).await?;
    g.commit().await?;
    if scope.role() != Effective::SuperAdmin {
        let mut tx = state.store().org_read(scope).await?;
        let member = tx.member(id).await?;
        tx.commit().await?;
        member.ok_or(AppError::NotFound("user"))?;
    }
    Ok(axum::Json(view(user)))
}

/// Changes an account: name, disabled, or a new password.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The account's id")), request_body = UpdateUser, responses(
    (status = 200, body = User),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_user(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<UserId>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<axum::Json<User>, AppError> {
    let scope = scoped.require(Action::Update, Resource::User)?;
    if body.disabled == Some(true) && scope.actor().user() == Some(id) {
        return Err(AppError::Refused(
            "you cannot disable your own account".to_owned(),
        ));
    }
    let new_password = match &body.password {
        Some(p) => Some(Password::new(p, &[]).map_err(|e| e.at("password"))?),
        None => None,
    };
    let name = body
        .name
        .as_deref()
        .map(|n| display_name("name", n))
        .transpose()?;
    let mut g = state.store().global().await?;
    let mut user = g.user(id).await?;
    if let Some(name) = name {
        user.name = name;
    }
    let mut end_sessions = false;
    if let Some(disabled) = body.disabled {
        end_sessions |= disabled && !user.disabled;
        user.disabled = disabled;
    }
    if let Some(password) = new_password {
        user.password_hash = super::hash_password(&state, password).await?;
        end_sessions = true;
    }
    user.updated_at = now_micros();
    g.update_user(&user).await?;
    if end_sessions {
        super::auth::revoke_all_sessions(&mut g, id, RevocationReason::Administrative).await?;
    }
    let mut tx = g.into_org(scope).await?;
    audit(&state, &mut tx, ip, "user.update", "user", id, serde_json::json!({
        "name": body.name.is_some(), "disabled": body.disabled, "password_reset": body.password.is_some(),
    }))
    .await?;
    tx.commit().await?;
    Ok(axum::Json(view(user)))
}

/// Deletes an account.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The account's id")), responses(
    (status = 204, description = "Deleted"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_user(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<UserId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::User)?;
    if scope.actor().user() == Some(id) {
        return Err(AppError::Refused(
            "you cannot delete your own account here".to_owned(),
        ));
    }
    // One transaction: the owners are counted under the organization's lock, which is held
    // until the account's deletion commits, so two deletions cannot both pass the last-owner
    // check.
    let mut tx = state.store().org(scope).await?;
    let (lock, _) = tx.lock_organization().await?;
    let owners = tx.count_members(&lock, Some(OrgRole::Owner)).await?;
    let mut g = tx.into_global().await?;
    let user = g.user(id).await?;
    g.act_as_user(id).await?;
    // No role of the account changes in any of its organizations until the deletion commits
    // (an owner elsewhere could otherwise make it co-owner and step down meanwhile).
    g.lock_organizations_of(id).await?;
    let orgs = g.memberships_of(id).await?;
    if orgs
        .iter()
        .any(|(o, r)| o.id != scope.org() && *r == OrgRole::Owner)
    {
        return Err(AppError::Conflict(
            "the account owns other organizations; make someone else their owner or delete them first".to_owned(),
        ));
    }
    let is_owner = orgs
        .iter()
        .any(|(o, r)| o.id == scope.org() && *r == OrgRole::Owner);
    if is_owner && owners <= 1 {
        return Err(AppError::Refused(
            "this is the organization's last owner; make someone else owner first".to_owned(),
        ));
    }
    g.delete_user(id).await?;
    let mut tx = g.into_org(scope).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "user.delete",
        "user",
        id,
        serde_json::json!({"email": user.email.as_str()}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
