//! The audit log: each organization's hash chain, appended in the same transaction as the
//! change it records.
//!
//! `audit_heads` holds one row per organization with the head's seq and a checkpoint signed
//! over it. On PostgreSQL the row is locked (`FOR UPDATE`) for the rest of the transaction, so
//! concurrent appends to one organization queue up instead of forking the chain; on SQLite
//! the `BEGIN IMMEDIATE` write lock does the same. Every 100th entry's checkpoint is also kept
//! in `audit_checkpoints`, so a history of signed heads survives.

use std::net::IpAddr;

use ed25519_dalek::SigningKey;
use infrapilot_core::audit::{
    self, AuditAction, AuditEntry, ChainedEntry, Checkpoint, Outcome, Resource, ResourceId,
    ResourceKind,
};
use serde::Deserialize;

use super::org::OrgTx;
use super::{Actor, Backend, StoreError, col, json, to_json};

/// How often a checkpoint is also kept in the history table.
const CHECKPOINT_HISTORY_EVERY: u64 = 100;

/// What a handler records about one action.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// The action, e.g. `member.create`.
    pub action: &'static str,
    /// The kind of resource, e.g. `member`.
    pub resource_kind: &'static str,
    /// The resource's id.
    pub resource_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The client's address.
    pub source_ip: Option<IpAddr>,
    /// Context: changed fields, names (never secrets).
    pub details: serde_json::Value,
}

/// A stored audit entry, as listed.
pub type StoredAuditEntry = ChainedEntry;

/// Filters for listing the audit log; all optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    /// Exact action name.
    pub action: Option<String>,
    /// Exact actor (`user:<id>`, `api_token:<id>`, `system`).
    pub actor: Option<String>,
    /// Exact resource kind.
    pub resource_kind: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// Entries at or after this time, unix microseconds.
    pub from: Option<i64>,
    /// Entries before this time, unix microseconds.
    pub to: Option<i64>,
}

fn core_actor(actor: Actor) -> audit::Actor {
    match actor {
        Actor::User(user) => audit::Actor::User(user),
        Actor::ApiToken { token, .. } => audit::Actor::ApiToken(token),
        Actor::Agent(agent) => audit::Actor::Agent(agent),
        Actor::System => audit::Actor::System,
    }
}

fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Denied => "denied",
    }
}

impl OrgTx {
    /// Appends an entry to this organization's chain, inside this transaction.
    pub async fn audit(
        &mut self,
        key: &SigningKey,
        now_us: i64,
        record: AuditRecord,
    ) -> Result<ChainedEntry, StoreError> {
        let org = self.scope().org();
        let actor = self.scope().actor();
        let invalid = |what: &'static str| {
            move |e: infrapilot_core::values::ValueError| StoreError::corrupt(what, e)
        };
        let entry = AuditEntry {
            time_us: now_us,
            org,
            actor: core_actor(actor),
            action: AuditAction::parse(record.action).map_err(invalid("audit action"))?,
            resource: Resource::new(
                ResourceKind::parse(record.resource_kind)
                    .map_err(invalid("audit resource kind"))?,
                ResourceId::parse(&record.resource_id).map_err(invalid("audit resource id"))?,
            ),
            source_ip: record.source_ip,
            outcome: record.outcome,
            details: record.details,
        };
        let org_text = org.to_string();
        sqlx::query(
            "INSERT INTO audit_heads (org_id, seq, checkpoint) VALUES ($1, 0, '') \
             ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(&org_text)
        .execute(self.conn())
        .await?;
        let lock = match self.backend() {
            Backend::Postgres => "SELECT seq FROM audit_heads WHERE org_id = $1 FOR UPDATE",
            Backend::Sqlite => "SELECT seq FROM audit_heads WHERE org_id = $1",
        };
        let head_seq: i64 = col(
            &sqlx::query(lock)
                .bind(&org_text)
                .fetch_one(self.conn())
                .await?,
            "seq",
        )?;
        let prev = if head_seq == 0 {
            None
        } else {
            let row = sqlx::query("SELECT entry FROM audit_entries WHERE org_id = $1 AND seq = $2")
                .bind(&org_text)
                .bind(head_seq)
                .fetch_one(self.conn())
                .await?;
            Some(json::<ChainedEntry>(&row, "entry")?)
        };
        let chained = audit::append(prev.as_ref(), entry)
            .map_err(|e| StoreError::corrupt("audit chain", e))?;
        let seq = i64::try_from(chained.seq).map_err(|e| StoreError::corrupt("audit seq", e))?;
        sqlx::query(
            "INSERT INTO audit_entries (org_id, seq, entry, time, action, actor, resource_kind, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&org_text)
        .bind(seq)
        .bind(to_json(&chained)?)
        .bind(now_us)
        .bind(record.action)
        .bind(actor.audit_name())
        .bind(record.resource_kind)
        .bind(outcome_text(record.outcome))
        .execute(self.conn())
        .await?;
        let checkpoint = to_json(&Checkpoint::sign(&chained, now_us, key))?;
        sqlx::query("UPDATE audit_heads SET seq = $2, checkpoint = $3 WHERE org_id = $1")
            .bind(&org_text)
            .bind(seq)
            .bind(&checkpoint)
            .execute(self.conn())
            .await?;
        if chained.seq % CHECKPOINT_HISTORY_EVERY == 0 {
            sqlx::query(
                "INSERT INTO audit_checkpoints (org_id, seq, checkpoint) VALUES ($1, $2, $3)",
            )
            .bind(&org_text)
            .bind(seq)
            .bind(&checkpoint)
            .execute(self.conn())
            .await?;
        }
        Ok(chained)
    }

    /// Lists entries, newest first, before the `before` seq.
    pub async fn list_audit(
        &mut self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ChainedEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT entry FROM audit_entries WHERE org_id = $1 AND seq < $2 \
             AND ($3 = '' OR action = $3) AND ($4 = '' OR actor = $4) \
             AND ($5 = '' OR resource_kind = $5) AND ($6 = '' OR outcome = $6) \
             AND time >= $7 AND time < $8 ORDER BY seq DESC LIMIT $9",
        )
        .bind(self.scope().org().to_string())
        .bind(before.unwrap_or(i64::MAX))
        .bind(filter.action.clone().unwrap_or_default())
        .bind(filter.actor.clone().unwrap_or_default())
        .bind(filter.resource_kind.clone().unwrap_or_default())
        .bind(filter.outcome.clone().unwrap_or_default())
        .bind(filter.from.unwrap_or(i64::MIN))
        .bind(filter.to.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(|r| json(r, "entry")).collect()
    }

    /// The whole chain, oldest first, and every checkpoint (history plus the head's).
    pub async fn audit_chain(
        &mut self,
    ) -> Result<(Vec<ChainedEntry>, Vec<Checkpoint>), StoreError> {
        let org = self.scope().org().to_string();
        let rows = sqlx::query("SELECT entry FROM audit_entries WHERE org_id = $1 ORDER BY seq")
            .bind(&org)
            .fetch_all(self.conn())
            .await?;
        let entries = rows
            .iter()
            .map(|r| json(r, "entry"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut checkpoints: Vec<Checkpoint> =
            sqlx::query("SELECT checkpoint FROM audit_checkpoints WHERE org_id = $1 ORDER BY seq")
                .bind(&org)
                .fetch_all(self.conn())
                .await?
                .iter()
                .map(|r| json(r, "checkpoint"))
                .collect::<Result<_, _>>()?;
        let head = sqlx::query("SELECT checkpoint FROM audit_heads WHERE org_id = $1")
            .bind(&org)
            .fetch_optional(self.conn())
            .await?;
        if let Some(row) = head {
            let text: String = col(&row, "checkpoint")?;
            if !text.is_empty() {
                let cp: Checkpoint = serde_json::from_str(&text)
                    .map_err(|e| StoreError::corrupt("checkpoint", e))?;
                if checkpoints.last().is_none_or(|last| last.seq != cp.seq) {
                    checkpoints.push(cp);
                }
            }
        }
        Ok((entries, checkpoints))
    }
}
