//! Commands relayed between replicas (PostgreSQL only; see `migrations/*/0004`).

use infrapilot_core::ids::AgentId;
use sqlx::any::AnyRow;

use super::org::OrgTx;
use super::{Backend, StoreError, col, parsed};

/// A relayed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRecord {
    /// Its id.
    pub id: String,
    /// The agent it is for.
    pub agent: AgentId,
    /// The replica that asked.
    pub origin_replica: String,
    /// The replica that holds the agent's stream.
    pub target_replica: String,
    /// The command, encoded (base64 of the protobuf `Command`).
    pub command: String,
    /// How long the asker waits, milliseconds.
    pub timeout_ms: i64,
    /// The answer, once there is one (JSON).
    pub reply: Option<String>,
}

fn from_row(row: &AnyRow) -> Result<RelayRecord, StoreError> {
    Ok(RelayRecord {
        id: col(row, "id")?,
        agent: parsed(row, "agent_id")?,
        origin_replica: col(row, "origin_replica")?,
        target_replica: col(row, "target_replica")?,
        command: col(row, "command")?,
        timeout_ms: col(row, "timeout_ms")?,
        reply: col(row, "reply")?,
    })
}

impl OrgTx {
    /// Stores a command for another replica and notifies it (the notification is delivered
    /// when this transaction commits).
    pub async fn insert_relay(&mut self, relay: &RelayRecord, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agent_commands (id, org_id, agent_id, origin_replica, target_replica, \
             command, timeout_ms, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&relay.id)
        .bind(self.org().to_string())
        .bind(relay.agent.to_string())
        .bind(&relay.origin_replica)
        .bind(&relay.target_replica)
        .bind(&relay.command)
        .bind(relay.timeout_ms)
        .bind(now)
        .execute(self.conn())
        .await?;
        self.notify_replica(&relay.target_replica, &relay.id).await
    }

    /// One relayed command.
    pub async fn relay(&mut self, id: &str) -> Result<Option<RelayRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, agent_id, origin_replica, target_replica, command, timeout_ms, reply \
             FROM agent_commands WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Stores the answer and notifies the asking replica.
    pub async fn answer_relay(
        &mut self,
        relay: &RelayRecord,
        reply: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE agent_commands SET reply = $3 WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(&relay.id)
            .bind(reply)
            .execute(self.conn())
            .await?;
        self.notify_replica(&relay.origin_replica, &relay.id).await
    }

    /// Deletes the single-reply commands relayed before `before` (their askers gave up long
    /// ago, or died before they could delete them); answers how many. Streams (`timeout_ms`
    /// 0) are deleted by their ends.
    pub async fn delete_relays_before(&mut self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM agent_commands WHERE org_id = $1 AND timeout_ms > 0 AND created_at < $2",
        )
        .bind(self.org().to_string())
        .bind(before)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes a relayed command once its answer was read (or its asker gave up).
    pub async fn delete_relay(&mut self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM agent_commands WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    async fn notify_replica(&mut self, replica: &str, id: &str) -> Result<(), StoreError> {
        let payload = format!("{}:{id}", self.org());
        self.notify_on_commit(&replica_channel(replica), &payload)
            .await
    }

    /// Sends `payload` on the PostgreSQL channel `channel` when this transaction commits
    /// (`NOTIFY`; nothing on SQLite, where there is one replica and nobody to tell).
    pub(super) async fn notify_on_commit(
        &mut self,
        channel: &str,
        payload: &str,
    ) -> Result<(), StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel.to_owned())
            .bind(payload.to_owned())
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

/// The LISTEN channel of a replica.
pub fn replica_channel(replica: &str) -> String {
    format!("infrapilot_replica_{replica}")
}
