//! Policies and the violations they recorded, per organization.

use infrapilot_core::ids::{AgentId, PolicyId, ViolationId};
use infrapilot_core::policy::Policy;
use sqlx::any::AnyRow;

use super::org::{OrgTx, cursor_or_start};
use super::{StoreError, col, conflict_as, json, parsed, to_json};

/// A policy as stored: the engine's document plus bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRecord {
    /// The policy (its id, name and all its settings).
    pub policy: Policy,
    /// The template it was created from, if any.
    pub template: Option<String>,
    /// Who created it (audit name).
    pub created_by: Option<String>,
    /// Creation time, unix microseconds.
    pub created_at: i64,
    /// Last change, unix microseconds.
    pub updated_at: i64,
}

/// A recorded violation.
#[derive(Debug, Clone, PartialEq)]
pub struct ViolationRecord {
    /// Its id.
    pub id: ViolationId,
    /// The policy that fired.
    pub policy_id: PolicyId,
    /// The policy's name at the time.
    pub policy_name: String,
    /// `block`, `warn` or `audit`.
    pub action: String,
    /// The operation (`start`, `exec`, …).
    pub operation: String,
    /// The agent the operation was for.
    pub agent_id: Option<AgentId>,
    /// `container`, `stack`, `proxy_host`, …
    pub resource_kind: String,
    /// The resource's name or id.
    pub resource: String,
    /// The policy's message, rendered.
    pub message: String,
    /// The evidence (attribute paths and values), JSON.
    pub evidence: serde_json::Value,
    /// Who attempted the operation (audit name).
    pub actor: String,
    /// When, unix microseconds.
    pub created_at: i64,
    /// When it was resolved, unix microseconds.
    pub resolved_at: Option<i64>,
    /// Who resolved it (audit name).
    pub resolved_by: Option<String>,
    /// The resolver's note.
    pub resolution_note: Option<String>,
}

/// Which violations to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViolationFilter {
    /// Only this policy's.
    pub policy: Option<PolicyId>,
    /// Only this action's (`block`, `warn`, `audit`).
    pub action: Option<String>,
    /// Only this agent's.
    pub agent: Option<AgentId>,
    /// Only resolved (`true`) or open (`false`) ones.
    pub resolved: Option<bool>,
    /// Only at or after this time, unix microseconds.
    pub since: Option<i64>,
}

/// Counts of violations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViolationCounts {
    /// Per action: (action, total, open).
    pub by_action: Vec<(String, i64, i64)>,
    /// Per policy: (policy id, policy name, total, open), most first.
    pub by_policy: Vec<(String, String, i64, i64)>,
}

const POLICY_COLUMNS: &str = "document, template, created_by, created_at, updated_at";

fn policy_from_row(row: &AnyRow) -> Result<PolicyRecord, StoreError> {
    Ok(PolicyRecord {
        policy: json(row, "document")?,
        template: col(row, "template")?,
        created_by: col(row, "created_by")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

const VIOLATION_COLUMNS: &str = "id, policy_id, policy_name, action, operation, agent_id, \
    resource_kind, resource, message, evidence, actor, created_at, resolved_at, resolved_by, \
    resolution_note";

fn violation_from_row(row: &AnyRow) -> Result<ViolationRecord, StoreError> {
    let agent: Option<String> = col(row, "agent_id")?;
    Ok(ViolationRecord {
        id: parsed(row, "id")?,
        policy_id: parsed(row, "policy_id")?,
        policy_name: col(row, "policy_name")?,
        action: col(row, "action")?,
        operation: col(row, "operation")?,
        agent_id: agent
            .map(|a| a.parse())
            .transpose()
            .map_err(|_| StoreError::corrupt("policy_violations.agent_id", "not an id"))?,
        resource_kind: col(row, "resource_kind")?,
        resource: col(row, "resource")?,
        message: col(row, "message")?,
        evidence: json(row, "evidence")?,
        actor: col(row, "actor")?,
        created_at: col(row, "created_at")?,
        resolved_at: col(row, "resolved_at")?,
        resolved_by: col(row, "resolved_by")?,
        resolution_note: col(row, "resolution_note")?,
    })
}

impl OrgTx {
    /// Stores a new policy; a name already used in the organization conflicts.
    pub async fn insert_policy(&mut self, record: &PolicyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO policies (id, org_id, name, document, template, created_by, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(record.policy.id.to_string())
        .bind(self.org().to_string())
        .bind(&record.policy.name)
        .bind(to_json(&record.policy)?)
        .bind(record.template.as_deref())
        .bind(record.created_by.as_deref())
        .bind(record.created_at)
        .bind(record.updated_at)
        .execute(self.conn())
        .await
        .map_err(conflict_as("a policy with this name"))?;
        Ok(())
    }

    /// One policy.
    pub async fn policy(&mut self, id: PolicyId) -> Result<PolicyRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM policies WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org().to_string())
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound { what: "policy" })?;
        policy_from_row(&row)
    }

    /// Policies, oldest first, after a cursor.
    pub async fn list_policies(
        &mut self,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<PolicyRecord>, StoreError> {
        let (t, id) = cursor_or_start(after);
        let rows = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM policies WHERE org_id = $1 AND (created_at, id) > ($2, $3) \
             ORDER BY created_at, id LIMIT $4"
        ))
        .bind(self.org().to_string())
        .bind(t)
        .bind(id)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(policy_from_row).collect()
    }

    /// Every policy of the organization (for evaluation).
    pub async fn all_policies(&mut self) -> Result<Vec<Policy>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {POLICY_COLUMNS} FROM policies WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(self.org().to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|row| policy_from_row(row).map(|r| r.policy))
            .collect()
    }

    /// Writes back a changed policy.
    pub async fn update_policy(&mut self, record: &PolicyRecord) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE policies SET name = $3, document = $4, updated_at = $5 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(record.policy.id.to_string())
        .bind(&record.policy.name)
        .bind(to_json(&record.policy)?)
        .bind(record.updated_at)
        .execute(self.conn())
        .await
        .map_err(conflict_as("a policy with this name"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "policy" });
        }
        Ok(())
    }

    /// Deletes a policy (its violations stay, with the name they were recorded under).
    pub async fn delete_policy(&mut self, id: PolicyId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM policies WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "policy" });
        }
        Ok(())
    }

    /// Records a violation.
    pub async fn insert_violation(&mut self, v: &ViolationRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO policy_violations (org_id, {VIOLATION_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        ))
        .bind(self.org().to_string())
        .bind(v.id.to_string())
        .bind(v.policy_id.to_string())
        .bind(&v.policy_name)
        .bind(&v.action)
        .bind(&v.operation)
        .bind(v.agent_id.map(|a| a.to_string()))
        .bind(&v.resource_kind)
        .bind(&v.resource)
        .bind(&v.message)
        .bind(to_json(&v.evidence)?)
        .bind(&v.actor)
        .bind(v.created_at)
        .bind(v.resolved_at)
        .bind(v.resolved_by.as_deref())
        .bind(v.resolution_note.as_deref())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// One violation.
    pub async fn violation(&mut self, id: ViolationId) -> Result<ViolationRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {VIOLATION_COLUMNS} FROM policy_violations WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org().to_string())
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound { what: "violation" })?;
        violation_from_row(&row)
    }

    /// Violations matching `filter`, newest first, before a cursor.
    pub async fn list_violations(
        &mut self,
        filter: &ViolationFilter,
        before: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<ViolationRecord>, StoreError> {
        let (t, id) = before.unwrap_or((i64::MAX, String::new()));
        // Every filter is a bound parameter; an absent one compares NULL and passes.
        let rows = sqlx::query(&format!(
            "SELECT {VIOLATION_COLUMNS} FROM policy_violations WHERE org_id = $1 \
             AND (created_at < $2 OR (created_at = $2 AND ($3 = '' OR id < $3))) \
             AND ($4 = '' OR policy_id = $4) AND ($5 = '' OR action = $5) \
             AND ($6 = '' OR agent_id = $6) \
             AND ($7 < 0 OR ($7 = 1 AND resolved_at IS NOT NULL) OR ($7 = 0 AND resolved_at IS NULL)) \
             AND created_at >= $8 \
             ORDER BY created_at DESC, id DESC LIMIT $9"
        ))
        .bind(self.org().to_string())
        .bind(t)
        .bind(id)
        .bind(filter.policy.map(|p| p.to_string()).unwrap_or_default())
        .bind(filter.action.clone().unwrap_or_default())
        .bind(filter.agent.map(|a| a.to_string()).unwrap_or_default())
        .bind(filter.resolved.map_or(-1_i64, i64::from))
        .bind(filter.since.unwrap_or(i64::MIN))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(violation_from_row).collect()
    }

    /// Marks a violation resolved; resolving twice conflicts.
    pub async fn resolve_violation(
        &mut self,
        id: ViolationId,
        by: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<ViolationRecord, StoreError> {
        let existing = self.violation(id).await?;
        if existing.resolved_at.is_some() {
            return Err(StoreError::Conflict {
                what: "a resolution of this violation",
            });
        }
        sqlx::query(
            "UPDATE policy_violations SET resolved_at = $3, resolved_by = $4, resolution_note = $5 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(id.to_string())
        .bind(now)
        .bind(by)
        .bind(note)
        .execute(self.conn())
        .await?;
        self.violation(id).await
    }

    /// Counts of violations since `since` (unix microseconds), by action and by policy.
    pub async fn violation_counts(&mut self, since: i64) -> Result<ViolationCounts, StoreError> {
        let by_action = sqlx::query(
            "SELECT action, COUNT(*) AS total, \
             SUM(CASE WHEN resolved_at IS NULL THEN 1 ELSE 0 END) AS open \
             FROM policy_violations WHERE org_id = $1 AND created_at >= $2 \
             GROUP BY action ORDER BY action",
        )
        .bind(self.org().to_string())
        .bind(since)
        .fetch_all(self.conn())
        .await?
        .iter()
        .map(|row| Ok((col(row, "action")?, col(row, "total")?, col(row, "open")?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
        let by_policy = sqlx::query(
            "SELECT policy_id, MAX(policy_name) AS policy_name, COUNT(*) AS total, \
             SUM(CASE WHEN resolved_at IS NULL THEN 1 ELSE 0 END) AS open \
             FROM policy_violations WHERE org_id = $1 AND created_at >= $2 \
             GROUP BY policy_id ORDER BY total DESC, policy_id",
        )
        .bind(self.org().to_string())
        .bind(since)
        .fetch_all(self.conn())
        .await?
        .iter()
        .map(|row| {
            Ok((
                col(row, "policy_id")?,
                col(row, "policy_name")?,
                col(row, "total")?,
                col(row, "open")?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(ViolationCounts {
            by_action,
            by_policy,
        })
    }
}
