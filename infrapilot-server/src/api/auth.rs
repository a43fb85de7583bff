//! Sign-in, sessions and MFA.
//!
//! A login checks the throttles (per account and per source address, kept in the database so
//! every replica sees them), verifies the argon2id hash, and — with TOTP enabled — asks for a
//! code before it issues anything. A session is a refresh-token family: each refresh rotates
//! the token, and presenting a token that was already rotated revokes the whole family.
//! Failed sign-ins answer the same generic message whether or not the account exists.

use axum::extract::State;
use axum::http::StatusCode;
use infrapilot_core::identity::{
    self, BACKUP_CODE_COUNT, Claims, Decision, OpaqueToken, Password, RefreshError, RefreshFamily,
    RevocationReason, SecretHash, ThrottleKey, ThrottlePolicy, ThrottleState, TokenKind, TokenType,
    Totp, TotpSecret, generate_backup_codes, hash_password, use_backup_code, verify_password,
};
use infrapilot_core::ids::{OrgId, UserId};
use infrapilot_core::rbac::{Effective, PlatformRole};
use infrapilot_core::values::Email;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use infrapilot_core::audit::Outcome;

use super::{commit_with_account_audit, display_name};
use crate::app::AppState;
use crate::auth::{ClientIp, Principal, SignedIn};
use crate::error::{ApiJson, AppError, Problem};
use crate::store::{GlobalTx, UserRecord};
use crate::util::{new_id, now_micros, now_secs, random, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(login_mfa))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, update_me))
        .routes(routes!(change_password))
        .routes(routes!(mfa_enroll))
        .routes(routes!(mfa_confirm))
        .routes(routes!(mfa_disable))
        .routes(routes!(mfa_backup_codes))
}

const GENERIC_LOGIN_FAILURE: &str = "invalid e-mail address or password";
/// How long the second-factor step may take.
const MFA_PENDING_SECS: i64 = 300;

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's e-mail address.
    pub email: String,
    /// The password.
    pub password: String,
    /// The organization to act in (default: the first one the account belongs to).
    pub organization_id: Option<OrgId>,
}

/// The answer to a sign-in: tokens, or a request for the second factor.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Whether a TOTP or backup code must be sent to `/api/v1/auth/login/mfa` first.
    pub mfa_required: bool,
    /// With `mfa_required`: the short-lived token to send with the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    /// The session's tokens, when no second factor is owed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
}

/// A session's tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// `Bearer`.
    pub token_type: &'static str,
    /// The access token (a JWT), sent as `Authorization: Bearer …`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token; each use returns a new one and retires this one.
    pub refresh_token: String,
    /// The organization the access token acts in, if any.
    pub organization_id: Option<OrgId>,
}

/// The second step of a sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaLoginRequest {
    /// The `mfa_token` from the first step.
    pub mfa_token: String,
    /// A 6-digit TOTP code or a backup code.
    pub code: String,
    /// The organization to act in.
    pub organization_id: Option<OrgId>,
}

/// A refresh.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The current refresh token.
    pub refresh_token: String,
    /// The organization the new access token acts in.
    pub organization_id: Option<OrgId>,
}

/// The signed-in account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The account's id.
    pub id: UserId,
    /// The e-mail address.
    pub email: String,
    /// The display name.
    pub name: String,
    /// `super_admin` or absent.
    pub platform_role: Option<String>,
    /// Whether TOTP is required at sign-in.
    pub mfa_enabled: bool,
    /// How many unused backup codes remain.
    pub backup_codes_left: usize,
    /// The organizations and roles.
    pub organizations: Vec<MyOrganization>,
    /// When the account was created (RFC 3339).
    pub created_at: String,
}

/// One organization of the signed-in account.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyOrganization {
    /// Its id.
    pub id: OrgId,
    /// Its name.
    pub name: String,
    /// Its slug.
    pub slug: String,
    /// The account's role in it.
    pub role: String,
}

/// Profile changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// A new display name.
    pub name: Option<String>,
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The current password.
    pub current_password: String,
    /// The new password (12–128 characters).
    pub new_password: String,
}

/// Proof of the password, for MFA changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordProof {
    /// The current password.
    pub password: String,
    /// A current TOTP code (required once MFA is enabled).
    pub code: Option<String>,
}

/// A TOTP code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// The 6-digit code from the authenticator app.
    pub code: String,
}

/// What an authenticator app needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaEnrollment {
    /// The secret, base32, for typing in by hand.
    pub secret: String,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
    /// The URI as a QR code (SVG).
    pub qr_svg: String,
}

/// Backup codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupCodes {
    /// Single-use codes that stand in for a TOTP code.
    pub backup_codes: Vec<String>,
}

async fn throttle_state(tx: &mut GlobalTx, key: &ThrottleKey) -> Result<ThrottleState, AppError> {
    Ok(
        // Locked: concurrent guesses against one key are counted one after another.
        match tx.lock_throttle(&key.storage_key()).await? {
            Some(text) => serde_json::from_str(&text).unwrap_or_default(),
            None => ThrottleState::default(),
        },
    )
}

async fn put_throttle(
    tx: &mut GlobalTx,
    key: &ThrottleKey,
    state: &ThrottleState,
) -> Result<(), AppError> {
    let text = serde_json::to_string(state).map_err(AppError::internal)?;
    tx.put_throttle(&key.storage_key(), &text, now_micros())
        .await?;
    Ok(())
}

/// One credential check counted under a throttle key: [`Attempt::begin`] refuses while the key
/// is locked, [`Attempt::failed`] counts a failure and [`Attempt::succeeded`] resets the key.
/// A failure must reach the database even though the request fails, so callers commit after
/// `failed` and before they answer.
pub(super) struct Attempt {
    key: ThrottleKey,
    policy: ThrottlePolicy,
    state: ThrottleState,
}

impl Attempt {
    /// Reads the key's state; refuses (429 with `Retry-After`) while it is locked.
    pub(super) async fn begin(
        tx: &mut GlobalTx,
        key: ThrottleKey,
        policy: ThrottlePolicy,
        now: i64,
    ) -> Result<Self, AppError> {
        let state = throttle_state(tx, &key).await?;
        if let Decision::RetryAfter(secs) = policy.check(&state, now) {
            return Err(AppError::TooManyRequests {
                retry_after: u64::try_from(secs).unwrap_or(1).max(1),
            });
        }
        Ok(Attempt { key, policy, state })
    }

    /// Counts a failure at `now`.
    pub(super) async fn failed(mut self, tx: &mut GlobalTx, now: i64) -> Result<(), AppError> {
        self.policy.record_failure(&mut self.state, now);
        put_throttle(tx, &self.key, &self.state).await
    }

    /// Settles a check whose answer is `ok`: a correct credential resets the key and gives the
    /// transaction back; a wrong one counts the failure, commits it and returns `refusal`.
    pub(super) async fn settle(
        self,
        mut tx: GlobalTx,
        ok: bool,
        now: i64,
        refusal: AppError,
    ) -> Result<GlobalTx, AppError> {
        if ok {
            self.succeeded(&mut tx).await?;
            return Ok(tx);
        }
        self.failed(&mut tx, now).await?;
        tx.commit().await?;
        Err(refusal)
    }

    /// Resets the key after a correct credential.
    pub(super) async fn succeeded(mut self, tx: &mut GlobalTx) -> Result<(), AppError> {
        if self.state == ThrottleState::default() {
            return Ok(());
        }
        self.policy.record_success(&mut self.state);
        put_throttle(tx, &self.key, &self.state).await
    }
}

/// A PHC string to verify against when the account does not exist, so both answers take as
/// long (made once per process with the server's own parameters).
fn dummy_hash(state: &AppState) -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            Password::new("not-a-real-password-anywhere", &[])
                .ok()
                .and_then(|p| hash_password(&p, &[0; 16], state.password_params()).ok())
                .unwrap_or_default()
        })
        .clone()
}

async fn check_password(phc: String, candidate: String) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || verify_password(&phc, &candidate))
        .await
        .map_err(AppError::internal)
}

/// Resolves the organization a new access token acts in, and the role it carries.
async fn session_org(
    tx: &mut GlobalTx,
    user: &UserRecord,
    wanted: Option<OrgId>,
) -> Result<(Option<OrgId>, Option<Effective>), AppError> {
    tx.act_as_user(user.id).await?;
    let memberships = tx.memberships_of(user.id).await?;
    match wanted {
        Some(org) => {
            let role = memberships
                .iter()
                .find(|(o, _)| o.id == org)
                .map(|(_, r)| *r);
            let exists =
                role.is_some() || (user.platform_role.is_some() && tx.org_exists(org).await?);
            match Effective::resolve(user.platform_role, role, None) {
                Some(effective) if exists => Ok((Some(org), Some(effective))),
                _ => Err(AppError::field(
                    "organization_id",
                    "is not an organization this account belongs to",
                )),
            }
        }
        None => Ok(match memberships.first() {
            Some((org, role)) => (
                Some(org.id),
                Effective::resolve(user.platform_role, Some(*role), None),
            ),
            None => (
                None,
                user.platform_role
                    .map(|PlatformRole::SuperAdmin| Effective::SuperAdmin),
            ),
        }),
    }
}

/// Starts a session: a refresh family and an access token.
async fn start_session(
    state: &AppState,
    tx: &mut GlobalTx,
    user: &UserRecord,
    org: Option<OrgId>,
) -> Result<Session, AppError> {
    let (org, role) = session_org(tx, user, org).await?;
    let now = now_secs();
    let (family, token) =
        RefreshFamily::start(new_id(), user.id, now, random(), state.refresh_policy());
    save_family(tx, &family.id.to_string(), user.id, &family).await?;
    Ok(access(
        state,
        user.id,
        org,
        role,
        family.id,
        now,
        token.to_string(),
    ))
}

fn access(
    state: &AppState,
    user: UserId,
    org: Option<OrgId>,
    role: Option<Effective>,
    sid: uuid::Uuid,
    now: i64,
    refresh_token: String,
) -> Session {
    let mut claims = Claims::access(user, org, role, sid, new_id(), now);
    claims.exp = now + i64::try_from(state.config().access_token_ttl.as_secs()).unwrap_or(900);
    Session {
        token_type: "Bearer",
        access_token: identity::issue(&claims, state.jwt()),
        expires_in: claims.exp - now,
        refresh_token,
        organization_id: org,
    }
}

/// Signs in with e-mail and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<axum::Json<LoginResponse>, AppError> {
    // A malformed address cannot belong to an account: the same answer as a wrong password.
    let email = Email::parse(body.email.trim()).ok();
    // One key per account whatever the spelling (case, IDN or punycode domain): the address
    // as the account stores it, or the text as typed when it is no address at all.
    let account_key = ThrottleKey::account(&email.as_ref().map_or_else(
        || body.email.trim().to_lowercase(),
        |e| e.as_str().to_owned(),
    ));
    let source_key = ip.map(ThrottleKey::source);
    let now = now_secs();
    let mut tx = state.store().global().await?;
    let mut account_state = throttle_state(&mut tx, &account_key).await?;
    let mut source_state = match &source_key {
        Some(key) => Some(throttle_state(&mut tx, key).await?),
        None => None,
    };
    for (policy, st) in [
        (&ThrottlePolicy::ACCOUNT, Some(&account_state)),
        (&ThrottlePolicy::SOURCE, source_state.as_ref()),
    ] {
        if let Some(st) = st
            && let Decision::RetryAfter(secs) = policy.check(st, now)
        {
            return Err(AppError::TooManyRequests {
                retry_after: u64::try_from(secs).unwrap_or(1).max(1),
            });
        }
    }
    let user = match &email {
        Some(email) => tx.user_by_email(email).await?,
        None => None,
    };
    let phc = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| dummy_hash(&state));
    let password_ok = check_password(phc, body.password.clone()).await?;
    let known = user.as_ref().map(|u| u.id);
    let user = match user {
        Some(user) if password_ok && !user.disabled => user,
        _ => {
            ThrottlePolicy::ACCOUNT.record_failure(&mut account_state, now);
            put_throttle(&mut tx, &account_key, &account_state).await?;
            if let (Some(key), Some(st)) = (&source_key, source_state.as_mut()) {
                ThrottlePolicy::SOURCE.record_failure(st, now);
                put_throttle(&mut tx, key, st).await?;
            }
            match known {
                Some(user) => {
                    let details =
                        serde_json::json!({"reason": "wrong password or disabled account"});
                    commit_with_account_audit(
                        &state,
                        tx,
                        user,
                        ip,
                        "auth.login",
                        Outcome::Failure,
                        details,
                    )
                    .await?;
                }
                None => tx.commit().await?,
            }
            return Err(AppError::Unauthorized(GENERIC_LOGIN_FAILURE));
        }
    };
    ThrottlePolicy::ACCOUNT.record_success(&mut account_state);
    put_throttle(&mut tx, &account_key, &account_state).await?;
    if user.totp_enabled {
        let claims = Claims {
            sub: user.id,
            org: body.organization_id,
            role: None,
            sid: new_id(),
            iat: now,
            exp: now + MFA_PENDING_SECS,
            jti: new_id(),
            typ: TokenType::MfaPending,
        };
        tx.commit().await?;
        return Ok(axum::Json(LoginResponse {
            mfa_required: true,
            mfa_token: Some(identity::issue(&claims, state.jwt())),
            session: None,
        }));
    }
    let session = start_session(&state, &mut tx, &user, body.organization_id).await?;
    let details = serde_json::json!({"mfa": false});
    commit_with_account_audit(
        &state,
        tx,
        user.id,
        ip,
        "auth.login",
        Outcome::Success,
        details,
    )
    .await?;
    Ok(axum::Json(LoginResponse {
        mfa_required: false,
        mfa_token: None,
        session: Some(session),
    }))
}

/// Checks a TOTP or backup code for `user`, consuming it. Returns whether it was accepted.
fn accept_second_factor(
    state: &AppState,
    user: &mut UserRecord,
    code: &str,
    now: i64,
) -> Result<bool, AppError> {
    let Some(sealed) = &user.totp_secret else {
        return Ok(false);
    };
    let secret = state.keys().unseal(sealed).map_err(AppError::internal)?;
    let totp = Totp::new(TotpSecret::from_bytes(&secret).map_err(AppError::internal)?);
    let last = user.totp_last_step.and_then(|s| u64::try_from(s).ok());
    if let Some(step) = totp.verify(code.trim(), now, last) {
        user.totp_last_step = i64::try_from(step).ok();
        return Ok(true);
    }
    let mut hashes: Vec<SecretHash> = user
        .backup_codes
        .iter()
        .filter_map(|h| SecretHash::from_hex(h).ok())
        .collect();
    if use_backup_code(&mut hashes, code) {
        user.backup_codes = hashes.iter().map(SecretHash::to_hex).collect();
        return Ok(true);
    }
    Ok(false)
}

/// Completes a sign-in with a TOTP or backup code.
#[utoipa::path(post, path = "/api/v1/auth/login/mfa", tag = "auth", request_body = MfaLoginRequest, responses(
    (status = 200, body = Session),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
))]
pub async fn login_mfa(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<MfaLoginRequest>,
) -> Result<axum::Json<Session>, AppError> {
    let now = now_secs();
    let claims = identity::verify_as(&body.mfa_token, state.jwt(), now, TokenType::MfaPending)
        .map_err(|_| AppError::Unauthorized("the sign-in step expired; sign in again"))?;
    let mut tx = state.store().global().await?;
    let mut user = tx
        .user(claims.sub)
        .await
        .map_err(|_| AppError::Unauthorized(GENERIC_LOGIN_FAILURE))?;
    // Second factors are counted per account across logins: signing in again with the
    // password does not reset the count.
    let attempt = Attempt::begin(
        &mut tx,
        ThrottleKey::second_factor(user.id),
        ThrottlePolicy::SECOND_FACTOR,
        now,
    )
    .await?;
    if user.disabled || !accept_second_factor(&state, &mut user, &body.code, now)? {
        attempt.failed(&mut tx, now).await?;
        let details = serde_json::json!({"reason": "wrong or reused second factor"});
        commit_with_account_audit(
            &state,
            tx,
            user.id,
            ip,
            "auth.login",
            Outcome::Failure,
            details,
        )
        .await?;
        return Err(AppError::Unauthorized(
            "the code is wrong or was already used",
        ));
    }
    attempt.succeeded(&mut tx).await?;
    user.updated_at = now_micros();
    tx.update_user(&user).await?;
    let session =
        start_session(&state, &mut tx, &user, body.organization_id.or(claims.org)).await?;
    let details = serde_json::json!({"mfa": true});
    commit_with_account_audit(
        &state,
        tx,
        user.id,
        ip,
        "auth.login",
        Outcome::Success,
        details,
    )
    .await?;
    Ok(axum::Json(session))
}

/// Trades a refresh token for a new access token and a new refresh token.
///
/// A refresh token that was already used revokes its whole session: someone else has it.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = Session),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<axum::Json<Session>, AppError> {
    const INVALID: &str = "the refresh token is invalid or expired; sign in again";
    let presented = OpaqueToken::parse_as(&body.refresh_token, TokenKind::Refresh)
        .map_err(|_| AppError::Unauthorized(INVALID))?;
    let family_id = presented.id().to_string();
    let now = now_secs();
    let mut tx = state.store().global().await?;
    let (user_id, text) = tx
        .lock_refresh_family(&family_id)
        .await?
        .ok_or(AppError::Unauthorized(INVALID))?;
    let family: RefreshFamily = serde_json::from_str(&text).map_err(AppError::internal)?;
    match family.rotate(&presented, now, random(), state.refresh_policy()) {
        Ok((next, token)) => {
            save_family(&mut tx, &family_id, user_id, &next).await?;
            let user = tx
                .user(user_id)
                .await
                .map_err(|_| AppError::Unauthorized(INVALID))?;
            if user.disabled {
                return Err(AppError::Unauthorized(INVALID));
            }
            let (org, role) = session_org(&mut tx, &user, body.organization_id).await?;
            tx.commit().await?;
            Ok(axum::Json(access(
                &state,
                user_id,
                org,
                role,
                next.id,
                now,
                token.to_string(),
            )))
        }
        Err(RefreshError::Reused { revoked }) => {
            save_family(&mut tx, &family_id, user_id, &revoked).await?;
            let details = serde_json::json!({"session": family_id});
            commit_with_account_audit(
                &state,
                tx,
                user_id,
                None,
                "auth.refresh_reuse",
                Outcome::Denied,
                details,
            )
            .await?;
            tracing::warn!(%user_id, family = %family_id, "refresh token reuse: session revoked");
            Err(AppError::Unauthorized(
                "this refresh token was already used, so the session was revoked; sign in again",
            ))
        }
        Err(_) => Err(AppError::Unauthorized(INVALID)),
    }
}

/// Ends the current session (its refresh token stops working).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])), responses(
    (status = 204, description = "Signed out"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn logout(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
) -> Result<StatusCode, AppError> {
    let Some(sid) = principal.session else {
        return Err(AppError::Refused(
            "API tokens have no session; revoke the token instead".to_owned(),
        ));
    };
    let mut tx = state.store().global().await?;
    if let Some((_, text)) = tx.lock_refresh_family(&sid.to_string()).await? {
        let family: RefreshFamily = serde_json::from_str(&text).map_err(AppError::internal)?;
        let revoked = family.revoke(now_secs(), RevocationReason::Logout);
        save_family(&mut tx, &sid.to_string(), principal.user, &revoked).await?;
    }
    let details = serde_json::json!({"session": sid.to_string()});
    commit_with_account_audit(
        &state,
        tx,
        principal.user,
        principal.source_ip,
        "auth.logout",
        Outcome::Success,
        details,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me_of(tx: &mut GlobalTx, user: &UserRecord) -> Result<Me, AppError> {
    tx.act_as_user(user.id).await?;
    let organizations = tx
        .memberships_of(user.id)
        .await?
        .into_iter()
        .map(|(org, role)| MyOrganization {
            id: org.id,
            name: org.name,
            slug: org.slug,
            role: role.to_string(),
        })
        .collect();
    Ok(Me {
        id: user.id,
        email: user.email.to_string(),
        name: user.name.clone(),
        platform_role: user
            .platform_role
            .map(|PlatformRole::SuperAdmin| "super_admin".to_owned()),
        mfa_enabled: user.totp_enabled,
        backup_codes_left: user.backup_codes.len(),
        organizations,
        created_at: rfc3339(user.created_at),
    })
}

/// The signed-in account, with its organizations.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = Me),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn me(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
) -> Result<axum::Json<Me>, AppError> {
    let mut tx = state.store().global_read().await?;
    let user = tx.user(principal.user).await?;
    let me = me_of(&mut tx, &user).await?;
    tx.commit().await?;
    Ok(axum::Json(me))
}

/// Changes the signed-in account's profile.
#[utoipa::path(patch, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])), request_body = UpdateMe, responses(
    (status = 200, body = Me),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_me(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    ApiJson(body): ApiJson<UpdateMe>,
) -> Result<axum::Json<Me>, AppError> {
    let mut tx = state.store().global().await?;
    let mut user = tx.user(principal.user).await?;
    if let Some(name) = &body.name {
        user.name = display_name("name", name)?;
    }
    user.updated_at = now_micros();
    tx.update_user(&user).await?;
    let me = me_of(&mut tx, &user).await?;
    let details = serde_json::json!({"name": body.name.is_some()});
    commit_with_account_audit(
        &state,
        tx,
        user.id,
        principal.source_ip,
        "user.profile_update",
        Outcome::Success,
        details,
    )
    .await?;
    Ok(axum::Json(me))
}

/// Checks the signed-in account's password, counted under the account's login throttle (a
/// stolen session cannot guess it faster than a login could); `field` names it in the refusal.
async fn require_password(
    mut tx: GlobalTx,
    user: &UserRecord,
    password: &str,
    field: &'static str,
) -> Result<GlobalTx, AppError> {
    let now = now_secs();
    let attempt = Attempt::begin(
        &mut tx,
        ThrottleKey::account(user.email.as_str()),
        ThrottlePolicy::ACCOUNT,
        now,
    )
    .await?;
    let ok = check_password(user.password_hash.clone(), password.to_owned()).await?;
    let refusal = AppError::field(field, "is not the account's current password");
    attempt.settle(tx, ok, now, refusal).await
}

/// Checks a second factor of the signed-in account, counted per account like a login's.
async fn require_second_factor(
    state: &AppState,
    mut tx: GlobalTx,
    user: &mut UserRecord,
    code: &str,
    refusal: &'static str,
) -> Result<GlobalTx, AppError> {
    let now = now_secs();
    let attempt = Attempt::begin(
        &mut tx,
        ThrottleKey::second_factor(user.id),
        ThrottlePolicy::SECOND_FACTOR,
        now,
    )
    .await?;
    let ok = accept_second_factor(state, user, code, now)?;
    attempt
        .settle(tx, ok, now, AppError::field("code", refusal))
        .await
}

/// Changes the signed-in account's password and ends all its sessions.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", security(("bearer" = [])), request_body = ChangePassword, responses(
    (status = 204, description = "Changed; every session was signed out"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn change_password(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<StatusCode, AppError> {
    let mut tx = state.store().global().await?;
    let mut user = tx.user(principal.user).await?;
    let mut tx = require_password(tx, &user, &body.current_password, "current_password").await?;
    let password = Password::new(&body.new_password, &[user.email.as_str(), &user.name])
        .map_err(|e| e.at("new_password"))?;
    user.password_hash = super::hash_password(&state, password).await?;
    user.updated_at = now_micros();
    tx.update_user(&user).await?;
    revoke_all_sessions(&mut tx, user.id, RevocationReason::PasswordChanged).await?;
    let details = serde_json::json!({"sessions_revoked": true});
    commit_with_account_audit(
        &state,
        tx,
        user.id,
        principal.source_ip,
        "auth.password_change",
        Outcome::Success,
        details,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stores a session's refresh family. Its `revoked` flag is a column of its own, read by the
/// authentication of every request, so a revoked session's access tokens stop working at once.
async fn save_family(
    tx: &mut GlobalTx,
    id: &str,
    user: UserId,
    family: &RefreshFamily,
) -> Result<(), AppError> {
    let text = serde_json::to_string(family).map_err(AppError::internal)?;
    tx.put_refresh_family(id, user, &text, family.revoked.is_some(), now_micros())
        .await?;
    Ok(())
}

/// Revokes every session of a user.
pub async fn revoke_all_sessions(
    tx: &mut GlobalTx,
    user: UserId,
    reason: RevocationReason,
) -> Result<(), AppError> {
    let now = now_secs();
    for (id, text) in tx.refresh_families_of(user).await? {
        let family: RefreshFamily = serde_json::from_str(&text).map_err(AppError::internal)?;
        if family.revoked.is_none() {
            save_family(tx, &id, user, &family.revoke(now, reason)).await?;
        }
    }
    Ok(())
}

/// Starts TOTP enrolment: a new secret, as text, URI and QR code. Confirm it with a code.
#[utoipa::path(post, path = "/api/v1/auth/mfa/enroll", tag = "auth", security(("bearer" = [])), request_body = PasswordProof, responses(
    (status = 200, body = MfaEnrollment),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn mfa_enroll(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    ApiJson(body): ApiJson<PasswordProof>,
) -> Result<axum::Json<MfaEnrollment>, AppError> {
    let mut tx = state.store().global().await?;
    let mut user = tx.user(principal.user).await?;
    if user.totp_enabled {
        return Err(AppError::Conflict(
            "MFA is already enabled; disable it first to enrol a new device".to_owned(),
        ));
    }
    let tx = require_password(tx, &user, &body.password, "password").await?;
    let secret = TotpSecret::generate(random());
    let totp = Totp::new(secret.clone());
    let uri = totp
        .otpauth_uri("InfraPilot", user.email.as_str())
        .map_err(AppError::internal)?;
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(AppError::internal)?;
    let qr_svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    user.totp_secret = Some(state.keys().seal(secret.as_bytes()));
    user.totp_last_step = None;
    save_account(
        &state,
        tx,
        &mut user,
        principal.source_ip,
        "auth.mfa_enroll",
    )
    .await?;
    Ok(axum::Json(MfaEnrollment {
        secret: secret.to_base32(),
        otpauth_uri: uri,
        qr_svg,
    }))
}

fn new_backup_codes(user: &mut UserRecord) -> Vec<String> {
    let randomness: Vec<[u8; 10]> = (0..BACKUP_CODE_COUNT).map(|_| random()).collect();
    let codes = generate_backup_codes(&randomness);
    user.backup_codes = codes.iter().map(|c| c.hash().to_hex()).collect();
    codes.iter().map(ToString::to_string).collect()
}

/// Confirms TOTP enrolment with a code; returns the backup codes, once.
#[utoipa::path(post, path = "/api/v1/auth/mfa/confirm", tag = "auth", security(("bearer" = [])), request_body = CodeRequest, responses(
    (status = 200, body = BackupCodes),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn mfa_confirm(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<axum::Json<BackupCodes>, AppError> {
    let mut tx = state.store().global().await?;
    let mut user = tx.user(principal.user).await?;
    if user.totp_enabled {
        return Err(AppError::Conflict("MFA is already enabled".to_owned()));
    }
    if user.totp_secret.is_none() {
        return Err(AppError::Conflict(
            "start with /api/v1/auth/mfa/enroll".to_owned(),
        ));
    }
    user.backup_codes.clear();
    let tx = require_second_factor(
        &state,
        tx,
        &mut user,
        &body.code,
        "is not the current code of the enrolled secret",
    )
    .await?;
    user.totp_enabled = true;
    let codes = new_backup_codes(&mut user);
    save_account(
        &state,
        tx,
        &mut user,
        principal.source_ip,
        "auth.mfa_enable",
    )
    .await?;
    Ok(axum::Json(BackupCodes {
        backup_codes: codes,
    }))
}

/// Writes an account change made in `tx` and records it in the account's organizations'
/// audit logs, in the same transaction.
async fn save_account(
    state: &AppState,
    mut tx: GlobalTx,
    user: &mut UserRecord,
    source_ip: Option<std::net::IpAddr>,
    action: &'static str,
) -> Result<(), AppError> {
    user.updated_at = now_micros();
    tx.update_user(user).await?;
    let details = serde_json::json!({});
    commit_with_account_audit(
        state,
        tx,
        user.id,
        source_ip,
        action,
        Outcome::Success,
        details,
    )
    .await
}

/// The signed-in account, for a change to an enabled MFA: refused unless MFA is on and the
/// request proves both the password and a current code (each counted by its throttle).
async fn mfa_user_proven(
    state: &AppState,
    principal: &Principal,
    body: &PasswordProof,
) -> Result<(GlobalTx, UserRecord), AppError> {
    let mut tx = state.store().global().await?;
    let mut user = tx.user(principal.user).await?;
    if !user.totp_enabled {
        return Err(AppError::Conflict("MFA is not enabled".to_owned()));
    }
    let code = body
        .code
        .as_deref()
        .ok_or_else(|| AppError::field("code", "a current TOTP or backup code is required"))?;
    let tx = require_password(tx, &user, &body.password, "password").await?;
    let tx =
        require_second_factor(state, tx, &mut user, code, "is wrong or was already used").await?;
    Ok((tx, user))
}

/// Turns MFA off (password and a current code required).
#[utoipa::path(post, path = "/api/v1/auth/mfa/disable", tag = "auth", security(("bearer" = [])), request_body = PasswordProof, responses(
    (status = 204, description = "MFA is off"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn mfa_disable(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    ApiJson(body): ApiJson<PasswordProof>,
) -> Result<StatusCode, AppError> {
    let (tx, mut user) = mfa_user_proven(&state, &principal, &body).await?;
    user.totp_enabled = false;
    user.totp_secret = None;
    user.totp_last_step = None;
    user.backup_codes.clear();
    save_account(
        &state,
        tx,
        &mut user,
        principal.source_ip,
        "auth.mfa_disable",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the backup codes (password and a current code required); returns them once.
#[utoipa::path(post, path = "/api/v1/auth/mfa/backup-codes", tag = "auth", security(("bearer" = [])), request_body = PasswordProof, responses(
    (status = 200, body = BackupCodes),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn mfa_backup_codes(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    ApiJson(body): ApiJson<PasswordProof>,
) -> Result<axum::Json<BackupCodes>, AppError> {
    let (tx, mut user) = mfa_user_proven(&state, &principal, &body).await?;
    let codes = new_backup_codes(&mut user);
    save_account(
        &state,
        tx,
        &mut user,
        principal.source_ip,
        "auth.backup_codes_regenerate",
    )
    .await?;
    Ok(axum::Json(BackupCodes {
        backup_codes: codes,
    }))
}
