//! The event inventory: Docker's container events shipped by agents and the events the
//! server records itself (agents online/offline, proxy applies, policy violations, alerts).

use infrapilot_core::events::{EventKind, Severity};
use infrapilot_core::ids::AgentId;
use sqlx::any::AnyRow;

use super::org::OrgTx;
use super::{StoreError, col, json, parsed, to_json};

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Its id.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// How much it matters.
    pub severity: Severity,
    /// The agent it concerns.
    pub agent_id: Option<AgentId>,
    /// The container it concerns.
    pub container_id: Option<String>,
    /// The container's name.
    pub container_name: Option<String>,
    /// One line for people.
    pub summary: String,
    /// Everything else known about it.
    pub details: serde_json::Value,
    /// What makes it unique when it arrives more than once (`<agent>/<stream>/<seq>` for an
    /// event shipped on an agent's stream); `None` for the server's own.
    pub origin: Option<String>,
    /// When it happened, unix microseconds.
    pub at: i64,
    /// When the server stored it, unix microseconds; orders the live feed.
    pub recorded_at: i64,
}

/// Which events to list. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these kinds.
    pub kinds: Vec<EventKind>,
    /// Only these agents.
    pub agents: Vec<AgentId>,
    /// Only this container (by name).
    pub container: Option<String>,
    /// Only at least this severity.
    pub min_severity: Option<Severity>,
    /// Happened at or after, unix microseconds.
    pub since: Option<i64>,
    /// Happened before, unix microseconds.
    pub until: Option<i64>,
}

const EVENT_COLUMNS: &str = "id, kind, severity, agent_id, container_id, container_name, \
    summary, details, origin, at, recorded_at";

fn event_from_row(row: &AnyRow) -> Result<EventRecord, StoreError> {
    let agent: Option<String> = col(row, "agent_id")?;
    let severity: String = col(row, "severity")?;
    Ok(EventRecord {
        id: col(row, "id")?,
        kind: parsed(row, "kind")?,
        severity: match severity.as_str() {
            "error" => Severity::Error,
            "warning" => Severity::Warning,
            _ => Severity::Info,
        },
        agent_id: agent
            .map(|a| a.parse())
            .transpose()
            .map_err(|_| StoreError::corrupt("events.agent_id", "not an id"))?,
        container_id: col(row, "container_id")?,
        container_name: col(row, "container_name")?,
        summary: col(row, "summary")?,
        details: json(row, "details")?,
        origin: col(row, "origin")?,
        at: col(row, "at")?,
        recorded_at: col(row, "recorded_at")?,
    })
}

fn severities_at_least(min: Severity) -> Vec<&'static str> {
    [Severity::Info, Severity::Warning, Severity::Error]
        .into_iter()
        .filter(|s| *s >= min)
        .map(Severity::as_str)
        .collect()
}

impl OrgTx {
    /// Stores an event; one whose `origin` is already stored is skipped. Answers whether it
    /// was new.
    pub async fn insert_event(&mut self, event: &EventRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO events (id, org_id, kind, severity, agent_id, container_id, \
             container_name, summary, details, origin, at, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (origin) DO NOTHING",
        )
        .bind(event.id.clone())
        .bind(self.org().to_string())
        .bind(event.kind.as_str())
        .bind(event.severity.as_str())
        .bind(event.agent_id.map(|a| a.to_string()))
        .bind(event.container_id.clone())
        .bind(event.container_name.clone())
        .bind(event.summary.clone())
        .bind(to_json(&event.details)?)
        .bind(event.origin.clone())
        .bind(event.at)
        .bind(event.recorded_at)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Events matching `filter` in the order they were recorded, after `(recorded_at, id)`;
    /// newest first when `newest_first`.
    pub async fn list_events(
        &mut self,
        filter: &EventFilter,
        after: Option<(i64, String)>,
        newest_first: bool,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let (where_sql, mut n) = event_where(filter);
        let (cmp, dir) = if newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE {where_sql}");
        if after.is_some() {
            sql.push_str(&format!(" AND (recorded_at, id) {cmp} (${n}, ${})", n + 1));
            n += 2;
        }
        sql.push_str(&format!(" ORDER BY recorded_at {dir}, id {dir} LIMIT ${n}"));
        let mut query = bind_event_filter(sqlx::query(&sql), self.org().to_string(), filter);
        if let Some((t, id)) = after {
            query = query.bind(t).bind(id);
        }
        let rows = query.bind(limit).fetch_all(self.conn()).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Events recorded after the position `after` (`(recorded_at, id)`), in that order, at
    /// most `limit`: the live feed and the alert engine page through the inventory with it.
    pub async fn events_recorded_after(
        &mut self,
        filter: &EventFilter,
        after: (i64, &str),
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let (where_sql, n) = event_where(filter);
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {where_sql} \
             AND (recorded_at, id) > (${n}, ${}) ORDER BY recorded_at, id LIMIT ${}",
            n + 1,
            n + 2
        );
        let rows = bind_event_filter(sqlx::query(&sql), self.org().to_string(), filter)
            .bind(after.0)
            .bind(after.1.to_owned())
            .bind(limit)
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Counts of events matching `filter` per kind and per period of `bucket_micros`
    /// (by when they happened): `(period start, kind, count)`, oldest period first.
    pub async fn count_events(
        &mut self,
        filter: &EventFilter,
        bucket_micros: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let (where_sql, n) = event_where(filter);
        // Integer division on both databases: `at - at % bucket` is the bucket's start.
        let sql = format!(
            "SELECT (at - (at % ${n})) AS period, kind, COUNT(*) AS n FROM events \
             WHERE {where_sql} GROUP BY period, kind ORDER BY period, kind"
        );
        let rows = bind_event_filter(sqlx::query(&sql), self.org().to_string(), filter)
            .bind(bucket_micros.max(1))
            .fetch_all(self.conn())
            .await?;
        rows.iter()
            .map(|row| Ok((col(row, "period")?, col(row, "kind")?, col(row, "n")?)))
            .collect()
    }

    /// Deletes events that happened before `before` (unix microseconds).
    pub async fn delete_events_before(&mut self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM events WHERE org_id = $1 AND at < $2")
            .bind(self.org().to_string())
            .bind(before)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected())
    }
}

/// The `WHERE` clause of a filter (starting with the organization as `$1`) and the next
/// placeholder number.
fn event_where(filter: &EventFilter) -> (String, usize) {
    let mut sql = String::from("org_id = $1");
    let mut n = 2;
    let mut list = |sql: &mut String, column: &str, count: usize| {
        if count > 0 {
            let marks: Vec<String> = (n..n + count).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
            n += count;
        }
    };
    list(&mut sql, "kind", filter.kinds.len());
    list(&mut sql, "agent_id", filter.agents.len());
    list(
        &mut sql,
        "container_name",
        usize::from(filter.container.is_some()),
    );
    list(
        &mut sql,
        "severity",
        filter
            .min_severity
            .map_or(0, |s| severities_at_least(s).len()),
    );
    if filter.since.is_some() {
        sql.push_str(&format!(" AND at >= ${n}"));
        n += 1;
    }
    if filter.until.is_some() {
        sql.push_str(&format!(" AND at < ${n}"));
        n += 1;
    }
    (sql, n)
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_event_filter<'q>(
    mut query: AnyQuery<'q>,
    org: String,
    filter: &EventFilter,
) -> AnyQuery<'q> {
    query = query.bind(org);
    for kind in &filter.kinds {
        query = query.bind(kind.as_str());
    }
    for agent in &filter.agents {
        query = query.bind(agent.to_string());
    }
    if let Some(container) = &filter.container {
        query = query.bind(container.clone());
    }
    if let Some(min) = filter.min_severity {
        for s in severities_at_least(min) {
            query = query.bind(s);
        }
    }
    if let Some(since) = filter.since {
        query = query.bind(since);
    }
    if let Some(until) = filter.until {
        query = query.bind(until);
    }
    query
}
