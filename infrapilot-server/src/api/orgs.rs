//! Organizations: the caller's list, sign-up and creation (SaaS), and the current
//! organization's settings and deletion.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use infrapilot_core::identity::Password;
use infrapilot_core::ids::{OrgId, UserId};
use infrapilot_core::rbac::{Action, Effective, OrgRole, PlatformRole, Resource};
use infrapilot_core::values::Email;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageQuery, audit, display_name, slug, slug_from_name};
use crate::app::AppState;
use crate::auth::{ClientIp, Scoped, SignedIn};
use crate::config::Edition;
use crate::error::{ApiJson, AppError, Problem};
use crate::store::{Actor, NewUser, OrgRecord, OrgScope};
use crate::util::{new_id, now_micros, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(signup))
        .routes(routes!(get_org, update_org, delete_org))
}

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct Organization {
    /// Its id.
    pub id: OrgId,
    /// Its name.
    pub name: String,
    /// Its slug.
    pub slug: String,
    /// The most members, if limited.
    pub max_users: Option<i64>,
    /// The most agents, if limited.
    pub max_agents: Option<i64>,
    /// The caller's role, when a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<OrgRole>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

fn view(org: OrgRecord, role: Option<OrgRole>) -> Organization {
    Organization {
        id: org.id,
        name: org.name,
        slug: org.slug,
        max_users: org.max_users,
        max_agents: org.max_agents,
        role,
        created_at: rfc3339(org.created_at),
    }
}

/// A new organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Its name.
    pub name: String,
    /// Its slug (derived from the name when absent).
    pub slug: Option<String>,
}

/// Settings changes; limits only by a super admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrg {
    /// A new name.
    pub name: Option<String>,
    /// A new slug.
    pub slug: Option<String>,
    /// The most members (0 or absent: unchanged; -1: unlimited).
    pub max_users: Option<i64>,
    /// The most agents (-1: unlimited).
    pub max_agents: Option<i64>,
}

/// Sign-up (SaaS edition): a new account owning a new organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    /// The e-mail address.
    pub email: String,
    /// The display name.
    pub name: String,
    /// The password (12–128 characters).
    pub password: String,
    /// The organization's name.
    pub organization_name: String,
}

/// Deleting needs the slug typed again.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfirmQuery {
    /// The organization's slug.
    pub confirm: Option<String>,
}

/// What sign-up created.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedUp {
    /// The new account.
    pub user_id: UserId,
    /// The new organization.
    pub organization: Organization,
}

/// The organizations the caller belongs to (all of them for a super admin).
#[utoipa::path(get, path = "/api/v1/orgs", tag = "organizations", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<Organization>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_orgs(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    Query(page): Query<PageQuery>,
) -> Result<axum::Json<Page<Organization>>, AppError> {
    let limit = page.fetch_limit()?;
    let mut tx = state.store().global_read().await?;
    tx.act_as_user(principal.user).await?;
    let mine = tx.memberships_of(principal.user).await?;
    let page = if principal.platform_role == Some(PlatformRole::SuperAdmin) {
        let rows = tx.list_orgs(page.after()?, limit).await?;
        Page::from_rows(
            rows,
            limit,
            |o| (o.created_at, o.id.to_string()),
            |o| {
                let role = mine.iter().find(|(m, _)| m.id == o.id).map(|(_, r)| *r);
                view(o, role)
            },
        )
    } else {
        let after = page.after()?;
        let rows: Vec<_> = mine
            .into_iter()
            .filter(|(o, _)| {
                after
                    .as_ref()
                    .is_none_or(|(t, id)| (o.created_at, o.id.to_string()) > (*t, id.clone()))
            })
            .take(usize::try_from(limit).unwrap_or(0))
            .collect();
        Page::from_rows(
            rows,
            limit,
            |(o, _)| (o.created_at, o.id.to_string()),
            |(o, r)| view(o, Some(r)),
        )
    };
    tx.commit().await?;
    Ok(axum::Json(page))
}

fn saas_only(state: &AppState, what: &str) -> Result<(), AppError> {
    if state.config().edition == Edition::Community {
        return Err(AppError::Refused(format!(
            "the community edition has a single organization; {what} needs INFRAPILOT_EDITION=saas"
        )));
    }
    Ok(())
}

/// Creates an organization owned by the caller (SaaS edition).
#[utoipa::path(post, path = "/api/v1/orgs", tag = "organizations", security(("bearer" = [])), request_body = CreateOrg, responses(
    (status = 201, body = Organization),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_org(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateOrg>,
) -> Result<(StatusCode, axum::Json<Organization>), AppError> {
    saas_only(&state, "creating organizations")?;
    let name = display_name("name", &body.name)?;
    let id = OrgId::from_uuid(new_id());
    let slug = match &body.slug {
        Some(s) => slug("slug", s)?,
        None => slug_from_name(&name, &id.to_string()[..8]),
    };
    let now = now_micros();
    let record = OrgRecord {
        id,
        name,
        slug,
        max_users: None,
        max_agents: None,
        created_at: now,
        updated_at: now,
    };
    let mut g = state.store().global().await?;
    g.insert_org(&record).await?;
    let scope = OrgScope::new(id, principal.actor, Effective::Org(OrgRole::Owner));
    let mut tx = g.into_org(&scope).await?;
    tx.insert_member(principal.user, OrgRole::Owner, now)
        .await?;
    audit(
        &state,
        &mut tx,
        ip,
        "organization.create",
        "organization",
        id,
        serde_json::json!({"slug": record.slug}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(view(record, Some(OrgRole::Owner))),
    ))
}

/// Creates an account and an organization it owns (SaaS edition). Sign in afterwards.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = Signup, responses(
    (status = 201, body = SignedUp),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<Signup>,
) -> Result<(StatusCode, axum::Json<SignedUp>), AppError> {
    saas_only(&state, "sign-up")?;
    let email = Email::parse(&body.email).map_err(|e| e.at("email"))?;
    let name = display_name("name", &body.name)?;
    let password =
        Password::new(&body.password, &[email.as_str(), &name]).map_err(|e| e.at("password"))?;
    let org_name = display_name("organization_name", &body.organization_name)?;
    let hash = super::hash_password(&state, password).await?;
    let now = now_micros();
    let user_id = UserId::from_uuid(new_id());
    let org_id = OrgId::from_uuid(new_id());
    let record = OrgRecord {
        id: org_id,
        slug: slug_from_name(&org_name, &org_id.to_string()[..8]),
        name: org_name,
        max_users: None,
        max_agents: None,
        created_at: now,
        updated_at: now,
    };
    let mut g = state.store().global().await?;
    g.insert_user(&NewUser {
        id: user_id,
        email,
        name,
        password_hash: hash,
        platform_role: None,
        now,
    })
    .await?;
    g.insert_org(&record).await?;
    let scope = OrgScope::new(org_id, Actor::User(user_id), Effective::Org(OrgRole::Owner));
    let mut tx = g.into_org(&scope).await?;
    tx.insert_member(user_id, OrgRole::Owner, now).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "organization.signup",
        "organization",
        org_id,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SignedUp {
            user_id,
            organization: view(record, Some(OrgRole::Owner)),
        }),
    ))
}

/// The current organization (chosen with `X-Org-Id` or the token's own).
#[utoipa::path(get, path = "/api/v1/organization", tag = "organizations", security(("bearer" = [])), responses(
    (status = 200, body = Organization),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_org(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<axum::Json<Organization>, AppError> {
    let scope = scoped.require(Action::View, Resource::Organization)?;
    let mut tx = state.store().org_read(scope).await?;
    let org = tx.organization().await?;
    let role = match scope.actor().user() {
        Some(user) => tx.member(user).await?.map(|m| m.role),
        None => None,
    };
    tx.commit().await?;
    Ok(axum::Json(view(org, role)))
}

fn limit_value(field: &str, value: i64) -> Result<Option<i64>, AppError> {
    match value {
        -1 => Ok(None),
        1..=1_000_000 => Ok(Some(value)),
        _ => Err(AppError::field(
            field,
            "must be from 1 to 1000000, or -1 for unlimited",
        )),
    }
}

/// Renames the current organization or changes its limits.
#[utoipa::path(patch, path = "/api/v1/organization", tag = "organizations", security(("bearer" = [])), request_body = UpdateOrg, responses(
    (status = 200, body = Organization),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_org(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<UpdateOrg>,
) -> Result<axum::Json<Organization>, AppError> {
    // Renaming and the slug are the owner's (the matrix: update on the organization); the
    // limits are a super admin's; nothing else is changed here.
    let scope = if body.name.is_some() || body.slug.is_some() {
        scoped.require(Action::Update, Resource::Organization)?
    } else {
        scoped.require(Action::Update, Resource::OrgSettings)?
    };
    if (body.max_users.is_some() || body.max_agents.is_some())
        && scope.role() != Effective::SuperAdmin
    {
        return Err(AppError::Refused(
            "only a super admin changes an organization's limits".to_owned(),
        ));
    }
    let mut tx = state.store().org(scope).await?;
    let mut org = tx.organization().await?;
    if let Some(name) = &body.name {
        org.name = display_name("name", name)?;
    }
    if let Some(s) = &body.slug {
        org.slug = slug("slug", s)?;
    }
    if let Some(v) = body.max_users {
        org.max_users = limit_value("max_users", v)?;
    }
    if let Some(v) = body.max_agents {
        org.max_agents = limit_value("max_agents", v)?;
    }
    org.updated_at = now_micros();
    tx.update_organization(&org).await?;
    audit(&state, &mut tx, ip, "organization.update", "organization", org.id, serde_json::json!({
        "name": org.name, "slug": org.slug, "max_users": org.max_users, "max_agents": org.max_agents,
    }))
    .await?;
    tx.commit().await?;
    Ok(axum::Json(view(org, None)))
}

/// Deletes the current organization and everything in it. Owners only; pass `confirm=<slug>`.
#[utoipa::path(delete, path = "/api/v1/organization", tag = "organizations", security(("bearer" = [])), params(ConfirmQuery), responses(
    (status = 204, description = "Deleted"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_org(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(q): Query<ConfirmQuery>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Organization)?;
    saas_only(&state, "deleting the organization")?;
    let mut tx = state.store().org(scope).await?;
    let org = tx.organization().await?;
    if q.confirm.as_deref() != Some(org.slug.as_str()) {
        return Err(AppError::field(
            "confirm",
            format!("type the organization's slug ({}) to confirm", org.slug),
        ));
    }
    tx.delete_organization().await?;
    tx.commit().await?;
    tracing::info!(org = %org.id, "organization deleted");
    Ok(StatusCode::NO_CONTENT)
}
