//! Members and invitations of the current organization.
//!
//! Accounts belong to their owners: an account joins an organization only by accepting an
//! invitation while signed in as itself (or by creating itself from one); inviting answers the
//! same whether or not the address has an account (accepting without signing in still tells
//! the token's holder, a limit SECURITY.md names). Rules on top of the role matrix: nobody acts
//! on a member whose role is above their own or gives a role above their own (the core's
//! `may_change_member`, so only owners touch the owner role); the last owner can be neither
//! removed nor demoted; the organization's member limit holds for invitations and accepted
//! invitations alike.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use infrapilot_core::identity::{OpaqueToken, Password, SecretHash, TokenKind};
use infrapilot_core::ids::{InvitationId, UserId};
use infrapilot_core::rbac::{
    Action, Effective, MemberChange, OrgRole, Resource, may_change_member,
};
use infrapilot_core::values::Email;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageQuery, audit, display_name};
use crate::app::AppState;
use crate::auth::{ClientIp, Scoped, SignedIn};
use crate::error::{ApiJson, AppError, Problem};
use crate::store::{Actor, InvitationRecord, MemberRecord, NewUser, OrgLock, OrgScope, OrgTx};
use crate::util::{new_id, now_micros, random, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members))
        .routes(routes!(update_member, remove_member))
        .routes(routes!(list_invitations, create_invitation))
        .routes(routes!(revoke_invitation))
        .routes(routes!(accept_invitation))
}

/// A member.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    /// The account's id.
    pub user_id: UserId,
    /// The e-mail address.
    pub email: String,
    /// The display name.
    pub name: String,
    /// `owner`, `admin`, `operator` or `viewer`.
    pub role: OrgRole,
    /// When they joined (RFC 3339).
    pub joined_at: String,
}

impl From<MemberRecord> for Member {
    fn from(m: MemberRecord) -> Self {
        Member {
            user_id: m.user_id,
            email: m.email.to_string(),
            name: m.name,
            role: m.role,
            joined_at: rfc3339(m.created_at),
        }
    }
}

/// A role change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    /// The new role.
    pub role: OrgRole,
}

/// An invitation, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// Who is invited.
    pub email: String,
    /// The role they get.
    pub role: OrgRole,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: &'static str,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

fn invitation_view(inv: &InvitationRecord, now: i64) -> Invitation {
    let status = if inv.accepted_at.is_some() {
        "accepted"
    } else if inv.revoked_at.is_some() {
        "revoked"
    } else if inv.expires_at <= now {
        "expired"
    } else {
        "pending"
    };
    Invitation {
        id: inv.id,
        email: inv.email.to_string(),
        role: inv.role,
        status,
        expires_at: rfc3339(inv.expires_at),
        created_at: rfc3339(inv.created_at),
    }
}

/// A new invitation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    /// Who to invite.
    pub email: String,
    /// The role they get.
    pub role: OrgRole,
    /// Hours until it expires (1–720, default 168).
    pub expires_in_hours: Option<i64>,
}

/// A created invitation with its token, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    /// The invitation.
    pub invitation: Invitation,
    /// The secret token to pass to the invitee; it is not shown again.
    pub token: String,
}

/// Accepting an invitation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// The invitation token.
    pub token: String,
    /// For a new account: the display name.
    pub name: Option<String>,
    /// For a new account: the password.
    pub password: Option<String>,
}

/// The result of accepting.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The organization joined.
    pub organization_id: infrapilot_core::ids::OrgId,
    /// The account that joined.
    pub user_id: UserId,
    /// The role it got.
    pub role: OrgRole,
}

/// Refuses a membership change the scope's role does not reach (the core's rule).
fn check_reach(scope: &OrgScope, change: MemberChange) -> Result<(), AppError> {
    may_change_member(scope.role(), change).map_err(|e| AppError::Refused(e.to_string()))
}

/// Refuses to remove or demote the last owner; `lock` (taken before the member was read)
/// keeps two owners from demoting each other at once.
async fn check_last_owner(
    tx: &mut OrgTx,
    lock: &OrgLock,
    old: OrgRole,
    new: Option<OrgRole>,
) -> Result<(), AppError> {
    if old == OrgRole::Owner
        && new != Some(OrgRole::Owner)
        && tx.count_members(lock, Some(OrgRole::Owner)).await? <= 1
    {
        return Err(AppError::Refused(
            "this is the organization's last owner; make someone else owner first".to_owned(),
        ));
    }
    Ok(())
}

/// Refuses an addition past the member limit. It locks the organization, so concurrent
/// additions are counted one after another: call it before the transaction reads anything
/// else it decides on.
pub async fn check_member_limit(tx: &mut OrgTx) -> Result<(), AppError> {
    let (lock, org) = tx.lock_organization().await?;
    if let Some(max) = org.max_users
        && tx.count_members(&lock, None).await? >= max
    {
        return Err(AppError::LimitReached(format!(
            "the organization has reached its limit of {max} members; remove one or raise the limit"
        )));
    }
    Ok(())
}

/// Lists the members.
#[utoipa::path(get, path = "/api/v1/members", tag = "organizations", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<Member>),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_members(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(page): Query<PageQuery>,
) -> Result<axum::Json<Page<Member>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Member)?;
    let limit = page.fetch_limit()?;
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx.list_members(page.after()?, limit).await?;
    tx.commit().await?;
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        |m| (m.created_at, m.user_id.to_string()),
        Member::from,
    )))
}

/// Changes a member's role.
#[utoipa::path(patch, path = "/api/v1/members/{user_id}", tag = "organizations", security(("bearer" = [])),
    params(("user_id" = UserId, Path, description = "The member's account id")), request_body = UpdateMember, responses(
    (status = 200, body = Member),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_member(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(user_id): Path<UserId>,
    ApiJson(body): ApiJson<UpdateMember>,
) -> Result<axum::Json<Member>, AppError> {
    let scope = scoped.require(Action::Update, Resource::Member)?;
    let mut tx = state.store().org(scope).await?;
    let (lock, _) = tx.lock_organization().await?;
    let member = tx
        .member(user_id)
        .await?
        .ok_or(AppError::NotFound("member"))?;
    check_reach(
        scope,
        MemberChange::Change {
            from: member.role,
            to: body.role,
        },
    )?;
    check_last_owner(&mut tx, &lock, member.role, Some(body.role)).await?;
    tx.update_member_role(user_id, body.role).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "member.update",
        "member",
        user_id,
        serde_json::json!({
            "from": member.role, "to": body.role,
        }),
    )
    .await?;
    let member = tx
        .member(user_id)
        .await?
        .ok_or(AppError::NotFound("member"))?;
    tx.commit().await?;
    Ok(axum::Json(member.into()))
}

/// Removes a member (their API tokens for this organization are revoked).
#[utoipa::path(delete, path = "/api/v1/members/{user_id}", tag = "organizations", security(("bearer" = [])),
    params(("user_id" = UserId, Path, description = "The member's account id")), responses(
    (status = 204, description = "Removed"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn remove_member(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(user_id): Path<UserId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Member)?;
    let mut tx = state.store().org(scope).await?;
    let (lock, _) = tx.lock_organization().await?;
    let member = tx
        .member(user_id)
        .await?
        .ok_or(AppError::NotFound("member"))?;
    check_reach(scope, MemberChange::Remove(member.role))?;
    check_last_owner(&mut tx, &lock, member.role, None).await?;
    tx.delete_member(user_id).await?;
    tx.revoke_api_tokens_of(user_id, now_micros()).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "member.delete",
        "member",
        user_id,
        serde_json::json!({"role": member.role}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists invitations.
#[utoipa::path(get, path = "/api/v1/invitations", tag = "organizations", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<Invitation>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_invitations(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(page): Query<PageQuery>,
) -> Result<axum::Json<Page<Invitation>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Invitation)?;
    let limit = page.fetch_limit()?;
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx.list_invitations(page.after()?, limit).await?;
    tx.commit().await?;
    let now = now_micros();
    Ok(axum::Json(Page::from_rows(
        rows,
        limit,
        |i| (i.created_at, i.id.to_string()),
        |i| invitation_view(&i, now),
    )))
}

/// Invites someone by e-mail address; the token is returned once.
#[utoipa::path(post, path = "/api/v1/invitations", tag = "organizations", security(("bearer" = [])), request_body = CreateInvitation, responses(
    (status = 201, body = CreatedInvitation),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_invitation(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<(StatusCode, axum::Json<CreatedInvitation>), AppError> {
    let scope = scoped.require(Action::Create, Resource::Invitation)?;
    let email = Email::parse(&body.email).map_err(|e| e.at("email"))?;
    check_reach(scope, MemberChange::Grant(body.role))?;
    let hours = body.expires_in_hours.unwrap_or(168);
    if !(1..=720).contains(&hours) {
        return Err(AppError::field("expires_in_hours", "must be from 1 to 720"));
    }
    let now = now_micros();
    let id = InvitationId::from_uuid(new_id());
    let token = OpaqueToken::new(TokenKind::Invitation, id.as_uuid(), random());
    let record = InvitationRecord {
        id,
        email: email.clone(),
        role: body.role,
        secret_hash: token.hash().to_hex(),
        invited_by: scope.actor().user(),
        expires_at: now + hours * 3_600_000_000,
        accepted_at: None,
        revoked_at: None,
        created_at: now,
    };
    let mut tx = state.store().org(scope).await?;
    check_member_limit(&mut tx).await?;
    tx.insert_invitation(&record).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "invitation.create",
        "invitation",
        id,
        serde_json::json!({
            "email": email.as_str(), "role": body.role,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedInvitation {
            invitation: invitation_view(&record, now),
            token: token.to_string(),
        }),
    ))
}

/// Revokes a pending invitation.
#[utoipa::path(delete, path = "/api/v1/invitations/{id}", tag = "organizations", security(("bearer" = [])),
    params(("id" = InvitationId, Path, description = "The invitation's id")), responses(
    (status = 204, description = "Revoked"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Path(id): Path<InvitationId>,
) -> Result<StatusCode, AppError> {
    let scope = scoped.require(Action::Delete, Resource::Invitation)?;
    let mut tx = state.store().org(scope).await?;
    let mut inv = tx.invitation(id).await?;
    check_reach(scope, MemberChange::Grant(inv.role))?;
    if inv.accepted_at.is_some() {
        return Err(AppError::Conflict(
            "the invitation was already accepted; remove the member instead".to_owned(),
        ));
    }
    if inv.revoked_at.is_none() {
        inv.revoked_at = Some(now_micros());
        tx.update_invitation(&inv).await?;
        audit(
            &state,
            &mut tx,
            ip,
            "invitation.revoke",
            "invitation",
            id,
            serde_json::json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation: joins with the signed-in account (whose e-mail must match), or
/// creates an account with `name` and `password`.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "organizations", request_body = AcceptInvitation, responses(
    (status = 200, body = Accepted),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    principal: Option<SignedIn>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> Result<axum::Json<Accepted>, AppError> {
    const INVALID: &str = "the invitation token is invalid, expired, revoked or already used";
    let token = OpaqueToken::parse_as(&body.token, TokenKind::Invitation)
        .map_err(|_| AppError::Unauthorized(INVALID))?;
    let id = InvitationId::from_uuid(token.id());
    let mut g = state.store().global().await?;
    let org = g
        .token_org("invitation", &id.to_string())
        .await?
        .ok_or(AppError::Unauthorized(INVALID))?;
    g.commit().await?;
    let now = now_micros();
    // Decide the account first: the one signed in, an existing one (which must sign in), or
    // a new one made from name and password.
    let probe = OrgScope::new(org, Actor::System, Effective::Org(OrgRole::Viewer));
    let mut probe_tx = state.store().org(&probe).await?;
    let inv = probe_tx
        .invitation(id)
        .await
        .map_err(|_| AppError::Unauthorized(INVALID))?;
    probe_tx.commit().await?;
    let hash = SecretHash::from_hex(&inv.secret_hash).map_err(AppError::internal)?;
    if !token.matches(&hash)
        || inv.accepted_at.is_some()
        || inv.revoked_at.is_some()
        || inv.expires_at <= now
    {
        return Err(AppError::Unauthorized(INVALID));
    }
    let mut g = state.store().global().await?;
    let user_id = match (&principal, g.user_by_email(&inv.email).await?) {
        (Some(SignedIn(p)), Some(existing)) if p.user == existing.id => existing.id,
        (_, Some(_)) => {
            return Err(AppError::Unauthorized(
                "an account with the invited e-mail address exists: sign in as it, then accept",
            ));
        }
        (_, None) => {
            let name = display_name("name", body.name.as_deref().unwrap_or(""))?;
            let password = Password::new(
                body.password.as_deref().unwrap_or(""),
                &[inv.email.as_str(), &name],
            )
            .map_err(|e| e.at("password"))?;
            let hash = super::hash_password(&state, password).await?;
            let id = UserId::from_uuid(new_id());
            g.insert_user(&NewUser {
                id,
                email: inv.email.clone(),
                name,
                password_hash: hash,
                platform_role: None,
                now,
            })
            .await?;
            id
        }
    };
    let scope = OrgScope::new(org, Actor::User(user_id), Effective::Org(inv.role));
    let mut tx = g.into_org(&scope).await?;
    check_member_limit(&mut tx).await?;
    let mut inv = inv;
    inv.accepted_at = Some(now);
    tx.update_invitation(&inv).await?;
    tx.insert_member(user_id, inv.role, now).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "invitation.accept",
        "member",
        user_id,
        serde_json::json!({
            "invitation": id.to_string(), "role": inv.role,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(Accepted {
        organization_id: org,
        user_id,
        role: inv.role,
    }))
}
