//! The SQLite side: a WAL-mode file, foreign keys on, a busy timeout, embedded migrations.

use sqlx::AnyPool;
use sqlx::Executor;
use sqlx::migrate::Migrator;

use super::{DatabaseConfig, StoreError, pool_options};

static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");

pub(super) async fn open(config: &DatabaseConfig) -> Result<AnyPool, StoreError> {
    let url = if config.url.contains('?') {
        config.url.clone()
    } else {
        format!("{}?mode=rwc", config.url)
    };
    let pool = pool_options(config)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )
                .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    MIGRATIONS.run(&pool).await?;
    Ok(pool)
}
