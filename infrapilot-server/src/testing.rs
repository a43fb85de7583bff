//! Test support: throwaway SQLite and PostgreSQL stores, and helpers for the load benchmark.
//! Compiled for tests and with the `test-support` feature only; failures here are test
//! failures, so they panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]
//!
//! PostgreSQL tests need `INFRAPILOT_TEST_PG_ADMIN_URL`, a superuser URL of a throwaway
//! cluster; `cargo xtask test` starts one and sets it. Each store gets its own database,
//! owned by `infrapilot_owner`, and the server side connects as `infrapilot_app`, a plain
//! member of `infrapilot_rw` — the production arrangement.

use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::store::{DatabaseConfig, Store};

/// Which backends the contract suite runs against.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A store on a fresh database of `kind`.
pub async fn store(kind: Kind) -> Store {
    Store::connect(&database(kind).await)
        .await
        .expect("connect test store")
}

/// A fresh database of `kind` (not yet migrated).
pub async fn database(kind: Kind) -> DatabaseConfig {
    match kind {
        Kind::Sqlite => sqlite_config(),
        Kind::Postgres => postgres_config().await,
    }
}

pub fn sqlite_config() -> DatabaseConfig {
    let dir = std::env::temp_dir().join(format!("infrapilot-test-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    DatabaseConfig {
        url: format!("sqlite://{}", dir.join("infrapilot.db").display()),
        migration_url: None,
        max_connections: 4,
    }
}

/// The admin URL of the throwaway PostgreSQL cluster, or a loud failure.
pub fn pg_admin_url() -> String {
    std::env::var("INFRAPILOT_TEST_PG_ADMIN_URL").unwrap_or_else(|_| {
        panic!(
            "INFRAPILOT_TEST_PG_ADMIN_URL is not set: PostgreSQL tests need the throwaway \
             cluster that `cargo xtask test` starts (or run `cargo xtask pg` and export the URL \
             it prints)"
        )
    })
}

/// A fresh database with the production role arrangement.
pub async fn postgres_config() -> DatabaseConfig {
    let admin_url = pg_admin_url();
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .expect("admin");
    for (role, sql) in [
        ("infrapilot_rw", "CREATE ROLE infrapilot_rw NOLOGIN"),
        (
            "infrapilot_owner",
            "CREATE ROLE infrapilot_owner LOGIN PASSWORD 'owner'",
        ),
        (
            "infrapilot_app",
            "CREATE ROLE infrapilot_app LOGIN PASSWORD 'app' IN ROLE infrapilot_rw",
        ),
    ] {
        // Tests run in parallel processes and may create a role at the same moment: besides
        // "already exists", PostgreSQL can then answer a unique violation or "tuple
        // concurrently updated". Whatever the error, what matters is that the role exists.
        if let Err(e) = admin.execute(sql).await {
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
                    .bind(role)
                    .fetch_optional(&admin)
                    .await
                    .expect("query pg_roles");
            assert!(exists.is_some(), "{sql}: {e}");
        }
    }
    let db = format!("ip_test_{}", Uuid::new_v4().simple());
    admin
        .execute(format!("CREATE DATABASE {db} OWNER infrapilot_owner").as_str())
        .await
        .expect("create db");
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    let host = base
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(base)
        .trim_start_matches("postgres://");
    DatabaseConfig {
        url: format!("postgres://infrapilot_app:app@{host}/{db}"),
        migration_url: Some(format!("postgres://infrapilot_owner:owner@{host}/{db}")),
        max_connections: 4,
    }
}

/// An application over a fresh store of `kind`, with cheap password hashing, for tests
/// driving the router with `oneshot`.
pub async fn app_state(kind: Kind, edition: crate::config::Edition) -> crate::AppState {
    app_state_on(&database(kind).await, edition).await
}

/// An application over the database `config` names (a second replica of a PostgreSQL test
/// database shares it with the first).
pub async fn app_state_on(
    config: &DatabaseConfig,
    edition: crate::config::Edition,
) -> crate::AppState {
    app_state_with(config, edition, &[]).await
}

/// [`app_state_on`] with further configuration variables (`INFRAPILOT_…`).
pub async fn app_state_with(
    config: &DatabaseConfig,
    edition: crate::config::Edition,
    extra: &[(&str, &str)],
) -> crate::AppState {
    use std::collections::HashMap;

    let store = Store::connect(config).await.expect("connect test store");
    let mut vars: HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    vars.insert("INFRAPILOT_HEARTBEAT_SECS".to_owned(), "1".to_owned());
    vars.insert(
        "INFRAPILOT_EDITION".to_owned(),
        match edition {
            crate::config::Edition::Community => "community".to_owned(),
            crate::config::Edition::Saas => "saas".to_owned(),
        },
    );
    let config = crate::config::Config::from_vars(&vars).expect("config");
    let keys = crate::keys::Keys::from_master(&[42; 32]);
    let ca = crate::ca::InstanceCa::load_or_create(&store, &keys)
        .await
        .expect("ca");
    crate::AppState::new(
        config,
        store,
        keys,
        ca,
        infrapilot_core::identity::PasswordParams::for_tests(),
    )
    .expect("state")
}

/// Runs setup (cheap password hashing) and returns an owner's access token and the org id.
pub async fn bootstrap_admin(state: &crate::AppState) -> (String, infrapilot_core::ids::OrgId) {
    let (token, org) = crate::api::http_tests_support::bootstrap(state).await;
    (token, org.parse().expect("org id"))
}

/// Creates a viewer account in the token's organization.
pub async fn create_member(state: &crate::AppState, token: &str, email: &str) {
    crate::api::http_tests_support::create_member(state, token, email).await;
}

/// Times one run of the members list query, as the endpoint runs it (a transaction in the
/// organization's context plus the query), without HTTP, authentication or serialization.
pub async fn time_list_members(
    state: &crate::AppState,
    org: infrapilot_core::ids::OrgId,
) -> std::time::Duration {
    use infrapilot_core::rbac::{Effective, OrgRole};

    use crate::store::{Actor, OrgScope};

    let scope = OrgScope::new(org, Actor::System, Effective::Org(OrgRole::Viewer));
    let start = std::time::Instant::now();
    let mut tx = state.store().org(&scope).await.expect("tx");
    let rows = tx.list_members(None, 51).await.expect("list");
    tx.commit().await.expect("commit");
    let elapsed = start.elapsed();
    assert!(!rows.is_empty());
    elapsed
}

/// Inserts an agent row directly (as enrollment would), for tests that need one to exist.
pub async fn insert_agent(
    state: &crate::AppState,
    org: infrapilot_core::ids::OrgId,
    name: &str,
) -> infrapilot_core::ids::AgentId {
    use infrapilot_core::rbac::{Effective, OrgRole};

    use crate::store::{Actor, AgentRecord, OrgScope};

    let id = infrapilot_core::ids::AgentId::from_uuid(uuid::Uuid::now_v7());
    let scope = OrgScope::new(org, Actor::Agent(id), Effective::Org(OrgRole::Viewer));
    let mut tx = state.store().org(&scope).await.expect("tx");
    tx.insert_agent(&AgentRecord {
        id,
        name: name.to_owned(),
        labels: infrapilot_core::values::Labels::parse_pairs(["env=test"]).expect("labels"),
        disabled: false,
        hostname: name.to_owned(),
        version: "test".to_owned(),
        key_fingerprint: crate::util::sha256_hex(id.to_string().as_bytes()),
        enrollment_token: String::new(),
        cert_not_after: 0,
        heartbeat: serde_json::json!({}),
        connected_replica: None,
        connected_at: None,
        last_seen_at: None,
        applied_revision: 0,
        created_at: crate::util::now_micros(),
    })
    .await
    .expect("insert agent");
    tx.commit().await.expect("commit");
    id
}

/// Records an open violation of `policy` on a container named `resource` in `org`.
pub async fn insert_violation(
    state: &crate::AppState,
    org: infrapilot_core::ids::OrgId,
    policy: infrapilot_core::ids::PolicyId,
    resource: &str,
) -> infrapilot_core::ids::ViolationId {
    use infrapilot_core::rbac::{Effective, OrgRole};

    use crate::store::{Actor, OrgScope, ViolationRecord};

    let id = infrapilot_core::ids::ViolationId::from_uuid(uuid::Uuid::now_v7());
    let scope = OrgScope::new(org, Actor::System, Effective::Org(OrgRole::Viewer));
    let mut tx = state.store().org(&scope).await.expect("tx");
    tx.insert_violation(&ViolationRecord {
        id,
        policy_id: policy,
        policy_name: "test policy".to_owned(),
        action: "warn".to_owned(),
        operation: "start".to_owned(),
        agent_id: None,
        resource_kind: "container".to_owned(),
        resource: resource.to_owned(),
        message: format!("{resource} broke a rule"),
        evidence: serde_json::json!([]),
        actor: "system".to_owned(),
        created_at: crate::util::now_micros(),
        resolved_at: None,
        resolved_by: None,
        resolution_note: None,
    })
    .await
    .expect("insert violation");
    tx.commit().await.expect("commit");
    id
}
