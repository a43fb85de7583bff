//! Global tables: the instance, user accounts, the organization registry, sessions, login
//! throttling and the token index. None of these hold tenant data; organizations' own rows
//! live behind [`super::OrgTx`].

use infrapilot_core::ids::{OrgId, UserId};
use infrapilot_core::rbac::{OrgRole, PlatformRole};
use infrapilot_core::values::Email;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::{Backend, StoreError, col, conflict_as, flag, parsed, postgres};

/// What authentication reads for a request with a session's access token
/// ([`GlobalTx::session_account`]).
#[derive(Debug)]
pub struct SessionAccount {
    /// The account.
    pub user: UserRecord,
    /// Its role in the organization asked about, if it is a member.
    pub role: Option<OrgRole>,
    /// Whether the organization asked about exists.
    pub org_exists: bool,
    /// Whether the session is live: not revoked (by sign-out, refresh-token reuse, a password
    /// change or an administrator) and within its absolute lifetime.
    pub session_live: bool,
}

/// A transaction over the global tables.
pub struct GlobalTx {
    pub(super) tx: Transaction<'static, Any>,
    pub(super) backend: Backend,
}

/// A user account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The account's id.
    pub id: UserId,
    /// The login e-mail address (unique).
    pub email: Email,
    /// The display name.
    pub name: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// The platform role, if any.
    pub platform_role: Option<PlatformRole>,
    /// The TOTP secret, encrypted with the server's secret key, once enrolment started.
    pub totp_secret: Option<String>,
    /// Whether TOTP is confirmed and required at login.
    pub totp_enabled: bool,
    /// The last TOTP time step accepted (replay protection).
    pub totp_last_step: Option<i64>,
    /// SHA-256 hashes of the unused backup codes.
    pub backup_codes: Vec<String>,
    /// A disabled account cannot sign in.
    pub disabled: bool,
    /// Creation time, unix microseconds.
    pub created_at: i64,
    /// Last change, unix microseconds.
    pub updated_at: i64,
}

/// What is needed to create an account.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The new account's id.
    pub id: UserId,
    /// The login e-mail address.
    pub email: Email,
    /// The display name.
    pub name: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// The platform role, if any.
    pub platform_role: Option<PlatformRole>,
    /// Creation time, unix microseconds.
    pub now: i64,
}

/// An organization as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRecord {
    /// The organization's id.
    pub id: OrgId,
    /// The display name.
    pub name: String,
    /// The URL-safe unique short name.
    pub slug: String,
    /// The most members it may have, if limited.
    pub max_users: Option<i64>,
    /// The most agents it may enroll, if limited.
    pub max_agents: Option<i64>,
    /// Creation time, unix microseconds.
    pub created_at: i64,
    /// Last change, unix microseconds.
    pub updated_at: i64,
}

const USER_COLUMNS: &str = "id, email, name, password_hash, platform_role, totp_secret, \
    totp_enabled, totp_last_step, backup_codes, disabled, created_at, updated_at";
const USER_COLUMNS_U: &str = "u.id, u.email, u.name, u.password_hash, u.platform_role, \
    u.totp_secret, u.totp_enabled, u.totp_last_step, u.backup_codes, u.disabled, u.created_at, \
    u.updated_at";
pub(super) const ORG_COLUMNS: &str =
    "id, name, slug, max_users, max_agents, created_at, updated_at";

pub(super) fn user_from_row(row: &AnyRow) -> Result<UserRecord, StoreError> {
    let platform_role: Option<String> = col(row, "platform_role")?;
    let platform_role = match platform_role.as_deref() {
        None => None,
        Some("super_admin") => Some(PlatformRole::SuperAdmin),
        Some(other) => return Err(StoreError::corrupt("platform_role", other)),
    };
    let codes: String = col(row, "backup_codes")?;
    Ok(UserRecord {
        id: parsed(row, "id")?,
        email: parsed(row, "email")?,
        name: col(row, "name")?,
        password_hash: col(row, "password_hash")?,
        platform_role,
        totp_secret: col(row, "totp_secret")?,
        totp_enabled: flag(row, "totp_enabled")?,
        totp_last_step: col(row, "totp_last_step")?,
        backup_codes: serde_json::from_str(&codes)
            .map_err(|e| StoreError::corrupt("backup_codes", e))?,
        disabled: flag(row, "disabled")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

pub(super) fn org_from_row(row: &AnyRow) -> Result<OrgRecord, StoreError> {
    Ok(OrgRecord {
        id: parsed(row, "id")?,
        name: col(row, "name")?,
        slug: col(row, "slug")?,
        max_users: col(row, "max_users")?,
        max_agents: col(row, "max_agents")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn platform_role_text(role: Option<PlatformRole>) -> Option<&'static str> {
    role.map(|PlatformRole::SuperAdmin| "super_admin")
}

impl GlobalTx {
    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }

    /// Continues this transaction inside `scope`'s organization, so rows created in the global
    /// tables (a new organization, a new user) and tenant rows commit together.
    pub async fn into_org(mut self, scope: &super::OrgScope) -> Result<super::OrgTx, StoreError> {
        if self.backend == Backend::Postgres {
            postgres::set_context(&mut self.tx, Some(scope.org()), scope.actor().user()).await?;
        }
        Ok(super::OrgTx {
            tx: self.tx,
            scope: scope.clone(),
            backend: self.backend,
            serial: super::org::next_serial(),
        })
    }

    /// On PostgreSQL, lets this transaction see `user`'s memberships in every organization.
    pub async fn act_as_user(&mut self, user: UserId) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            postgres::set_context(&mut self.tx, None, Some(user)).await?;
        }
        Ok(())
    }

    /// Whether first-run setup has happened.
    pub async fn setup_completed(&mut self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM instance_setup")
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(col::<i64>(&row, "n")? > 0)
    }

    /// Records that setup happened; a second call conflicts, even from a concurrent request.
    pub async fn complete_setup(&mut self, now: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO instance_setup (id, completed_at) VALUES (1, $1)")
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .map_err(conflict_as("setup"))?;
        Ok(())
    }

    /// Creates an account; the e-mail address must be unused.
    pub async fn insert_user(&mut self, user: &NewUser) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, platform_role, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(user.id.to_string())
        .bind(user.email.as_str())
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(platform_role_text(user.platform_role))
        .bind(user.now)
        .execute(&mut *self.tx)
        .await
        .map_err(conflict_as("a user with this e-mail address"))?;
        Ok(())
    }

    /// The account with this e-mail address.
    pub async fn user_by_email(&mut self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The account with this id.
    pub async fn user(&mut self, id: UserId) -> Result<UserRecord, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or(StoreError::NotFound { what: "user" })?;
        user_from_row(&row)
    }

    /// Writes back every mutable field of an account.
    pub async fn update_user(&mut self, user: &UserRecord) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET email = $2, name = $3, password_hash = $4, platform_role = $5, \
             totp_secret = $6, totp_enabled = $7, totp_last_step = $8, backup_codes = $9, \
             disabled = $10, updated_at = $11 WHERE id = $1",
        )
        .bind(user.id.to_string())
        .bind(user.email.as_str())
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(platform_role_text(user.platform_role))
        .bind(&user.totp_secret)
        .bind(user.totp_enabled)
        .bind(user.totp_last_step)
        .bind(super::to_json(&user.backup_codes)?)
        .bind(user.disabled)
        .bind(user.updated_at)
        .execute(&mut *self.tx)
        .await
        .map_err(conflict_as("a user with this e-mail address"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "user" });
        }
        Ok(())
    }

    /// Deletes an account (its memberships and sessions go with it).
    pub async fn delete_user(&mut self, id: UserId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "user" });
        }
        Ok(())
    }

    /// Every account, oldest first, after a `(created_at, id)` cursor (super admins only).
    pub async fn list_users(
        &mut self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let (t, id) = after.unwrap_or((i64::MIN, String::new()));
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE (created_at, id) > ($1, $2) \
             ORDER BY created_at, id LIMIT $3"
        ))
        .bind(t)
        .bind(id)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Registers an organization.
    pub async fn insert_org(&mut self, org: &OrgRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO organizations (id, name, slug, max_users, max_agents, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(org.id.to_string())
        .bind(&org.name)
        .bind(&org.slug)
        .bind(org.max_users)
        .bind(org.max_agents)
        .bind(org.created_at)
        .bind(org.updated_at)
        .execute(&mut *self.tx)
        .await
        .map_err(conflict_as("an organization with this slug"))?;
        Ok(())
    }

    /// For authentication, in one query: the account, whether the login session `sid` is
    /// still live (not revoked, and started after `started_after`, unix microseconds: within
    /// its absolute lifetime), and, when `org` is given, the account's role there and whether
    /// the organization exists. Sets the row-level-security context on PostgreSQL.
    pub async fn session_account(
        &mut self,
        user: UserId,
        sid: uuid::Uuid,
        org: Option<OrgId>,
        started_after: i64,
    ) -> Result<Option<SessionAccount>, StoreError> {
        if self.backend == Backend::Postgres {
            postgres::set_context(&mut self.tx, org, Some(user)).await?;
        }
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS_U}, m.role AS member_role, \
             (SELECT COUNT(*) FROM organizations o WHERE o.id = $2) AS org_count, \
             (SELECT COUNT(*) FROM refresh_families f \
              WHERE f.id = $3 AND f.user_id = u.id AND NOT f.revoked AND f.created_at > $4) \
             AS live_sessions \
             FROM users u LEFT JOIN memberships m ON m.user_id = u.id AND m.org_id = $2 \
             WHERE u.id = $1"
        ))
        .bind(user.to_string())
        .bind(org.map(|o| o.to_string()))
        .bind(sid.to_string())
        .bind(started_after)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let role: Option<String> = col(&row, "member_role")?;
        let role = role
            .map(|r| r.parse().map_err(|e| StoreError::corrupt("role", e)))
            .transpose()?;
        Ok(Some(SessionAccount {
            user: user_from_row(&row)?,
            role,
            org_exists: col::<i64>(&row, "org_count")? > 0,
            session_live: col::<i64>(&row, "live_sessions")? > 0,
        }))
    }

    /// Whether an organization exists.
    pub async fn org_exists(&mut self, id: OrgId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM organizations WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(col::<i64>(&row, "n")? > 0)
    }

    /// The organization with this id.
    pub async fn org(&mut self, id: OrgId) -> Result<OrgRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or(StoreError::NotFound {
            what: "organization",
        })?;
        org_from_row(&row)
    }

    /// How many organizations exist.
    pub async fn count_orgs(&mut self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM organizations")
            .fetch_one(&mut *self.tx)
            .await?;
        col(&row, "n")
    }

    /// Every organization, oldest first, after a cursor (super admins only).
    pub async fn list_orgs(
        &mut self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<OrgRecord>, StoreError> {
        let (t, id) = after.unwrap_or((i64::MIN, String::new()));
        let rows = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE (created_at, id) > ($1, $2) \
             ORDER BY created_at, id LIMIT $3"
        ))
        .bind(t)
        .bind(id)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(org_from_row).collect()
    }

    /// The organizations `user` belongs to, with their role in each. Call
    /// [`GlobalTx::act_as_user`] first on PostgreSQL.
    pub async fn memberships_of(
        &mut self,
        user: UserId,
    ) -> Result<Vec<(OrgRecord, OrgRole)>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.slug, o.max_users, o.max_agents, o.created_at, \
             o.updated_at, m.role FROM memberships m JOIN organizations o ON o.id = m.org_id \
             WHERE m.user_id = $1 ORDER BY o.created_at, o.id",
        )
        .bind(user.to_string())
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|row| Ok((org_from_row(row)?, parsed(row, "role")?)))
            .collect()
    }

    /// Locks, for the rest of the transaction, every organization `user` belongs to (in id
    /// order, so two such locks never wait on each other), so that no role in any of them
    /// changes before the transaction ends: what [`GlobalTx::memberships_of`] reads next stays
    /// true until commit. PostgreSQL only; SQLite's write transactions are serialised already.
    /// Call [`GlobalTx::act_as_user`] first.
    pub async fn lock_organizations_of(&mut self, user: UserId) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query(
                "SELECT o.id FROM organizations o WHERE o.id IN \
                 (SELECT m.org_id FROM memberships m WHERE m.user_id = $1) \
                 ORDER BY o.id FOR UPDATE",
            )
            .bind(user.to_string())
            .fetch_all(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// Which organization a token's public id belongs to.
    pub async fn token_org(
        &mut self,
        kind: &str,
        public_id: &str,
    ) -> Result<Option<OrgId>, StoreError> {
        let row = sqlx::query("SELECT org_id FROM token_index WHERE public_id = $1 AND kind = $2")
            .bind(public_id)
            .bind(kind)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(|r| parsed(r, "org_id")).transpose()
    }

    /// Reads a JSON state blob from a keyed global table (`refresh_families` by id,
    /// `login_throttle` by key).
    pub async fn get_state(
        &mut self,
        table: StateTable,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let sql = match table {
            StateTable::RefreshFamilies => "SELECT state FROM refresh_families WHERE id = $1",
            StateTable::LoginThrottle => "SELECT state FROM login_throttle WHERE key = $1",
        };
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref().map(|r| col(r, "state")).transpose()
    }

    /// Reads a throttle key's state and locks its row for the rest of the transaction
    /// (PostgreSQL: the row is made first if missing, then `SELECT … FOR UPDATE`; SQLite's
    /// write transaction already serialises), so concurrent guesses against one key are
    /// counted one after another and none is lost.
    pub async fn lock_throttle(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query(
                "INSERT INTO login_throttle (key, state, updated_at) VALUES ($1, '{}', 0) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .execute(&mut *self.tx)
            .await?;
            let row = sqlx::query("SELECT state FROM login_throttle WHERE key = $1 FOR UPDATE")
                .bind(key)
                .fetch_optional(&mut *self.tx)
                .await?;
            return row.as_ref().map(|r| col(r, "state")).transpose();
        }
        self.get_state(StateTable::LoginThrottle, key).await
    }

    /// Writes a login-throttle state.
    pub async fn put_throttle(
        &mut self,
        key: &str,
        state: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_throttle (key, state, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(state)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Creates or replaces a refresh-token family's state; `revoked` is what
    /// [`GlobalTx::session_account`] reads on every request.
    pub async fn put_refresh_family(
        &mut self,
        id: &str,
        user: UserId,
        state: &str,
        revoked: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_families (id, user_id, state, revoked, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, revoked = excluded.revoked, \
             updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(user.to_string())
        .bind(state)
        .bind(revoked)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Locks a refresh family's row for the rest of the transaction (PostgreSQL), so two
    /// concurrent refreshes with one token cannot both rotate it.
    pub async fn lock_refresh_family(
        &mut self,
        id: &str,
    ) -> Result<Option<(UserId, String)>, StoreError> {
        let sql = match self.backend {
            Backend::Postgres => {
                "SELECT user_id, state FROM refresh_families WHERE id = $1 FOR UPDATE"
            }
            Backend::Sqlite => "SELECT user_id, state FROM refresh_families WHERE id = $1",
        };
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.as_ref()
            .map(|r| Ok((parsed(r, "user_id")?, col(r, "state")?)))
            .transpose()
    }

    /// Every refresh family of a user (to revoke them all on a password change).
    pub async fn refresh_families_of(
        &mut self,
        user: UserId,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, state FROM refresh_families WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|r| Ok((col(r, "id")?, col(r, "state")?)))
            .collect()
    }
}

/// The global tables that hold a JSON state blob per key.
#[derive(Debug, Clone, Copy)]
pub enum StateTable {
    /// Refresh-token families, by family id.
    RefreshFamilies,
    /// Login throttling, by `account:<email>` or `ip:<address>`.
    LoginThrottle,
}
