//! Enrolled agents, per organization.

use infrapilot_core::ids::AgentId;
use infrapilot_core::values::Labels;
use sqlx::any::AnyRow;

use super::org::{OrgTx, cursor_or_start};
use super::{StoreError, col, conflict_as, flag, json, parsed, to_json};

/// An agent as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    /// Its id (also in its certificate).
    pub id: AgentId,
    /// A display name (the hostname unless renamed).
    pub name: String,
    /// Labels: the enrollment token's plus the agent's own, then as edited.
    pub labels: Labels,
    /// A disabled agent's connections are refused.
    pub disabled: bool,
    /// The host name the agent reported.
    pub hostname: String,
    /// The agent's version.
    pub version: String,
    /// SHA-256 of the agent's public key (SubjectPublicKeyInfo), hex.
    pub key_fingerprint: String,
    /// The enrollment token's public id it enrolled with.
    pub enrollment_token: String,
    /// When its current certificate expires, unix seconds.
    pub cert_not_after: i64,
    /// The last heartbeat (host metrics, container summaries), JSON.
    pub heartbeat: serde_json::Value,
    /// The server replica holding its stream, while connected.
    pub connected_replica: Option<String>,
    /// When its stream was opened, unix microseconds.
    pub connected_at: Option<i64>,
    /// When it was last heard from, unix microseconds.
    pub last_seen_at: Option<i64>,
    /// The desired-state revision it last applied.
    pub applied_revision: i64,
    /// Enrollment time, unix microseconds.
    pub created_at: i64,
}

const COLUMNS: &str = "id, name, labels, disabled, hostname, version, key_fingerprint, \
    enrollment_token, cert_not_after, heartbeat, connected_replica, connected_at, last_seen_at, \
    applied_revision, created_at";

fn from_row(row: &AnyRow) -> Result<AgentRecord, StoreError> {
    Ok(AgentRecord {
        id: parsed(row, "id")?,
        name: col(row, "name")?,
        labels: json(row, "labels")?,
        disabled: flag(row, "disabled")?,
        hostname: col(row, "hostname")?,
        version: col(row, "version")?,
        key_fingerprint: col(row, "key_fingerprint")?,
        enrollment_token: col(row, "enrollment_token")?,
        cert_not_after: col(row, "cert_not_after")?,
        heartbeat: json(row, "heartbeat")?,
        connected_replica: col(row, "connected_replica")?,
        connected_at: col(row, "connected_at")?,
        last_seen_at: col(row, "last_seen_at")?,
        applied_revision: col(row, "applied_revision")?,
        created_at: col(row, "created_at")?,
    })
}

impl OrgTx {
    /// Stores a newly enrolled agent; a reused key (a replayed CSR) conflicts.
    pub async fn insert_agent(&mut self, agent: &AgentRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agents (id, org_id, name, labels, disabled, hostname, version, \
             key_fingerprint, enrollment_token, cert_not_after, heartbeat, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(agent.id.to_string())
        .bind(self.org().to_string())
        .bind(&agent.name)
        .bind(to_json(&agent.labels)?)
        .bind(agent.disabled)
        .bind(&agent.hostname)
        .bind(&agent.version)
        .bind(&agent.key_fingerprint)
        .bind(&agent.enrollment_token)
        .bind(agent.cert_not_after)
        .bind(to_json(&agent.heartbeat)?)
        .bind(agent.created_at)
        .execute(self.conn())
        .await
        .map_err(conflict_as("an agent with this key"))?;
        Ok(())
    }

    /// One agent.
    pub async fn agent(&mut self, id: AgentId) -> Result<AgentRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM agents WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org().to_string())
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound { what: "agent" })?;
        from_row(&row)
    }

    /// Agents, oldest first, after a cursor.
    pub async fn list_agents(
        &mut self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        let (t, id) = cursor_or_start(after);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM agents WHERE org_id = $1 AND (created_at, id) > ($2, $3) \
             ORDER BY created_at, id LIMIT $4"
        ))
        .bind(self.org().to_string())
        .bind(t)
        .bind(id)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Writes back name, labels and the disabled flag.
    pub async fn update_agent(&mut self, agent: &AgentRecord) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE agents SET name = $3, labels = $4, disabled = $5 WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(agent.id.to_string())
        .bind(&agent.name)
        .bind(to_json(&agent.labels)?)
        .bind(agent.disabled)
        .execute(self.conn())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "agent" });
        }
        Ok(())
    }

    /// Deletes an agent.
    pub async fn delete_agent(&mut self, id: AgentId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM agents WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "agent" });
        }
        Ok(())
    }

    /// Records that the agent's stream opened on `replica` (or closed, with `None`), and the
    /// desired-state revision it reported (a negative one leaves the stored revision).
    pub async fn set_agent_connection(
        &mut self,
        id: AgentId,
        replica: Option<&str>,
        hostname: &str,
        version: &str,
        applied_revision: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE agents SET connected_replica = $3, connected_at = $4, last_seen_at = $5, \
             hostname = CASE WHEN $6 = '' THEN hostname ELSE $6 END, \
             version = CASE WHEN $7 = '' THEN version ELSE $7 END, \
             applied_revision = CASE WHEN $8 < 0 THEN applied_revision ELSE $8 END \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(id.to_string())
        .bind(replica)
        .bind(replica.map(|_| now))
        .bind(now)
        .bind(hostname)
        .bind(version)
        .bind(applied_revision)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Records a heartbeat; returns whether the agent is still enabled.
    pub async fn record_heartbeat(
        &mut self,
        id: AgentId,
        heartbeat: &serde_json::Value,
        now: i64,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "UPDATE agents SET heartbeat = $3, last_seen_at = $4 WHERE org_id = $1 AND id = $2 \
             RETURNING disabled",
        )
        .bind(self.org().to_string())
        .bind(id.to_string())
        .bind(to_json(heartbeat)?)
        .bind(now)
        .fetch_optional(self.conn())
        .await?;
        match row {
            None => Ok(false),
            Some(row) => Ok(!flag(&row, "disabled")?),
        }
    }

    /// Records a renewed certificate's expiry.
    pub async fn set_agent_cert(&mut self, id: AgentId, not_after: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE agents SET cert_not_after = $3 WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(id.to_string())
            .bind(not_after)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
