//! Storage: one interface over SQLite (the embedded default) and PostgreSQL.
//!
//! # Shape
//!
//! [`Store`] is the one storage interface. Its queries are written once, in the SQL that both
//! databases accept (`$N` placeholders, `BIGINT` microsecond times, UUIDs as text), and run
//! through sqlx's `Any` driver. What differs per database lives in `store/sqlite.rs` and `store/postgres.rs`:
//! connecting, pragmas, migrations (`migrations/sqlite`, `migrations/postgres`), how a
//! transaction begins, and the row-level-security context. Writing every query twice would
//! double the code that must stay in step for no behaviour we want to differ; the contract
//! suite (`store/tests.rs`) runs every store operation against both databases.
//!
//! # Tenancy, twice
//!
//! Tenant data is reachable only through an [`OrgTx`], which is opened from an [`OrgScope`].
//! A scope can only be made by the authentication layer from a checked membership (or by the
//! setup and enrollment flows, which create the organization or redeem a token first), so
//! code that has no scope has no way to name tenant rows. Every `OrgTx` query also filters on
//! the scope's organization. On PostgreSQL the transaction additionally sets
//! `app.current_org_id`, and row-level security (enabled and forced on every tenant table)
//! hides every other organization's rows even from a query that forgot its filter.

mod access_lists;
mod agents;
mod alerts;
mod audit;
mod certificates;
mod enrollment;
mod events;
mod global;
mod logs;
mod org;
mod policies;
mod postgres;
mod proxy;
mod relay;
mod scope;
mod sqlite;
#[cfg(test)]
mod tests;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

pub use access_lists::AccessListRecord;
pub use agents::AgentRecord;
pub use alerts::{AlertRecord, ChannelRecord, DeliveryRecord, RuleRecord};
pub use audit::{AuditFilter, AuditRecord, StoredAuditEntry};
pub use certificates::CertificateRecord;
pub use enrollment::StoredEnrollmentToken;
pub use events::{EventFilter, EventRecord};
pub use global::{GlobalTx, NewUser, OrgRecord, SessionAccount, StateTable, UserRecord};
pub use logs::{
    DEFAULT_RETENTION_DAYS, IngestOutcome, LOG_LINES_CHANNEL, LogBatchRecord, LogCursor, LogFilter,
    LogLineRecord, LogStreamRecord, StoredLines, UsageRecord,
};
pub use org::{ApiTokenRecord, InvitationRecord, MemberRecord};
pub use org::{OrgLock, OrgTx};
pub use policies::{PolicyRecord, ViolationCounts, ViolationFilter, ViolationRecord};
pub use proxy::ProxyHostRecord;
pub use relay::{RelayRecord, replica_channel};
pub use scope::{Actor, OrgScope};

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (WAL mode). One server process.
    Sqlite,
    /// A PostgreSQL server, with row-level security. Any number of server processes.
    Postgres,
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`: the URL the server works through.
    pub url: String,
    /// PostgreSQL only: the URL of the role that owns the tables, used to run migrations.
    /// When absent, migrations run through `url`.
    pub migration_url: Option<String>,
    /// The most connections the pool opens.
    pub max_connections: u32,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The row does not exist (or belongs to another organization, which is the same thing).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: &'static str,
    },
    /// A uniqueness rule refused the write.
    #[error("{what} already exists")]
    Conflict {
        /// What collided.
        what: &'static str,
    },
    /// A stored value could not be read back (a corrupted or hand-edited row).
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why it could not be read.
        reason: String,
    },
    /// The database is configured in a way the server refuses to run with.
    #[error("{0}")]
    Unsafe(String),
    /// Migrations failed.
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A count for an invariant was given the lock of another transaction (a bug: the count
    /// would not be serialised).
    #[error("an organization lock was used outside the transaction that took it")]
    ForeignLock,
}

impl StoreError {
    pub(crate) fn corrupt(what: &'static str, reason: impl ToString) -> Self {
        StoreError::Corrupt {
            what,
            reason: reason.to_string(),
        }
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
pub(crate) fn conflict_as(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match e.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict { what },
        _ => StoreError::Database(e),
    }
}

/// Whether a transaction may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
}

/// The storage interface: a pool plus the backend it talks to.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
}

impl Store {
    /// Connects, refuses unsafe configurations and runs the migrations.
    pub async fn connect(config: &DatabaseConfig) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if config.url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if config.url.starts_with("postgres:") || config.url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Unsafe(format!(
                "DATABASE_URL must start with sqlite:// or postgres://, got {:?}",
                config.url.split(':').next().unwrap_or_default()
            )));
        };
        let pool = match backend {
            Backend::Sqlite => sqlite::open(config).await?,
            Backend::Postgres => postgres::open(config).await?,
        };
        Ok(Store {
            pool,
            backend,
            url: config.url.clone(),
        })
    }

    /// The backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL the store connects with (for PostgreSQL's LISTEN connection).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `payload` on the PostgreSQL channel `channel` (`NOTIFY`, outside any transaction:
    /// it is delivered at once, after every notification this call sent before). Touches no
    /// table; on SQLite there is nobody to notify and it does nothing.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel.to_owned())
            .bind(payload.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Begins a transaction over the global tables (users, organizations, sessions).
    pub async fn global(&self) -> Result<global::GlobalTx, StoreError> {
        Ok(global::GlobalTx {
            tx: self.begin(Mode::Write).await?,
            backend: self.backend,
        })
    }

    /// Begins a transaction over the global tables that only reads. On SQLite it does not
    /// take the write lock, so reads run side by side; it must not write.
    pub async fn global_read(&self) -> Result<global::GlobalTx, StoreError> {
        Ok(global::GlobalTx {
            tx: self.begin(Mode::Read).await?,
            backend: self.backend,
        })
    }

    /// Begins a transaction confined to `scope`'s organization that only reads (see
    /// [`Store::global_read`]).
    pub async fn org_read(&self, scope: &OrgScope) -> Result<org::OrgTx, StoreError> {
        self.org_tx(scope, Mode::Read).await
    }

    /// Begins a transaction confined to `scope`'s organization.
    pub async fn org(&self, scope: &OrgScope) -> Result<org::OrgTx, StoreError> {
        self.org_tx(scope, Mode::Write).await
    }

    async fn org_tx(&self, scope: &OrgScope, mode: Mode) -> Result<org::OrgTx, StoreError> {
        let mut tx = self.begin(mode).await?;
        if self.backend == Backend::Postgres {
            postgres::set_context(&mut tx, Some(scope.org()), scope.actor().user()).await?;
        }
        Ok(org::OrgTx {
            tx,
            scope: scope.clone(),
            backend: self.backend,
            serial: org::next_serial(),
        })
    }

    async fn begin(&self, mode: Mode) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match (self.backend, mode) {
            // IMMEDIATE takes SQLite's single write lock up front: a deferred transaction that
            // reads and then writes fails outright (not after a wait) when another writer
            // committed in between.
            (Backend::Sqlite, Mode::Write) => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            (Backend::Sqlite, Mode::Read) | (Backend::Postgres, _) => self.pool.begin().await?,
        })
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

fn pool_options(config: &DatabaseConfig) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10))
}

/// Reads a column, naming it in the error.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name).map_err(|e| StoreError::corrupt(name, e))
}

/// Reads a flag: PostgreSQL stores `BOOLEAN`, SQLite (which has no boolean type) `INTEGER`.
pub(crate) fn flag(row: &AnyRow, name: &'static str) -> Result<bool, StoreError> {
    match row.try_get::<bool, _>(name) {
        Ok(value) => Ok(value),
        Err(_) => col::<i64>(row, name).map(|n| n != 0),
    }
}

/// Reads a text column and parses it.
pub(crate) fn parsed<T: std::str::FromStr>(
    row: &AnyRow,
    name: &'static str,
) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let text: String = col(row, name)?;
    text.parse()
        .map_err(|e: T::Err| StoreError::corrupt(name, e))
}

/// Reads a JSON text column.
pub(crate) fn json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    name: &'static str,
) -> Result<T, StoreError> {
    let text: String = col(row, name)?;
    serde_json::from_str(&text).map_err(|e| StoreError::corrupt(name, e))
}

/// Encodes a value as JSON text for a column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt("json", e))
}
