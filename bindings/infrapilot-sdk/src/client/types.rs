//! The API's wire types, as documented in `openapi/openapi.json`.
//!
//! Times are RFC 3339 strings and ids are strings, so these types carry exactly what the
//! server sent and convert to JSON for bindings without loss.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One page of a list; pass `next_cursor` as [`ListQuery::cursor`] for the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The cursor of the next page; absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// Paging for list calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// How many items (1–200; the server's default is 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Filters for the audit log; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Exact action, e.g. `member.create`.
    #[serde(default)]
    pub action: Option<String>,
    /// Exact actor: `user:<id>`, `api_token:<id>` or `system`.
    #[serde(default)]
    pub actor: Option<String>,
    /// Exact resource kind, e.g. `member`.
    #[serde(default)]
    pub resource_kind: Option<String>,
    /// `success`, `failure` or `denied`.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Entries at or after this time (RFC 3339).
    #[serde(default)]
    pub from: Option<String>,
    /// Entries before this time (RFC 3339).
    #[serde(default)]
    pub to: Option<String>,
    /// How many entries (1–200, default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// The answer to a sign-in: tokens, or a request for the second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Whether a TOTP or backup code must be sent with [`super::Client::login_mfa`] first.
    pub mfa_required: bool,
    /// With `mfa_required`: the short-lived token to send with the code.
    #[serde(default)]
    pub mfa_token: Option<String>,
    /// The session, when no second factor is owed.
    #[serde(default)]
    pub session: Option<Session>,
}

/// A session's tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `Bearer`.
    pub token_type: String,
    /// The access token (a JWT).
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token.
    pub refresh_token: String,
    /// The organization the access token acts in.
    #[serde(default)]
    pub organization_id: Option<String>,
}

impl std::fmt::Debug for Session {
    // Tokens are credentials: keep them out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("organization_id", &self.organization_id)
            .finish_non_exhaustive()
    }
}

/// Whether setup is still needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupStatus {
    /// `true` until setup has been done.
    pub setup_required: bool,
    /// `community` or `saas`.
    pub edition: String,
}

/// The first administrator and organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The code from the server's log.
    pub setup_code: String,
    /// The administrator's e-mail address.
    pub email: String,
    /// The administrator's name.
    pub name: String,
    /// The administrator's password (12–128 characters).
    pub password: String,
    /// The first organization's name.
    pub organization_name: String,
    /// The first organization's slug (derived from the name when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_slug: Option<String>,
}

/// What setup created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupResponse {
    /// The super admin's id.
    pub user_id: String,
    /// The organization's id.
    pub organization_id: String,
    /// The organization's slug.
    pub organization_slug: String,
}

/// The signed-in account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The account's id.
    pub id: String,
    /// The e-mail address.
    pub email: String,
    /// The display name.
    pub name: String,
    /// Whether TOTP is required at sign-in.
    pub mfa_enabled: bool,
    /// How many unused backup codes remain.
    pub backup_codes_left: u32,
    /// The organizations and roles.
    pub organizations: Vec<MyOrganization>,
    /// `super_admin` or absent.
    #[serde(default)]
    pub platform_role: Option<String>,
    /// When the account was created.
    pub created_at: String,
}

/// One organization of the signed-in account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyOrganization {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its slug.
    pub slug: String,
    /// The account's role in it.
    pub role: String,
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its slug.
    pub slug: String,
    /// When it was created.
    pub created_at: String,
    /// The caller's role, when a member.
    #[serde(default)]
    pub role: Option<String>,
    /// The most agents, if limited.
    #[serde(default)]
    pub max_agents: Option<i64>,
    /// The most members, if limited.
    #[serde(default)]
    pub max_users: Option<i64>,
}

/// A new organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Its name.
    pub name: String,
    /// Its slug (derived from the name when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
}

/// A member of the current organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The account's id.
    pub user_id: String,
    /// The e-mail address.
    pub email: String,
    /// The display name.
    pub name: String,
    /// `owner`, `admin`, `operator` or `viewer`.
    pub role: String,
    /// When they joined.
    pub joined_at: String,
}

/// An invitation to the current organization, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// Its id.
    pub id: String,
    /// Who is invited.
    pub email: String,
    /// The role they get.
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    /// When it expires.
    pub expires_at: String,
    /// When it was made.
    pub created_at: String,
}

/// A new invitation and its token, shown once: pass the token to the invitee, who accepts it
/// signed in as their account (or creates one with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedInvitation {
    /// The invitation.
    pub invitation: Invitation,
    /// The secret token.
    pub token: String,
}

/// An API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Its id.
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// Its name.
    pub name: String,
    /// The most it may do.
    pub role: String,
    /// When it was made.
    pub created_at: String,
    /// When it expires, if ever.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// When it was last used.
    #[serde(default)]
    pub last_used_at: Option<String>,
    /// When it was revoked.
    #[serde(default)]
    pub revoked_at: Option<String>,
}

/// A new API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// A name to recognise it by.
    pub name: String,
    /// The most it may do (default and maximum: your own role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Days until it expires (1–3650); absent means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
}

/// A created API token with its secret, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedApiToken {
    /// The token's record.
    pub api_token: ApiToken,
    /// The secret, for `Authorization: Bearer …`; it is not shown again.
    pub token: String,
}

impl std::fmt::Debug for CreatedApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiToken")
            .field("api_token", &self.api_token)
            .finish_non_exhaustive()
    }
}

/// A new enrollment token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentToken {
    /// A name to recognise it by.
    pub name: String,
    /// Labels for the agents it enrolls.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Seconds until it expires (60–31536000, default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<i64>,
    /// How many agents may enroll with it (default: unlimited until it expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
}

/// An enrollment token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentTokenView {
    /// Its public id (16 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Labels every agent enrolled with it gets.
    pub labels: BTreeMap<String, String>,
    /// `active`, `revoked`, `expired` or `exhausted`.
    pub status: String,
    /// How many agents enrolled with it.
    pub uses: u32,
    /// How many may (absent: unlimited).
    #[serde(default)]
    pub max_uses: Option<u32>,
    /// When it was made.
    pub created_at: String,
    /// When it expires.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A created enrollment token, shown once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedEnrollmentToken {
    /// The token's record.
    pub enrollment_token: EnrollmentTokenView,
    /// The token itself (`IPT1.…`); it is not shown again.
    pub token: String,
    /// The command that installs, enrolls and starts an agent on a host.
    pub install_command: String,
}

impl std::fmt::Debug for CreatedEnrollmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedEnrollmentToken")
            .field("enrollment_token", &self.enrollment_token)
            .finish_non_exhaustive()
    }
}

/// One audit entry, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditItem {
    /// Its place in the organization's chain.
    pub seq: u64,
    /// When.
    pub time: String,
    /// Who: `{"type": "user", "id": …}`, `{"type": "api_token", …}`, `{"type": "system"}`.
    pub actor: Value,
    /// What, e.g. `member.create`.
    pub action: String,
    /// The resource kind.
    pub resource_kind: String,
    /// The resource id.
    pub resource_id: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Context.
    pub details: Value,
    /// The chain hash, hex.
    pub hash: String,
    /// The client's address.
    #[serde(default)]
    pub source_ip: Option<String>,
}

/// The problem document every API error carries (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Problem {
    #[serde(rename = "type", default)]
    pub(crate) problem_type: String,
    #[serde(default)]
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) status: u16,
    #[serde(default)]
    pub(crate) detail: String,
    #[serde(default)]
    pub(crate) errors: Vec<crate::error::FieldError>,
    #[serde(default)]
    pub(crate) request_id: Option<String>,
    #[serde(default)]
    pub(crate) retry_after: Option<u64>,
}
