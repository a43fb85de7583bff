//! Alerts: channels, rules with their evaluation state, the per-organization watermark, the
//! alert history and deliveries.

use infrapilot_core::alerts::{AlertRuleSpec, RuleState};
use infrapilot_core::ids::{AlertChannelId, AlertRuleId};
use sqlx::any::AnyRow;

use super::org::OrgTx;
use super::{Backend, StoreError, col, conflict_as, json, parsed, to_json};

/// A channel as stored: its configuration sealed (it holds secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    /// Its id.
    pub id: AlertChannelId,
    /// A name to recognise it by, unique in the organization.
    pub name: String,
    /// `smtp`, `slack` or `webhook`.
    pub kind: String,
    /// The configuration's JSON, sealed with the secret-sealing key.
    pub config_sealed: String,
    /// Creation time, unix microseconds.
    pub created_at: i64,
    /// Last change, unix microseconds.
    pub updated_at: i64,
}

/// A rule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRecord {
    /// The core's rule document (its id is the rule's).
    pub spec: AlertRuleSpec,
    /// The channels its alerts are sent to.
    pub channels: Vec<AlertChannelId>,
    /// What the evaluator remembers between runs.
    pub state: RuleState,
    /// Creation time, unix microseconds.
    pub created_at: i64,
    /// Last change, unix microseconds.
    pub updated_at: i64,
}

/// One alert: a rule fired for a subject, and maybe resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    /// Its id.
    pub id: String,
    /// The rule that fired.
    pub rule_id: AlertRuleId,
    /// The rule's name when it fired.
    pub rule_name: String,
    /// The subject as the core names it (JSON), to find the open alert again.
    pub subject_key: String,
    /// The subject for people.
    pub subject: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// What happened.
    pub summary: String,
    /// The measured value and whatever else is known.
    pub details: serde_json::Value,
    /// When it fired, unix microseconds.
    pub fired_at: i64,
    /// When it resolved, unix microseconds.
    pub resolved_at: Option<i64>,
    /// Why it resolved.
    pub resolution: Option<String>,
}

/// One delivery of an alert (its firing, its resolution, or a test) to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Its id.
    pub id: String,
    /// The alert.
    pub alert_id: String,
    /// The channel.
    pub channel_id: AlertChannelId,
    /// `firing` or `resolved`.
    pub event: String,
    /// `pending`, `sending`, `sent` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// When it is due (pending) or its claim ends (sending), unix microseconds.
    pub next_attempt_at: i64,
    /// The remote's words for the last failure.
    pub last_error: Option<String>,
    /// When it was sent, unix microseconds.
    pub sent_at: Option<i64>,
    /// When it was queued, unix microseconds.
    pub created_at: i64,
}

const CHANNEL_COLUMNS: &str = "id, name, kind, config_sealed, created_at, updated_at";
const RULE_COLUMNS: &str = "spec, channel_ids, state, created_at, updated_at";
const ALERT_COLUMNS: &str = "id, rule_id, rule_name, subject_key, subject, severity, summary, \
    details, fired_at, resolved_at, resolution";
const DELIVERY_COLUMNS: &str = "id, alert_id, channel_id, event, status, attempts, \
    next_attempt_at, last_error, sent_at, created_at";

fn channel_from_row(row: &AnyRow) -> Result<ChannelRecord, StoreError> {
    Ok(ChannelRecord {
        id: parsed(row, "id")?,
        name: col(row, "name")?,
        kind: col(row, "kind")?,
        config_sealed: col(row, "config_sealed")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn rule_from_row(row: &AnyRow) -> Result<RuleRecord, StoreError> {
    Ok(RuleRecord {
        spec: json(row, "spec")?,
        channels: json(row, "channel_ids")?,
        state: json(row, "state")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn alert_from_row(row: &AnyRow) -> Result<AlertRecord, StoreError> {
    Ok(AlertRecord {
        id: col(row, "id")?,
        rule_id: parsed(row, "rule_id")?,
        rule_name: col(row, "rule_name")?,
        subject_key: col(row, "subject_key")?,
        subject: col(row, "subject")?,
        severity: col(row, "severity")?,
        summary: col(row, "summary")?,
        details: json(row, "details")?,
        fired_at: col(row, "fired_at")?,
        resolved_at: col(row, "resolved_at")?,
        resolution: col(row, "resolution")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        id: col(row, "id")?,
        alert_id: col(row, "alert_id")?,
        channel_id: parsed(row, "channel_id")?,
        event: col(row, "event")?,
        status: col(row, "status")?,
        attempts: col(row, "attempts")?,
        next_attempt_at: col(row, "next_attempt_at")?,
        last_error: col(row, "last_error")?,
        sent_at: col(row, "sent_at")?,
        created_at: col(row, "created_at")?,
    })
}

impl OrgTx {
    /// Stores a new channel; a name already used conflicts.
    pub async fn insert_channel(&mut self, c: &ChannelRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO alert_channels (id, org_id, name, kind, config_sealed, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.id.to_string())
        .bind(self.org().to_string())
        .bind(c.name.clone())
        .bind(c.kind.clone())
        .bind(c.config_sealed.clone())
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(self.conn())
        .await
        .map_err(conflict_as("a channel with this name"))?;
        Ok(())
    }

    /// Writes back a changed channel.
    pub async fn update_channel(&mut self, c: &ChannelRecord) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE alert_channels SET name = $3, kind = $4, config_sealed = $5, updated_at = $6 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(c.id.to_string())
        .bind(c.name.clone())
        .bind(c.kind.clone())
        .bind(c.config_sealed.clone())
        .bind(c.updated_at)
        .execute(self.conn())
        .await
        .map_err(conflict_as("a channel with this name"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "channel" });
        }
        Ok(())
    }

    /// One channel.
    pub async fn channel(&mut self, id: AlertChannelId) -> Result<ChannelRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM alert_channels WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org().to_string())
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound { what: "channel" })?;
        channel_from_row(&row)
    }

    /// Every channel, by name.
    pub async fn list_channels(&mut self) -> Result<Vec<ChannelRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM alert_channels WHERE org_id = $1 ORDER BY name"
        ))
        .bind(self.org().to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(channel_from_row).collect()
    }

    /// Deletes a channel.
    pub async fn delete_channel(&mut self, id: AlertChannelId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM alert_channels WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "channel" });
        }
        Ok(())
    }

    /// Stores a new rule; a name already used conflicts.
    pub async fn insert_rule(&mut self, r: &RuleRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO alert_rules (id, org_id, name, spec, channel_ids, state, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.spec.id.to_string())
        .bind(self.org().to_string())
        .bind(r.spec.name.clone())
        .bind(to_json(&r.spec)?)
        .bind(to_json(&r.channels)?)
        .bind(to_json(&r.state)?)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(self.conn())
        .await
        .map_err(conflict_as("an alert rule with this name"))?;
        Ok(())
    }

    /// Writes back a rule: its document, channels and state.
    pub async fn update_rule(&mut self, r: &RuleRecord) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE alert_rules SET name = $3, spec = $4, channel_ids = $5, state = $6, \
             updated_at = $7 WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(r.spec.id.to_string())
        .bind(r.spec.name.clone())
        .bind(to_json(&r.spec)?)
        .bind(to_json(&r.channels)?)
        .bind(to_json(&r.state)?)
        .bind(r.updated_at)
        .execute(self.conn())
        .await
        .map_err(conflict_as("an alert rule with this name"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "alert rule" });
        }
        Ok(())
    }

    /// Writes back only what the evaluator remembers, so an evaluation never undoes a change
    /// of the rule itself.
    pub async fn update_rule_state(
        &mut self,
        id: AlertRuleId,
        state: &RuleState,
        updated_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_rules SET state = $3, updated_at = $4 WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(id.to_string())
        .bind(to_json(state)?)
        .bind(updated_at)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// One rule.
    pub async fn rule(&mut self, id: AlertRuleId) -> Result<RuleRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org().to_string())
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound { what: "alert rule" })?;
        rule_from_row(&row)
    }

    /// Every rule, by name.
    pub async fn list_rules(&mut self) -> Result<Vec<RuleRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE org_id = $1 ORDER BY name"
        ))
        .bind(self.org().to_string())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    /// Deletes a rule.
    pub async fn delete_rule(&mut self, id: AlertRuleId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM alert_rules WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "alert rule" });
        }
        Ok(())
    }

    /// Locks the organization's evaluation watermark (creating it at `now` the first time)
    /// and answers `(the last event read: (recorded_at, id), last evaluation)`, unix
    /// microseconds. On PostgreSQL the row stays locked until the transaction ends, so one
    /// replica evaluates at a time.
    pub async fn lock_alert_cursor(
        &mut self,
        now: i64,
    ) -> Result<((i64, String), i64), StoreError> {
        sqlx::query(
            "INSERT INTO alert_cursors (org_id, events_recorded_at, events_id, evaluated_at) \
             VALUES ($1, $2, '', $2) ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(self.org().to_string())
        .bind(now)
        .execute(self.conn())
        .await?;
        let lock = if self.backend() == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let row = sqlx::query(&format!(
            "SELECT events_recorded_at, events_id, evaluated_at FROM alert_cursors \
             WHERE org_id = $1{lock}"
        ))
        .bind(self.org().to_string())
        .fetch_one(self.conn())
        .await?;
        Ok((
            (col(&row, "events_recorded_at")?, col(&row, "events_id")?),
            col(&row, "evaluated_at")?,
        ))
    }

    /// Moves the watermark.
    pub async fn set_alert_cursor(
        &mut self,
        events: (i64, &str),
        evaluated_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_cursors SET events_recorded_at = $2, events_id = $3, evaluated_at = $4 \
             WHERE org_id = $1",
        )
        .bind(self.org().to_string())
        .bind(events.0)
        .bind(events.1.to_owned())
        .bind(evaluated_at)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Stores a new alert.
    pub async fn insert_alert(&mut self, a: &AlertRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO alerts (id, org_id, rule_id, rule_name, subject_key, subject, severity, \
             summary, details, fired_at, resolved_at, resolution) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(a.id.clone())
        .bind(self.org().to_string())
        .bind(a.rule_id.to_string())
        .bind(a.rule_name.clone())
        .bind(a.subject_key.clone())
        .bind(a.subject.clone())
        .bind(a.severity.clone())
        .bind(a.summary.clone())
        .bind(to_json(&a.details)?)
        .bind(a.fired_at)
        .bind(a.resolved_at)
        .bind(a.resolution.clone())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Resolves the open alerts of `rule` for `subject_key`; answers their ids.
    pub async fn resolve_alerts(
        &mut self,
        rule: AlertRuleId,
        subject_key: &str,
        at: i64,
        resolution: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "UPDATE alerts SET resolved_at = $4, resolution = $5 WHERE org_id = $1 \
             AND rule_id = $2 AND subject_key = $3 AND resolved_at IS NULL RETURNING id",
        )
        .bind(self.org().to_string())
        .bind(rule.to_string())
        .bind(subject_key.to_owned())
        .bind(at)
        .bind(resolution.to_owned())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(|r| col(r, "id")).collect()
    }

    /// One alert.
    pub async fn alert(&mut self, id: &str) -> Result<AlertRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org().to_string())
        .bind(id.to_owned())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound { what: "alert" })?;
        alert_from_row(&row)
    }

    /// Alerts newest first, after a `(fired_at, id)` cursor; only open (`Some(true)`) or
    /// resolved (`Some(false)`) ones, of one rule, when asked.
    pub async fn list_alerts(
        &mut self,
        open: Option<bool>,
        rule: Option<AlertRuleId>,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<AlertRecord>, StoreError> {
        let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE org_id = $1");
        match open {
            Some(true) => sql.push_str(" AND resolved_at IS NULL"),
            Some(false) => sql.push_str(" AND resolved_at IS NOT NULL"),
            None => {}
        }
        sql.push_str(" AND ($2 = '' OR rule_id = $2)");
        if after.is_some() {
            sql.push_str(" AND (fired_at, id) < ($3, $4)");
        }
        sql.push_str(&format!(
            " ORDER BY fired_at DESC, id DESC LIMIT ${}",
            if after.is_some() { 5 } else { 3 }
        ));
        let mut query = sqlx::query(&sql)
            .bind(self.org().to_string())
            .bind(rule.map(|r| r.to_string()).unwrap_or_default());
        if let Some((t, id)) = after {
            query = query.bind(t).bind(id);
        }
        let rows = query.bind(limit).fetch_all(self.conn()).await?;
        rows.iter().map(alert_from_row).collect()
    }

    /// Queues a delivery.
    pub async fn insert_delivery(&mut self, d: &DeliveryRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO alert_deliveries (id, org_id, alert_id, channel_id, event, status, \
             attempts, next_attempt_at, last_error, sent_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(d.id.clone())
        .bind(self.org().to_string())
        .bind(d.alert_id.clone())
        .bind(d.channel_id.to_string())
        .bind(d.event.clone())
        .bind(d.status.clone())
        .bind(d.attempts)
        .bind(d.next_attempt_at)
        .bind(d.last_error.clone())
        .bind(d.sent_at)
        .bind(d.created_at)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Claims up to `limit` deliveries that are due at `now` (pending, or a claim that ran
    /// out): marks them `sending` until `lease_until` and answers them. On PostgreSQL rows
    /// another replica is claiming are skipped, so each delivery has one sender at a time.
    pub async fn claim_deliveries(
        &mut self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let skip = if self.backend() == Backend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE org_id = $1 \
             AND status IN ('pending', 'sending') AND next_attempt_at <= $2 \
             ORDER BY next_attempt_at LIMIT $3{skip}"
        ))
        .bind(self.org().to_string())
        .bind(now)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        let mut claimed = Vec::new();
        for row in &rows {
            let mut d = delivery_from_row(row)?;
            sqlx::query(
                "UPDATE alert_deliveries SET status = 'sending', next_attempt_at = $3 \
                 WHERE org_id = $1 AND id = $2",
            )
            .bind(self.org().to_string())
            .bind(d.id.clone())
            .bind(lease_until)
            .execute(self.conn())
            .await?;
            d.status = "sending".to_owned();
            d.next_attempt_at = lease_until;
            claimed.push(d);
        }
        Ok(claimed)
    }

    /// Records a delivery attempt's outcome, if the claim that ended at `lease` is still
    /// this sender's (a claim that ran out may have been taken by another replica, whose
    /// outcome then stands); answers whether it was recorded.
    pub async fn finish_delivery(
        &mut self,
        d: &DeliveryRecord,
        lease: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE alert_deliveries SET status = $3, attempts = $4, next_attempt_at = $5, \
             last_error = $6, sent_at = $7 WHERE org_id = $1 AND id = $2 \
             AND status = 'sending' AND next_attempt_at = $8",
        )
        .bind(self.org().to_string())
        .bind(d.id.clone())
        .bind(d.status.clone())
        .bind(d.attempts)
        .bind(d.next_attempt_at)
        .bind(d.last_error.clone())
        .bind(d.sent_at)
        .bind(lease)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The deliveries of an alert, oldest first.
    pub async fn deliveries_of(&mut self, alert: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE org_id = $1 AND alert_id = $2 \
             ORDER BY created_at, id"
        ))
        .bind(self.org().to_string())
        .bind(alert.to_owned())
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }
}
