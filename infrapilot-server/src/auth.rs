//! Authentication and organization context, as middleware.
//!
//! [`authenticate`] runs on every request. It reads `Authorization: Bearer …` — an access
//! token (JWT) or a personal API token (`ipat_…`) — and the organization the request acts in
//! (the `X-Org-Id` header, else the token's own organization), checks the membership in the
//! store, and leaves a [`Principal`] and an [`OrgScope`] in the request's extensions.
//! Handlers take them with the [`Principal`] and [`Scoped`] extractors; no handler parses a
//! token or looks up a membership itself.
//!
//! Roles come from the membership as it is *now*, not from the token, so a demotion or a
//! removal takes effect on the next request; likewise an access token's session is read on
//! every request (in the same query), so a revoked session's tokens stop at once. An API token
//! acts with the lower of its own role and its owner's current role, and only inside its
//! organization: account and platform operations take [`SignedIn`], which refuses it. A
//! stream outlives its request's check, so it holds a [`Liveness`] that checks the credential
//! again every [`STREAM_RECHECK`] and ends the stream once a new request would be refused.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use infrapilot_core::identity::{self, OpaqueToken, SecretHash, TokenKind, TokenType};
use infrapilot_core::ids::{ApiTokenId, OrgId, UserId};
use infrapilot_core::rbac::{Action, Effective, OrgRole, PlatformRole, Resource};

use crate::app::AppState;
use crate::error::AppError;
use crate::store::{Actor, OrgScope};
use crate::util::now_micros;

/// The header that selects the organization a request acts in.
pub const ORG_HEADER: &str = "x-org-id";

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user: UserId,
    /// The user's platform role.
    pub platform_role: Option<PlatformRole>,
    /// How they authenticated.
    pub actor: Actor,
    /// The login session (refresh family) behind a JWT.
    pub session: Option<uuid::Uuid>,
    /// The source address, for audit and throttling.
    pub source_ip: Option<IpAddr>,
}

/// A person signed in with a session (extractor): a [`Principal`] whose access token belongs
/// to a login session. API tokens act only inside their organization, so every account and
/// platform operation (profile, password, MFA, sign-out, creating or listing organizations,
/// accepting an invitation) takes this instead of [`Principal`] and refuses them.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Principal);

/// The refusal every account operation gives an API token.
const SESSION_ONLY: &str = "API tokens act only inside their organization; this needs a signed-in session (POST /api/v1/auth/login)";

impl SignedIn {
    fn check(principal: Principal) -> Result<Self, AppError> {
        match principal.actor {
            Actor::User(_) if principal.session.is_some() => Ok(SignedIn(principal)),
            _ => Err(AppError::Refused(SESSION_ONLY.to_owned())),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        SignedIn::check(Principal::from_request_parts(parts, state).await?)
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for SignedIn {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let principal =
            <Principal as axum::extract::OptionalFromRequestParts<S>>::from_request_parts(
                parts, state,
            )
            .await?;
        principal.map(SignedIn::check).transpose()
    }
}

/// The organization scope a request acts in (extractor).
#[derive(Debug, Clone)]
pub struct Scoped(pub OrgScope);

impl Scoped {
    /// Refuses unless the scope's role allows `action` on `resource`.
    pub fn require(&self, action: Action, resource: Resource) -> Result<&OrgScope, AppError> {
        if self.0.can(action, resource) {
            Ok(&self.0)
        } else {
            Err(AppError::Forbidden { action, resource })
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated { principal, .. }) => Ok(principal.clone()),
            Some(AuthOutcome::Failed(reason)) => Err(AppError::Unauthorized(reason)),
            None => Err(AppError::Unauthorized(
                "sign in: send Authorization: Bearer <access token or API token>",
            )),
        }
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated { principal, .. }) => Ok(Some(principal.clone())),
            Some(AuthOutcome::Failed(reason)) => Err(AppError::Unauthorized(reason)),
            None => Ok(None),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Scoped {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated {
                scope: Some(scope), ..
            }) => Ok(Scoped(scope.clone())),
            Some(AuthOutcome::Authenticated {
                scope: None,
                org_refusal,
                ..
            }) => {
                let _ = principal;
                Err(org_refusal.clone().map(AppError::from).unwrap_or_else(|| {
                    AppError::field(
                        "X-Org-Id",
                        "select an organization: send the X-Org-Id header with the id of one you belong to",
                    )
                }))
            }
            _ => Err(AppError::Unauthorized("sign in first")),
        }
    }
}

/// The client's address (extractor): the socket peer, `None` without a socket (tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(source_ip(&parts.extensions)))
    }
}

/// The client's address: the socket peer (tests without a socket have none).
pub fn source_ip(req_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    req_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

#[derive(Debug, Clone)]
enum AuthOutcome {
    Authenticated {
        principal: Principal,
        scope: Option<OrgScope>,
        org_refusal: Option<OrgRefusal>,
        credential: Credential,
    },
    Failed(&'static str),
}

/// Why a request has no organization scope although it is authenticated.
#[derive(Debug, Clone)]
enum OrgRefusal {
    /// The `X-Org-Id` header is not an organization id.
    BadHeader(String),
    /// Not a member (or no such organization — the same answer, on purpose).
    NotMember,
}

impl From<OrgRefusal> for AppError {
    fn from(refusal: OrgRefusal) -> Self {
        match refusal {
            OrgRefusal::BadHeader(reason) => AppError::field("X-Org-Id", reason),
            OrgRefusal::NotMember => AppError::NotFound("organization"),
        }
    }
}

/// The authentication middleware (see the module docs).
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let source = source_ip(req.extensions());
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_owned);
    let org_header = req
        .headers()
        .get(ORG_HEADER)
        .map(|v| v.to_str().map(str::to_owned));
    if let Some(token) = bearer {
        let outcome = match resolve(&state, &token, org_header, source).await {
            Ok(outcome) => outcome,
            Err(AppError::Unauthorized(reason)) => AuthOutcome::Failed(reason),
            Err(other) => return other.into_response(),
        };
        req.extensions_mut().insert(outcome);
    }
    next.run(req).await
}

async fn resolve(
    state: &AppState,
    token: &str,
    org_header: Option<Result<String, axum::http::header::ToStrError>>,
    source_ip: Option<IpAddr>,
) -> Result<AuthOutcome, AppError> {
    let requested_org = match org_header {
        None => None,
        Some(Ok(text)) => Some(text.parse::<OrgId>().map_err(|_| {
            OrgRefusal::BadHeader(format!("must be an organization id (a UUID), got {text:?}"))
        })),
        Some(Err(_)) => Some(Err(OrgRefusal::BadHeader(
            "must be an organization id (a UUID)".into(),
        ))),
    };
    if token.starts_with(TokenKind::PersonalApiToken.prefix()) {
        return api_token(state, token, requested_org, source_ip, TokenUse::Request).await;
    }
    let claims = identity::verify_as(
        token,
        state.jwt(),
        crate::util::now_secs(),
        TokenType::Access,
    )
    .map_err(|_| {
        AppError::Unauthorized(
            "the access token is invalid or expired; refresh it or sign in again",
        )
    })?;
    let org = match requested_org {
        Some(Ok(org)) => Some(org),
        Some(Err(refusal)) => return Err(AppError::from(refusal)),
        None => claims.org,
    };
    let found = live_session(state, claims.sub, claims.sid, org).await?;
    let (user, role, exists) = (found.user, found.role, found.org_exists);
    let principal = Principal {
        user: user.id,
        platform_role: user.platform_role,
        actor: Actor::User(user.id),
        session: Some(claims.sid),
        source_ip,
    };
    let credential = Credential::Session {
        user: user.id,
        sid: claims.sid,
        org,
    };
    let Some(org) = org else {
        return Ok(AuthOutcome::Authenticated {
            principal,
            scope: None,
            org_refusal: None,
            credential,
        });
    };
    let (scope, org_refusal) = match Effective::resolve(user.platform_role, role, None) {
        Some(effective) if exists => (Some(OrgScope::new(org, principal.actor, effective)), None),
        // Not a member: the organization is "not found", whether or not it exists.
        _ => (None, Some(OrgRefusal::NotMember)),
    };
    Ok(AuthOutcome::Authenticated {
        principal,
        scope,
        org_refusal,
        credential,
    })
}

/// Why an API token is being checked: a request (which records the token's last use, to the
/// minute) or an open stream's re-check (reads only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenUse {
    Request,
    Recheck,
}

async fn api_token(
    state: &AppState,
    text: &str,
    requested_org: Option<Result<OrgId, OrgRefusal>>,
    source_ip: Option<IpAddr>,
    usage: TokenUse,
) -> Result<AuthOutcome, AppError> {
    const INVALID: &str = "the API token is invalid, expired or revoked";
    // A row that is not there is an invalid token; a store that cannot be read is not.
    let invalid = |e: crate::store::StoreError| match e {
        crate::store::StoreError::NotFound { .. } => AppError::Unauthorized(INVALID),
        other => AppError::from(other),
    };
    let token = OpaqueToken::parse_as(text, TokenKind::PersonalApiToken)
        .map_err(|_| AppError::Unauthorized(INVALID))?;
    let id = ApiTokenId::from_uuid(token.id());
    let mut g = state.store().global_read().await?;
    let org = g
        .token_org("api_token", &id.to_string())
        .await?
        .ok_or(AppError::Unauthorized(INVALID))?;
    g.commit().await?;
    // The token fixes its organization; a different X-Org-Id is refused, not ignored.
    if let Some(requested) = requested_org
        && requested.map_err(AppError::from)? != org
    {
        return Err(AppError::Unauthorized(
            "an API token acts only in its own organization; drop X-Org-Id",
        ));
    }
    let now = now_micros();
    // Reading the token row needs a scope in its organization; this one can do nothing else.
    // Transactions here run one after another, never nested: SQLite has one write lock.
    let probe = OrgScope::new(org, Actor::System, Effective::Org(OrgRole::Viewer));
    let mut record = {
        let mut tx = state.store().org_read(&probe).await?;
        let record = tx.api_token(id).await.map_err(invalid)?;
        tx.commit().await?;
        record
    };
    let hash = SecretHash::from_hex(&record.secret_hash).map_err(AppError::internal)?;
    let valid = token.matches(&hash)
        && record.revoked_at.is_none()
        && record.expires_at.is_none_or(|t| t > now);
    if !valid {
        return Err(AppError::Unauthorized(INVALID));
    }
    // Last use is kept to the minute, so a busy script does not write on every request.
    let member =
        if usage == TokenUse::Request && record.last_used_at.is_none_or(|t| now - t > 60_000_000) {
            record.last_used_at = Some(now);
            let mut tx = state.store().org(&probe).await?;
            tx.update_api_token(&record).await?;
            let member = tx.member(record.user_id).await?;
            tx.commit().await?;
            member
        } else {
            let mut tx = state.store().org_read(&probe).await?;
            let member = tx.member(record.user_id).await?;
            tx.commit().await?;
            member
        };
    let mut g = state.store().global_read().await?;
    let user = g.user(record.user_id).await.map_err(invalid)?;
    g.commit().await?;
    if user.disabled {
        return Err(AppError::Unauthorized(INVALID));
    }
    let effective = Effective::resolve(
        user.platform_role,
        member.map(|m| m.role),
        Some(record.role),
    )
    .ok_or(AppError::Unauthorized(INVALID))?;
    let actor = Actor::ApiToken {
        user: user.id,
        token: id,
    };
    let principal = Principal {
        user: user.id,
        platform_role: user.platform_role,
        actor,
        session: None,
        source_ip,
    };
    Ok(AuthOutcome::Authenticated {
        principal,
        scope: Some(OrgScope::new(org, actor, effective)),
        org_refusal: None,
        credential: Credential::ApiToken {
            text: text.to_owned(),
            org,
        },
    })
}

/// The account behind session `sid` with its membership in `org`, refused (401) unless the
/// account exists and is enabled and the session is live. Reads only, in one round trip:
/// reading the session on every request (and every stream re-check) is what makes a
/// revocation (sign-out, refresh-token reuse, a password change, an administrator) take
/// effect at once on every replica.
async fn live_session(
    state: &AppState,
    user: UserId,
    sid: uuid::Uuid,
    org: Option<OrgId>,
) -> Result<crate::store::SessionAccount, AppError> {
    let mut tx = state.store().global_read().await?;
    let found = tx
        .session_account(user, sid, org, session_floor(state))
        .await?;
    tx.commit().await?;
    let found = found
        .filter(|f| !f.user.disabled)
        .ok_or(AppError::Unauthorized(
            "the account no longer exists or is disabled",
        ))?;
    if !found.session_live {
        return Err(AppError::Unauthorized(
            "the session has ended (signed out, revoked or replaced); sign in again",
        ));
    }
    Ok(found)
}

/// The oldest start (unix microseconds) a live session may have: its absolute lifetime
/// (`refresh_token_ttl`) ago.
fn session_floor(state: &AppState) -> i64 {
    let ttl = i64::try_from(state.config().refresh_token_ttl.as_micros()).unwrap_or(i64::MAX);
    now_micros().saturating_sub(ttl)
}

/// What a request authenticated with, kept so that an open stream can check it again.
#[derive(Clone)]
enum Credential {
    /// An access token of a login session, acting in `org` if one was selected.
    Session {
        user: UserId,
        sid: uuid::Uuid,
        org: Option<OrgId>,
    },
    /// A personal API token (its full text, to verify again) of organization `org`.
    ApiToken { text: String, org: OrgId },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Session { user, sid, org } => f
                .debug_struct("Session")
                .field("user", user)
                .field("sid", sid)
                .field("org", org)
                .finish(),
            Credential::ApiToken { org, .. } => f
                .debug_struct("ApiToken")
                .field("org", org)
                .finish_non_exhaustive(),
        }
    }
}

/// How often an open stream checks that its request is still authorized. A request is checked
/// when it arrives; a stream (Server-Sent Events, a WebSocket) outlives that check, so it
/// checks again at this interval and ends within it of a revocation on any replica.
pub const STREAM_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The authority behind an open stream (extractor). [`Liveness::ended`] resolves once the
/// request that opened the stream would be refused: its session revoked, its account disabled
/// or deleted, its API token revoked or expired, its membership removed, or its role lowered
/// below what the stream needs.
#[derive(Clone)]
pub struct Liveness {
    state: AppState,
    credential: Credential,
    source_ip: Option<IpAddr>,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness")
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl FromRequestParts<AppState> for Liveness {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        match parts.extensions.get::<AuthOutcome>() {
            Some(AuthOutcome::Authenticated { credential, .. }) => Ok(Liveness {
                state: state.clone(),
                credential: credential.clone(),
                source_ip: principal.source_ip,
            }),
            _ => Err(AppError::Unauthorized("sign in first")),
        }
    }
}

impl Liveness {
    /// Resolves, with the refusal a new request would get, once the stream's request may no
    /// longer do `action` on `resource`; never resolves while it still may. A store that
    /// cannot be read is not a refusal: the check is tried again at the next interval.
    pub async fn ended(self, action: Action, resource: Resource) -> AppError {
        loop {
            tokio::time::sleep(STREAM_RECHECK).await;
            match self.scope().await {
                Ok(Some(scope)) if scope.can(action, resource) => {}
                Ok(Some(_)) => return AppError::Forbidden { action, resource },
                Ok(None) => return AppError::NotFound("organization"),
                Err(e @ (AppError::Unauthorized(_) | AppError::NotFound(_))) => return e,
                Err(e) => {
                    tracing::warn!(error = %e.problem().detail, "checking an open stream's authority failed; retrying")
                }
            }
        }
    }

    /// [`Liveness::ended`] on a task of its own, so that the checks run whatever the stream is
    /// doing; the task stops when the returned [`Revoked`] is dropped.
    pub fn watch(self, action: Action, resource: Resource) -> Revoked {
        Revoked(tokio::spawn(self.ended(action, resource)))
    }

    /// The scope the stream's request would get now (`None`: no longer a member).
    async fn scope(&self) -> Result<Option<OrgScope>, AppError> {
        let outcome = match &self.credential {
            Credential::Session { user, sid, org } => {
                let found = live_session(&self.state, *user, *sid, *org).await?;
                let Some(org) = org else { return Ok(None) };
                return Ok(
                    Effective::resolve(found.user.platform_role, found.role, None)
                        .filter(|_| found.org_exists)
                        .map(|effective| OrgScope::new(*org, Actor::User(*user), effective)),
                );
            }
            Credential::ApiToken { text, org } => {
                api_token(
                    &self.state,
                    text,
                    Some(Ok(*org)),
                    self.source_ip,
                    TokenUse::Recheck,
                )
                .await?
            }
        };
        match outcome {
            AuthOutcome::Authenticated { scope, .. } => Ok(scope),
            AuthOutcome::Failed(reason) => Err(AppError::Unauthorized(reason)),
        }
    }
}

/// Resolves with the refusal once an open stream's authority has ended ([`Liveness::watch`]).
#[derive(Debug)]
pub struct Revoked(tokio::task::JoinHandle<AppError>);

impl std::future::Future for Revoked {
    type Output = AppError;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<AppError> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.unwrap_or_else(AppError::internal))
    }
}

impl Drop for Revoked {
    fn drop(&mut self) {
        self.0.abort();
    }
}
