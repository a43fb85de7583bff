//! Tenant tables, reachable only through an [`OrgTx`] opened from an [`OrgScope`]. Every
//! query here filters on `self.scope.org()`; on PostgreSQL, row-level security filters again.

use infrapilot_core::ids::{ApiTokenId, InvitationId, OrgId, UserId};
use infrapilot_core::rbac::OrgRole;
use infrapilot_core::values::Email;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::global::{ORG_COLUMNS, OrgRecord, org_from_row};
use super::{Backend, OrgScope, StoreError, col, conflict_as, parsed};

/// Proof that a transaction holds its organization's row lock
/// ([`OrgTx::lock_organization`]); the methods that count rows for an invariant take it, and
/// refuse ([`StoreError::ForeignLock`]) the proof of another transaction.
#[derive(Debug)]
pub struct OrgLock(u64);

/// A number no other [`OrgTx`] of this process has, to tie an [`OrgLock`] to its transaction.
pub(super) fn next_serial() -> u64 {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A transaction confined to one organization.
pub struct OrgTx {
    pub(super) tx: Transaction<'static, Any>,
    pub(super) scope: OrgScope,
    pub(super) backend: Backend,
    /// This transaction's number ([`next_serial`]), which its [`OrgLock`] carries.
    pub(super) serial: u64,
}

/// A member of the organization, with account details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The member's account.
    pub user_id: UserId,
    /// The account's e-mail address.
    pub email: Email,
    /// The account's display name.
    pub name: String,
    /// The role in this organization.
    pub role: OrgRole,
    /// When they joined, unix microseconds.
    pub created_at: i64,
}

/// A personal API token as stored (the secret only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// The token's id (also its public part).
    pub id: ApiTokenId,
    /// The token's owner.
    pub user_id: UserId,
    /// A name to recognise it by.
    pub name: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// The most the token may do (never above its owner's role).
    pub role: OrgRole,
    /// Expiry, unix microseconds.
    pub expires_at: Option<i64>,
    /// Last use, unix microseconds.
    pub last_used_at: Option<i64>,
    /// Revocation time, unix microseconds.
    pub revoked_at: Option<i64>,
    /// Creation time, unix microseconds.
    pub created_at: i64,
}

/// An invitation as stored (the secret only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    /// The invitation's id (also its public part).
    pub id: InvitationId,
    /// Who is invited.
    pub email: Email,
    /// The role they get on accepting.
    pub role: OrgRole,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// Who invited them.
    pub invited_by: Option<UserId>,
    /// Expiry, unix microseconds.
    pub expires_at: i64,
    /// Acceptance time, unix microseconds.
    pub accepted_at: Option<i64>,
    /// Revocation time, unix microseconds.
    pub revoked_at: Option<i64>,
    /// Creation time, unix microseconds.
    pub created_at: i64,
}

const TOKEN_COLUMNS: &str =
    "id, user_id, name, secret_hash, role, expires_at, last_used_at, revoked_at, created_at";
const INVITATION_COLUMNS: &str = "id, email, role, secret_hash, invited_by, expires_at, \
    accepted_at, revoked_at, created_at";

fn token_from_row(row: &AnyRow) -> Result<ApiTokenRecord, StoreError> {
    Ok(ApiTokenRecord {
        id: parsed(row, "id")?,
        user_id: parsed(row, "user_id")?,
        name: col(row, "name")?,
        secret_hash: col(row, "secret_hash")?,
        role: parsed(row, "role")?,
        expires_at: col(row, "expires_at")?,
        last_used_at: col(row, "last_used_at")?,
        revoked_at: col(row, "revoked_at")?,
        created_at: col(row, "created_at")?,
    })
}

fn invitation_from_row(row: &AnyRow) -> Result<InvitationRecord, StoreError> {
    let invited_by: Option<String> = col(row, "invited_by")?;
    Ok(InvitationRecord {
        id: parsed(row, "id")?,
        email: parsed(row, "email")?,
        role: parsed(row, "role")?,
        secret_hash: col(row, "secret_hash")?,
        invited_by: invited_by
            .map(|s| s.parse().map_err(|e| StoreError::corrupt("invited_by", e)))
            .transpose()?,
        expires_at: col(row, "expires_at")?,
        accepted_at: col(row, "accepted_at")?,
        revoked_at: col(row, "revoked_at")?,
        created_at: col(row, "created_at")?,
    })
}

fn member_from_row(row: &AnyRow) -> Result<MemberRecord, StoreError> {
    Ok(MemberRecord {
        user_id: parsed(row, "user_id")?,
        email: parsed(row, "email")?,
        name: col(row, "name")?,
        role: parsed(row, "role")?,
        created_at: col(row, "created_at")?,
    })
}

/// A `(created_at, id)` keyset cursor, or the start.
pub(crate) fn cursor_or_start(after: Option<(i64, String)>) -> (i64, String) {
    after.unwrap_or((i64::MIN, String::new()))
}

impl OrgTx {
    /// Continues this transaction in another organization (account-level events are recorded
    /// in every organization of the account, atomically with the change).
    pub async fn switch_org(mut self, scope: &OrgScope) -> Result<OrgTx, StoreError> {
        if self.backend == Backend::Postgres {
            super::postgres::set_context(&mut self.tx, Some(scope.org()), scope.actor().user())
                .await?;
        }
        self.scope = scope.clone();
        Ok(self)
    }

    /// The scope this transaction acts in.
    pub fn scope(&self) -> &OrgScope {
        &self.scope
    }

    fn org_id(&self) -> String {
        self.scope.org().to_string()
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }

    /// Whether `lock` was taken by this transaction.
    fn holds(&self, lock: &OrgLock) -> Result<(), StoreError> {
        if lock.0 == self.serial {
            Ok(())
        } else {
            Err(StoreError::ForeignLock)
        }
    }

    /// Continues this transaction over the global tables (the organization's context is
    /// dropped on PostgreSQL), keeping every lock it holds: a check made under
    /// [`OrgTx::lock_organization`] still holds when the global write commits.
    pub async fn into_global(mut self) -> Result<super::GlobalTx, StoreError> {
        if self.backend == Backend::Postgres {
            super::postgres::set_context(&mut self.tx, None, None).await?;
        }
        Ok(super::GlobalTx {
            tx: self.tx,
            backend: self.backend,
        })
    }

    pub(super) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Locks the organization's row for the rest of the transaction and reads it.
    ///
    /// Every check that counts rows before it writes (the last owner, the member and agent
    /// limits) holds this lock, so two such checks of one organization never interleave: on
    /// PostgreSQL (READ COMMITTED) it is `SELECT … FOR UPDATE`, and what the transaction reads
    /// after it includes everything committed before it was granted; on SQLite the write
    /// transaction (`BEGIN IMMEDIATE`) already serialises every writer. The counting methods
    /// take the returned [`OrgLock`], so a count without the lock does not type-check.
    pub async fn lock_organization(&mut self) -> Result<(OrgLock, OrgRecord), StoreError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        Ok((OrgLock(self.serial), self.read_organization(lock).await?))
    }

    /// The organization itself.
    pub async fn organization(&mut self) -> Result<OrgRecord, StoreError> {
        self.read_organization("").await
    }

    async fn read_organization(&mut self, suffix: &str) -> Result<OrgRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1{suffix}"
        ))
        .bind(self.org_id())
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or(StoreError::NotFound {
            what: "organization",
        })?;
        org_from_row(&row)
    }

    /// Renames the organization or changes its limits.
    pub async fn update_organization(&mut self, org: &OrgRecord) -> Result<(), StoreError> {
        if org.id != self.scope.org() {
            return Err(StoreError::NotFound {
                what: "organization",
            });
        }
        sqlx::query(
            "UPDATE organizations SET name = $2, slug = $3, max_users = $4, max_agents = $5, \
             updated_at = $6 WHERE id = $1",
        )
        .bind(self.org_id())
        .bind(&org.name)
        .bind(&org.slug)
        .bind(org.max_users)
        .bind(org.max_agents)
        .bind(org.updated_at)
        .execute(&mut *self.tx)
        .await
        .map_err(conflict_as("an organization with this slug"))?;
        Ok(())
    }

    /// Deletes the organization and, by cascade, everything it owns.
    pub async fn delete_organization(&mut self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM organizations WHERE id = $1")
            .bind(self.org_id())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Members, oldest first, after a cursor.
    pub async fn list_members(
        &mut self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        let (t, id) = cursor_or_start(after);
        let rows = sqlx::query(
            "SELECT m.user_id, u.email, u.name, m.role, m.created_at FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 \
             AND (m.created_at, m.user_id) > ($2, $3) ORDER BY m.created_at, m.user_id LIMIT $4",
        )
        .bind(self.org_id())
        .bind(t)
        .bind(id)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// One member.
    pub async fn member(&mut self, user: UserId) -> Result<Option<MemberRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT m.user_id, u.email, u.name, m.role, m.created_at FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id = $2",
        )
        .bind(self.org_id())
        .bind(user.to_string())
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(member_from_row).transpose()
    }

    /// Adds a member.
    pub async fn insert_member(
        &mut self,
        user: UserId,
        role: OrgRole,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(self.org_id())
        .bind(user.to_string())
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *self.tx)
        .await
        .map_err(conflict_as("this member"))?;
        Ok(())
    }

    /// Changes a member's role.
    pub async fn update_member_role(
        &mut self,
        user: UserId,
        role: OrgRole,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2")
                .bind(self.org_id())
                .bind(user.to_string())
                .bind(role.as_str())
                .execute(&mut *self.tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "member" });
        }
        Ok(())
    }

    /// Removes a member.
    pub async fn delete_member(&mut self, user: UserId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(self.org_id())
            .bind(user.to_string())
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "member" });
        }
        Ok(())
    }

    /// How many members hold `role` (or any role, for `None`).
    pub async fn count_members(
        &mut self,
        lock: &OrgLock,
        role: Option<OrgRole>,
    ) -> Result<i64, StoreError> {
        self.holds(lock)?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND ($2 = '' OR role = $2)",
        )
        .bind(self.org_id())
        .bind(role.map(OrgRole::as_str).unwrap_or(""))
        .fetch_one(&mut *self.tx)
        .await?;
        col(&row, "n")
    }

    /// How many agents are enrolled.
    pub async fn count_agents(&mut self, lock: &OrgLock) -> Result<i64, StoreError> {
        self.holds(lock)?;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM agents WHERE org_id = $1")
            .bind(self.org_id())
            .fetch_one(&mut *self.tx)
            .await?;
        col(&row, "n")
    }

    /// Records which organization a token's public id belongs to, so a presented token can
    /// be routed to its organization before any tenant row is read.
    pub(super) async fn index_token(
        &mut self,
        kind: &str,
        public_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO token_index (public_id, kind, org_id) VALUES ($1, $2, $3)")
            .bind(public_id)
            .bind(kind)
            .bind(self.org_id())
            .execute(&mut *self.tx)
            .await
            .map_err(conflict_as("token id"))?;
        Ok(())
    }

    pub(super) async fn unindex_token(&mut self, public_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM token_index WHERE public_id = $1 AND org_id = $2")
            .bind(public_id)
            .bind(self.org_id())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Stores a new API token.
    pub async fn insert_api_token(&mut self, token: &ApiTokenRecord) -> Result<(), StoreError> {
        self.index_token("api_token", &token.id.to_string()).await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, org_id, user_id, name, secret_hash, role, expires_at, \
             last_used_at, revoked_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(token.id.to_string())
        .bind(self.org_id())
        .bind(token.user_id.to_string())
        .bind(&token.name)
        .bind(&token.secret_hash)
        .bind(token.role.as_str())
        .bind(token.expires_at)
        .bind(token.last_used_at)
        .bind(token.revoked_at)
        .bind(token.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(conflict_as("api token"))?;
        Ok(())
    }

    /// One API token.
    pub async fn api_token(&mut self, id: ApiTokenId) -> Result<ApiTokenRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org_id())
        .bind(id.to_string())
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or(StoreError::NotFound { what: "api token" })?;
        token_from_row(&row)
    }

    /// API tokens, oldest first, of one user or (for `None`) of everyone.
    pub async fn list_api_tokens(
        &mut self,
        user: Option<UserId>,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let (t, id) = cursor_or_start(after);
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE org_id = $1 AND ($2 = '' OR user_id = $2) \
             AND (created_at, id) > ($3, $4) ORDER BY created_at, id LIMIT $5"
        ))
        .bind(self.org_id())
        .bind(user.map(|u| u.to_string()).unwrap_or_default())
        .bind(t)
        .bind(id)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Marks an API token used or revoked.
    pub async fn update_api_token(&mut self, token: &ApiTokenRecord) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET name = $3, last_used_at = $4, revoked_at = $5 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org_id())
        .bind(token.id.to_string())
        .bind(&token.name)
        .bind(token.last_used_at)
        .bind(token.revoked_at)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "api token" });
        }
        Ok(())
    }

    /// Revokes every API token of a user in this organization (when they leave it).
    pub async fn revoke_api_tokens_of(&mut self, user: UserId, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $3 WHERE org_id = $1 AND user_id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(self.org_id())
        .bind(user.to_string())
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Stores a new invitation.
    pub async fn insert_invitation(&mut self, inv: &InvitationRecord) -> Result<(), StoreError> {
        self.index_token("invitation", &inv.id.to_string()).await?;
        sqlx::query(
            "INSERT INTO invitations (id, org_id, email, role, secret_hash, invited_by, \
             expires_at, accepted_at, revoked_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(inv.id.to_string())
        .bind(self.org_id())
        .bind(inv.email.as_str())
        .bind(inv.role.as_str())
        .bind(&inv.secret_hash)
        .bind(inv.invited_by.map(|u| u.to_string()))
        .bind(inv.expires_at)
        .bind(inv.accepted_at)
        .bind(inv.revoked_at)
        .bind(inv.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(conflict_as("invitation"))?;
        Ok(())
    }

    /// One invitation.
    pub async fn invitation(&mut self, id: InvitationId) -> Result<InvitationRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org_id())
        .bind(id.to_string())
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or(StoreError::NotFound { what: "invitation" })?;
        invitation_from_row(&row)
    }

    /// Invitations, oldest first.
    pub async fn list_invitations(
        &mut self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<InvitationRecord>, StoreError> {
        let (t, id) = cursor_or_start(after);
        let rows = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE org_id = $1 \
             AND (created_at, id) > ($2, $3) ORDER BY created_at, id LIMIT $4"
        ))
        .bind(self.org_id())
        .bind(t)
        .bind(id)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    /// Marks an invitation accepted or revoked.
    pub async fn update_invitation(&mut self, inv: &InvitationRecord) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE invitations SET accepted_at = $3, revoked_at = $4 WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org_id())
        .bind(inv.id.to_string())
        .bind(inv.accepted_at)
        .bind(inv.revoked_at)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "invitation" });
        }
        Ok(())
    }

    /// The organization id, for callers that need it in a record.
    pub fn org(&self) -> OrgId {
        self.scope.org()
    }

    /// The backend, for the few queries that differ.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}
