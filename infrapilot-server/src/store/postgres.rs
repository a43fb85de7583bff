//! The PostgreSQL side: migrations as the table owner, a refusal to run as a role that would
//! bypass row-level security, and the per-transaction organization context.

use infrapilot_core::ids::{OrgId, UserId};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Transaction};

use super::{DatabaseConfig, StoreError, col, pool_options};

static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

pub(super) async fn open(config: &DatabaseConfig) -> Result<AnyPool, StoreError> {
    match &config.migration_url {
        Some(owner_url) => {
            let owner = pool_options(config)
                .max_connections(1)
                .connect(owner_url)
                .await?;
            MIGRATIONS.run(&owner).await?;
            owner.close().await;
        }
        None => {
            let pool = pool_options(config)
                .max_connections(1)
                .connect(&config.url)
                .await?;
            MIGRATIONS.run(&pool).await?;
            pool.close().await;
        }
    }
    let pool = pool_options(config).connect(&config.url).await?;
    let row =
        sqlx::query("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&pool)
            .await?;
    let superuser: bool = col(&row, "rolsuper")?;
    let bypass: bool = col(&row, "rolbypassrls")?;
    if superuser || bypass {
        return Err(StoreError::Unsafe(
            "DATABASE_URL connects as a PostgreSQL superuser or a role with BYPASSRLS, which \
             would switch off row-level security; connect as a plain role that is a member of \
             infrapilot_rw (see ARCHITECTURE.md, \"PostgreSQL roles\")"
                .to_owned(),
        ));
    }
    Ok(pool)
}

/// Sets the row-level-security context for the rest of the transaction.
pub(super) async fn set_context(
    tx: &mut Transaction<'static, Any>,
    org: Option<OrgId>,
    user: Option<UserId>,
) -> Result<(), StoreError> {
    let org = org.map(|o| o.to_string()).unwrap_or_default();
    let user = user.map(|u| u.to_string()).unwrap_or_default();
    sqlx::query(
        "SELECT set_config('app.current_org_id', $1, true), \
                set_config('app.current_user_id', $2, true)",
    )
    .bind(org)
    .bind(user)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
