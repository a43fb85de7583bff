//! The store contract: every test runs against SQLite and PostgreSQL (`<name>::sqlite`,
//! `<name>::postgres`), plus PostgreSQL-only proofs of row-level security.

use infrapilot_core::ids::{AgentId, ApiTokenId, InvitationId, OrgId, UserId};
use infrapilot_core::rbac::{Effective, OrgRole, PlatformRole};
use infrapilot_core::values::Email;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::testing::{self, Kind};

/// Declares one contract test per backend.
macro_rules! contract {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let store = testing::store(Kind::Sqlite).await;
                ($body)(store).await;
            }

            #[tokio::test]
            async fn postgres() {
                let store = testing::store(Kind::Postgres).await;
                ($body)(store).await;
            }
        }
    };
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

async fn new_user(store: &Store, address: &str) -> UserId {
    let id = UserId::from_uuid(Uuid::now_v7());
    let mut tx = store.global().await.unwrap();
    tx.insert_user(&NewUser {
        id,
        email: email(address),
        name: "Test".into(),
        password_hash: "$argon2id$fake".into(),
        platform_role: None,
        now: 1,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn new_org(store: &Store, slug: &str, owner: UserId) -> OrgScope {
    let id = OrgId::from_uuid(Uuid::now_v7());
    let mut tx = store.global().await.unwrap();
    tx.insert_org(&OrgRecord {
        id,
        name: slug.to_uppercase(),
        slug: slug.into(),
        max_users: None,
        max_agents: None,
        created_at: 1,
        updated_at: 1,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let scope = OrgScope::new(id, Actor::User(owner), Effective::Org(OrgRole::Owner));
    let mut tx = store.org(&scope).await.unwrap();
    tx.insert_member(owner, OrgRole::Owner, 1).await.unwrap();
    tx.commit().await.unwrap();
    scope
}

fn api_token(user: UserId, created_at: i64) -> ApiTokenRecord {
    ApiTokenRecord {
        id: ApiTokenId::from_uuid(Uuid::now_v7()),
        user_id: user,
        name: "ci".into(),
        secret_hash: "ab".repeat(32),
        role: OrgRole::Operator,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        created_at,
    }
}

contract!(setup_happens_once, |store: Store| async move {
    let mut tx = store.global().await.unwrap();
    assert!(!tx.setup_completed().await.unwrap());
    tx.complete_setup(5).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.global().await.unwrap();
    assert!(tx.setup_completed().await.unwrap());
    assert!(matches!(
        tx.complete_setup(6).await,
        Err(StoreError::Conflict { .. })
    ));
});

contract!(users_round_trip, |store: Store| async move {
    let id = new_user(&store, "a@example.com").await;
    let mut tx = store.global().await.unwrap();
    let mut user = tx
        .user_by_email(&email("a@example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.id, id);
    assert!(!user.totp_enabled);
    assert!(user.backup_codes.is_empty());
    user.name = "Renamed".into();
    user.platform_role = Some(PlatformRole::SuperAdmin);
    user.totp_secret = Some("sealed".into());
    user.totp_enabled = true;
    user.totp_last_step = Some(42);
    user.backup_codes = vec!["h1".into(), "h2".into()];
    user.updated_at = 9;
    tx.update_user(&user).await.unwrap();
    assert_eq!(tx.user(id).await.unwrap(), user);
    let dup = NewUser {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: email("a@example.com"),
        name: "Dup".into(),
        password_hash: "x".into(),
        platform_role: None,
        now: 1,
    };
    assert!(matches!(
        tx.insert_user(&dup).await,
        Err(StoreError::Conflict { .. })
    ));
    tx.commit().await.unwrap();
    let mut tx = store.global().await.unwrap();
    assert_eq!(tx.list_users(None, 10).await.unwrap().len(), 1);
    tx.delete_user(id).await.unwrap();
    assert!(matches!(
        tx.user(id).await,
        Err(StoreError::NotFound { .. })
    ));
});

contract!(organizations_and_members, |store: Store| async move {
    let owner = new_user(&store, "owner@example.com").await;
    let other = new_user(&store, "other@example.com").await;
    let scope = new_org(&store, "acme", owner).await;
    let mut tx = store.org(&scope).await.unwrap();
    tx.insert_member(other, OrgRole::Viewer, 2).await.unwrap();
    tx.commit().await.unwrap();
    // A conflict ends its transaction on PostgreSQL: try it in one of its own.
    let mut tx = store.org(&scope).await.unwrap();
    let dup = tx.insert_member(other, OrgRole::Admin, 3).await;
    assert!(matches!(dup, Err(StoreError::Conflict { .. })), "{dup:?}");
    drop(tx);
    let mut tx = store.org(&scope).await.unwrap();
    let (lock, _) = tx.lock_organization().await.unwrap();
    assert_eq!(tx.count_members(&lock, None).await.unwrap(), 2);
    assert_eq!(
        tx.count_members(&lock, Some(OrgRole::Owner)).await.unwrap(),
        1
    );
    tx.update_member_role(other, OrgRole::Admin).await.unwrap();
    let members = tx.list_members(None, 10).await.unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[1].role, OrgRole::Admin);
    let page = tx
        .list_members(
            Some((members[0].created_at, members[0].user_id.to_string())),
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    let mut org = tx.organization().await.unwrap();
    org.name = "Acme Inc".into();
    org.max_agents = Some(3);
    tx.update_organization(&org).await.unwrap();
    assert_eq!(tx.organization().await.unwrap().max_agents, Some(3));
    tx.commit().await.unwrap();
    // The lock proves something only in the transaction that took it.
    let mut later = store.org(&scope).await.unwrap();
    assert!(matches!(
        later.count_members(&lock, None).await,
        Err(StoreError::ForeignLock)
    ));
    assert!(matches!(
        later.count_agents(&lock).await,
        Err(StoreError::ForeignLock)
    ));
    drop(later);

    let mut g = store.global().await.unwrap();
    g.act_as_user(other).await.unwrap();
    let mine = g.memberships_of(other).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].1, OrgRole::Admin);
    assert_eq!(mine[0].0.name, "Acme Inc");
    g.commit().await.unwrap();

    let mut tx = store.org(&scope).await.unwrap();
    tx.delete_member(other).await.unwrap();
    assert!(matches!(
        tx.delete_member(other).await,
        Err(StoreError::NotFound { .. })
    ));
    tx.delete_organization().await.unwrap();
    tx.commit().await.unwrap();
    let mut g = store.global().await.unwrap();
    assert_eq!(g.count_orgs().await.unwrap(), 0);
});

contract!(
    api_tokens_and_invitations_stay_in_their_org,
    |store: Store| async move {
        let alice = new_user(&store, "alice@example.com").await;
        let bob = new_user(&store, "bob@example.com").await;
        let a = new_org(&store, "org-a", alice).await;
        let b = new_org(&store, "org-b", bob).await;

        let token = api_token(alice, 10);
        let inv = InvitationRecord {
            id: InvitationId::from_uuid(Uuid::now_v7()),
            email: email("new@example.com"),
            role: OrgRole::Viewer,
            secret_hash: "cd".repeat(32),
            invited_by: Some(alice),
            expires_at: 100,
            accepted_at: None,
            revoked_at: None,
            created_at: 10,
        };
        let mut tx = store.org(&a).await.unwrap();
        tx.insert_api_token(&token).await.unwrap();
        tx.insert_invitation(&inv).await.unwrap();
        tx.commit().await.unwrap();

        let mut g = store.global().await.unwrap();
        assert_eq!(
            g.token_org("api_token", &token.id.to_string())
                .await
                .unwrap(),
            Some(a.org())
        );
        assert_eq!(
            g.token_org("invitation", &inv.id.to_string())
                .await
                .unwrap(),
            Some(a.org())
        );
        assert_eq!(
            g.token_org("invitation", &token.id.to_string())
                .await
                .unwrap(),
            None
        );
        g.commit().await.unwrap();

        // Org B sees none of it and can change none of it.
        let mut tx = store.org(&b).await.unwrap();
        assert!(matches!(
            tx.api_token(token.id).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(tx.list_api_tokens(None, None, 10).await.unwrap().is_empty());
        assert!(matches!(
            tx.invitation(inv.id).await,
            Err(StoreError::NotFound { .. })
        ));
        let mut revoked = token.clone();
        revoked.revoked_at = Some(11);
        assert!(matches!(
            tx.update_api_token(&revoked).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            tx.update_member_role(alice, OrgRole::Viewer).await,
            Err(StoreError::NotFound { .. })
        ));
        tx.commit().await.unwrap();

        let mut tx = store.org(&a).await.unwrap();
        assert_eq!(tx.api_token(token.id).await.unwrap(), token);
        tx.update_api_token(&revoked).await.unwrap();
        assert_eq!(tx.api_token(token.id).await.unwrap().revoked_at, Some(11));
        assert_eq!(
            tx.list_api_tokens(Some(alice), None, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            tx.list_api_tokens(Some(bob), None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let mut accepted = tx.invitation(inv.id).await.unwrap();
        assert_eq!(accepted, inv);
        accepted.accepted_at = Some(50);
        tx.update_invitation(&accepted).await.unwrap();
        assert_eq!(
            tx.list_invitations(None, 10).await.unwrap()[0].accepted_at,
            Some(50)
        );
    }
);

contract!(
    a_failed_transaction_leaves_nothing,
    |store: Store| async move {
        let alice = new_user(&store, "alice@example.com").await;
        let a = new_org(&store, "org-a", alice).await;
        {
            let mut tx = store.org(&a).await.unwrap();
            tx.insert_api_token(&api_token(alice, 10)).await.unwrap();
            // Dropped without commit: rolled back.
        }
        let mut tx = store.org(&a).await.unwrap();
        assert!(tx.list_api_tokens(None, None, 10).await.unwrap().is_empty());
    }
);

fn again_batch(agent: AgentId) -> LogBatchRecord {
    let mut again = log_batch(agent, 1..=2);
    again.epoch = "e2".into();
    for line in &mut again.lines {
        line.line = format!("line {} of the second epoch", line.seq);
    }
    again
}

fn log_batch(agent: AgentId, seqs: std::ops::RangeInclusive<i64>) -> LogBatchRecord {
    let lines: Vec<LogLineRecord> = seqs
        .clone()
        .map(|seq| LogLineRecord {
            agent_id: agent,
            stream: "container:c1".into(),
            seq,
            ts: seq * 1_000_000,
            container_id: Some("c1".into()),
            container_name: Some("web".into()),
            source: "stdout".into(),
            level: if seq % 2 == 0 { "error" } else { "info" }.into(),
            line: format!("line {seq} 100%_done"),
            http_status: None,
            upstream_ms: None,
        })
        .collect();
    LogBatchRecord {
        stream: "container:c1".into(),
        kind: "container".into(),
        container_id: Some("c1".into()),
        container_name: Some("web".into()),
        dropped: 0,
        epoch: "e1".into(),
        last_seq: *seqs.end(),
        lines,
    }
}

contract!(
    log_lines_are_stored_once_counted_once_filtered_and_expired,
    |store: Store| async move {
        use infrapilot_core::events::{EventKind, Severity};
        let owner = new_user(&store, "logs@example.com").await;
        let scope = new_org(&store, "logs-org", owner).await;
        let agent = AgentId::from_uuid(Uuid::new_v4());
        let now = 3 * 86_400_000_000;
        let mut tx = store.org(&scope).await.unwrap();
        let first = tx
            .ingest_log_batch(agent, &mut log_batch(agent, 1..=4), now)
            .await
            .unwrap();
        assert_eq!(
            (first.inserted, first.previously_acked, first.acked_seq),
            (4, 0, 4)
        );
        // The same batch again (its acknowledgement was lost): nothing new, same answer.
        let again = tx
            .ingest_log_batch(agent, &mut log_batch(agent, 1..=4), now)
            .await
            .unwrap();
        assert_eq!(
            (again.inserted, again.previously_acked, again.acked_seq),
            (0, 4, 4)
        );
        let overlap = tx
            .ingest_log_batch(agent, &mut log_batch(agent, 3..=6), now)
            .await
            .unwrap();
        assert_eq!((overlap.inserted, overlap.acked_seq), (2, 6));
        let usage = tx.log_usage(0, 10).await.unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            (usage[0].day, usage[0].lines),
            (3, 6),
            "each line counted once"
        );
        let bytes: i64 = (1..=6)
            .map(|i| format!("line {i} 100%_done").len() as i64)
            .sum();
        assert_eq!(usage[0].bytes, bytes);

        let all = tx
            .query_logs(&LogFilter::default(), None, false, 100)
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|l| l.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        let errors = LogFilter {
            levels: vec!["error".into()],
            containers: vec!["web".into()],
            since: Some(2_000_000),
            until: Some(6_000_000),
            ..LogFilter::default()
        };
        let found = tx.query_logs(&errors, None, true, 100).await.unwrap();
        assert_eq!(found.iter().map(|l| l.seq).collect::<Vec<_>>(), [4, 2]);
        // `%` and `_` in the search text are literal, and the search ignores case.
        let text = LogFilter {
            text: Some("5 100%_DONE".into()),
            ..LogFilter::default()
        };
        let found = tx.query_logs(&text, None, true, 100).await.unwrap();
        assert_eq!(found.iter().map(|l| l.seq).collect::<Vec<_>>(), [5]);
        let literal = LogFilter {
            text: Some("1_0".into()),
            ..LogFilter::default()
        };
        assert!(
            tx.query_logs(&literal, None, true, 100)
                .await
                .unwrap()
                .is_empty()
        );
        // Pages continue after their cursor.
        let page = tx
            .query_logs(&LogFilter::default(), None, true, 2)
            .await
            .unwrap();
        let next = tx
            .query_logs(
                &LogFilter::default(),
                Some(&LogCursor::of(&page[1])),
                true,
                2,
            )
            .await
            .unwrap();
        assert_eq!(next.iter().map(|l| l.seq).collect::<Vec<_>>(), [4, 3]);
        let streams = tx.log_streams(Some(agent)).await.unwrap();
        assert_eq!((streams.len(), streams[0].acked_seq), (1, 6));

        assert_eq!(
            tx.log_retention_days().await.unwrap(),
            DEFAULT_RETENTION_DAYS
        );
        tx.set_log_retention_days(30, now).await.unwrap();
        assert_eq!(tx.log_retention_days().await.unwrap(), 30);
        assert_eq!(tx.delete_logs_before(3_000_000).await.unwrap(), 2);
        assert_eq!(
            tx.query_logs(&LogFilter::default(), None, false, 100)
                .await
                .unwrap()
                .len(),
            4
        );

        let event = EventRecord {
            id: Uuid::new_v4().to_string(),
            kind: EventKind::ContainerDie,
            severity: Severity::Error,
            agent_id: Some(agent),
            container_id: Some("c1".into()),
            container_name: Some("web".into()),
            summary: "web exited with code 1".into(),
            details: serde_json::json!({"exit_code": 1}),
            origin: Some(format!("{agent}/docker:events/1")),
            at: 3_600_000_000 + 5,
            recorded_at: now,
        };
        assert!(tx.insert_event(&event).await.unwrap());
        let twice = EventRecord {
            id: Uuid::new_v4().to_string(),
            ..event.clone()
        };
        assert!(
            !tx.insert_event(&twice).await.unwrap(),
            "one origin, one event"
        );
        let filter = EventFilter {
            kinds: vec![EventKind::ContainerDie],
            min_severity: Some(Severity::Warning),
            container: Some("web".into()),
            ..EventFilter::default()
        };
        let listed = tx.list_events(&filter, None, true, 10).await.unwrap();
        assert_eq!(listed, std::slice::from_ref(&event));
        let counts = tx
            .count_events(&EventFilter::default(), 3_600_000_000)
            .await
            .unwrap();
        assert_eq!(counts, [(3_600_000_000, "container.die".to_owned(), 1)]);
        let quiet = EventFilter {
            min_severity: Some(Severity::Error),
            kinds: vec![EventKind::AgentOnline],
            ..EventFilter::default()
        };
        assert!(
            tx.list_events(&quiet, None, true, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            tx.events_recorded_after(&EventFilter::default(), (now - 1, ""), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(tx.delete_events_before(3_600_000_010).await.unwrap(), 1);
        tx.commit().await.unwrap();
    }
);

contract!(
    a_stream_started_over_is_stored_after_its_old_records,
    |store: Store| async move {
        let owner = new_user(&store, "epochs@example.com").await;
        let scope = new_org(&store, "epochs-org", owner).await;
        let agent = AgentId::from_uuid(Uuid::new_v4());
        let mut tx = store.org(&scope).await.unwrap();
        let first = tx
            .ingest_log_batch(agent, &mut log_batch(agent, 1..=6), 10)
            .await
            .unwrap();
        assert_eq!((first.inserted, first.ack), (6, 6));
        // The agent lost its buffer and started the stream over (a new epoch): its new
        // records are stored after the old ones, not dropped as copies.
        let restarted = tx
            .ingest_log_batch(agent, &mut again_batch(agent), 10)
            .await
            .unwrap();
        assert_eq!(
            (restarted.inserted, restarted.acked_seq, restarted.ack),
            (2, 8, 2)
        );
        let resent = tx
            .ingest_log_batch(agent, &mut again_batch(agent), 10)
            .await
            .unwrap();
        assert_eq!((resent.inserted, resent.ack), (0, 2), "resent: nothing new");
        let stored = tx
            .query_logs(&LogFilter::default(), None, false, 100)
            .await
            .unwrap();
        let seqs: Vec<i64> = stored.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [1, 7, 2, 8, 3, 4, 5, 6], "by time, then seq");
        assert!(
            stored
                .iter()
                .any(|l| l.line == "line 2 of the second epoch")
        );
        tx.commit().await.unwrap();
    }
);

/// The two migration histories end at the same logical schema: same tables, same columns,
/// same nullability, equivalent types.
#[tokio::test]
async fn both_backends_reach_the_same_schema() {
    let lite = testing::store(Kind::Sqlite).await;
    let pg = testing::store(Kind::Postgres).await;
    let lite_rows = sqlx::query(
        "SELECT m.name AS t, p.name AS c, p.type AS ty, p.\"notnull\" AS nn, p.pk AS pk \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
    )
    .fetch_all(lite.pool())
    .await
    .unwrap();
    let mut lite_schema: Vec<(String, String, String, bool)> = lite_rows
        .iter()
        .map(|r| {
            let ty: String = r.get("ty");
            let nn: i64 = r.get("nn");
            let pk: i64 = r.get("pk");
            (r.get("t"), r.get("c"), ty.to_lowercase(), nn == 1 || pk > 0)
        })
        .collect();
    let pg_rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS ty, \
         is_nullable::text AS nullable FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap();
    let mut pg_schema: Vec<(String, String, String, bool)> = pg_rows
        .iter()
        .map(|r| {
            let ty: String = r.get("ty");
            let nullable: String = r.get("nullable");
            (r.get("t"), r.get("c"), ty, nullable == "NO")
        })
        .collect();
    let normalize = |ty: &str| match ty {
        "integer" | "bigint" => "integer".to_owned(),
        "text" => "text".to_owned(),
        // SQLite has no boolean type; flags are INTEGER there and BOOLEAN on PostgreSQL.
        "boolean" => "integer".to_owned(),
        other => other.to_owned(),
    };
    for row in lite_schema.iter_mut().chain(pg_schema.iter_mut()) {
        row.2 = normalize(&row.2);
    }
    lite_schema.sort();
    pg_schema.sort();
    assert!(!lite_schema.is_empty());
    assert_eq!(lite_schema, pg_schema);
}

/// Runs `sql` as the server's role inside a transaction with the given org context.
async fn raw_count(store: &Store, org: Option<OrgId>, table: &str) -> i64 {
    let mut tx = store.pool().begin().await.unwrap();
    if let Some(org) = org {
        postgres::set_context(&mut tx, Some(org), None)
            .await
            .unwrap();
    }
    let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    row.get::<i64, _>("n")
}

#[tokio::test]
async fn postgres_rls_hides_everything_without_context_and_other_orgs_with_it() {
    let store = testing::store(Kind::Postgres).await;
    let alice = new_user(&store, "alice@example.com").await;
    let bob = new_user(&store, "bob@example.com").await;
    let a = new_org(&store, "org-a", alice).await;
    let b = new_org(&store, "org-b", bob).await;
    for (scope, user) in [(&a, alice), (&b, bob)] {
        let mut tx = store.org(scope).await.unwrap();
        tx.insert_api_token(&api_token(user, 10)).await.unwrap();
        tx.commit().await.unwrap();
    }
    for (scope, seqs) in [(&a, 1..=2), (&b, 1..=3)] {
        let agent = infrapilot_core::ids::AgentId::from_uuid(Uuid::new_v4());
        let mut tx = store.org(scope).await.unwrap();
        tx.ingest_log_batch(agent, &mut log_batch(agent, seqs), 1)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    for (table, a_rows) in [("log_lines", 2), ("log_streams", 1), ("log_usage", 1)] {
        assert_eq!(raw_count(&store, None, table).await, 0, "{table}");
        assert_eq!(
            raw_count(&store, Some(a.org()), table).await,
            a_rows,
            "{table}"
        );
    }
    for table in ["api_tokens", "memberships"] {
        // No context: unfiltered queries see zero rows.
        assert_eq!(raw_count(&store, None, table).await, 0, "{table}");
        // Org A's context: only A's rows, although the query has no WHERE.
        assert_eq!(raw_count(&store, Some(a.org()), table).await, 1, "{table}");
    }

    let mut tx = store.pool().begin().await.unwrap();
    postgres::set_context(&mut tx, Some(a.org()), None)
        .await
        .unwrap();
    // Writes to B's rows touch nothing.
    let updated = sqlx::query("UPDATE api_tokens SET name = 'stolen'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1, "only A's own token");
    let deleted = sqlx::query("DELETE FROM api_tokens WHERE org_id = $1")
        .bind(b.org().to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    // Inserting a row into B is refused by the policy's WITH CHECK.
    let insert = sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', 1)",
    )
    .bind(b.org().to_string())
    .bind(alice.to_string())
    .execute(&mut *tx)
    .await;
    let err = insert.unwrap_err().to_string();
    assert!(err.contains("row-level security"), "{err}");
    drop(tx);

    let mut tx = store.org(&b).await.unwrap();
    let b_tokens = tx.list_api_tokens(None, None, 10).await.unwrap();
    assert_eq!(b_tokens.len(), 1);
    assert_eq!(b_tokens[0].name, "ci", "B's token was not renamed");
}

#[tokio::test]
async fn relayed_commands_left_behind_are_swept_but_streams_are_not() {
    // PostgreSQL only: relaying notifies, which SQLite (one replica) never does.
    let store = testing::store(Kind::Postgres).await;
    let owner = new_user(&store, "relay@example.com").await;
    let scope = new_org(&store, "relay-org", owner).await;
    let relay = |id: &str, timeout_ms| RelayRecord {
        id: id.to_owned(),
        agent: AgentId::from_uuid(Uuid::new_v4()),
        origin_replica: "a".into(),
        target_replica: "b".into(),
        command: String::new(),
        timeout_ms,
        reply: None,
    };
    let mut tx = store.org(&scope).await.unwrap();
    tx.insert_relay(&relay("old", 5000), 10).await.unwrap();
    tx.insert_relay(&relay("new", 5000), 100).await.unwrap();
    tx.insert_relay(&relay("stream", 0), 10).await.unwrap();
    assert_eq!(tx.delete_relays_before(50).await.unwrap(), 1);
    for (id, kept) in [("old", false), ("new", true), ("stream", true)] {
        assert_eq!(tx.relay(id).await.unwrap().is_some(), kept, "{id}");
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn postgres_refuses_a_role_that_bypasses_rls() {
    let mut config = testing::postgres_config().await;
    // The same fresh database, reached as the cluster's superuser.
    let db = config
        .url
        .rsplit_once('/')
        .map(|(_, db)| db.to_owned())
        .unwrap();
    let admin = testing::pg_admin_url();
    config.url = format!(
        "{}/{db}",
        admin.rsplit_once('/').map(|(base, _)| base).unwrap()
    );
    config.migration_url = None;
    let err = Store::connect(&config).await.unwrap_err().to_string();
    assert!(err.contains("BYPASSRLS"), "{err}");
}

contract!(
    a_session_is_live_until_revoked_or_past_its_lifetime,
    |store: Store| async move {
        let user = new_user(&store, "session@example.com").await;
        let sid = Uuid::now_v7();
        let mut g = store.global().await.unwrap();
        g.put_refresh_family(&sid.to_string(), user, "{}", false, 1_000)
            .await
            .unwrap();
        g.commit().await.unwrap();
        let live = |started_after: i64| {
            let store = store.clone();
            async move {
                let mut g = store.global_read().await.unwrap();
                let found = g
                    .session_account(user, sid, None, started_after)
                    .await
                    .unwrap()
                    .unwrap();
                g.commit().await.unwrap();
                found.session_live
            }
        };
        // Started at 1,000: live for a floor before it, not for one at or after it.
        assert!(live(999).await);
        assert!(!live(1_000).await);
        let mut g = store.global().await.unwrap();
        g.put_refresh_family(&sid.to_string(), user, "{}", true, 2_000)
            .await
            .unwrap();
        g.commit().await.unwrap();
        assert!(!live(999).await, "revoked");
        // Another session id is never live.
        let mut g = store.global_read().await.unwrap();
        let other = g
            .session_account(user, Uuid::now_v7(), None, 0)
            .await
            .unwrap()
            .unwrap();
        assert!(!other.session_live);
    }
);
