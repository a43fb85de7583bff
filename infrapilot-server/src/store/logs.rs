//! Central logs: agents' log streams, their lines, retention settings and usage.
//!
//! Lines are stored once per (agent, stream, seq): a batch sent again after a lost
//! acknowledgement inserts nothing new (`ON CONFLICT DO NOTHING`), and usage counts only the
//! lines that were new.

use infrapilot_core::ids::{AgentId, OrgId};
use sqlx::any::AnyRow;

use super::org::OrgTx;
use super::{StoreError, col, parsed};

/// The most rows one `INSERT` carries (PostgreSQL allows 65,535 bound parameters).
const ROWS_PER_INSERT: usize = 400;

/// How long lines are kept when an organization has not said.
pub const DEFAULT_RETENTION_DAYS: i64 = 7;

/// One stream's batch, as the agent sent it, with each line's level already told.
#[derive(Debug, Clone)]
pub struct LogBatchRecord {
    /// The stream's key on the agent.
    pub stream: String,
    /// What the stream carries (`container`, `docker_events`, …).
    pub kind: String,
    /// The container's id, for container streams.
    pub container_id: Option<String>,
    /// The container's name, for container streams.
    pub container_name: Option<String>,
    /// How many records the agent's buffer dropped for this stream, in all.
    pub dropped: i64,
    /// The stream's incarnation on the agent (empty from an agent that has none).
    pub epoch: String,
    /// The batch's highest seq (acknowledged even when none of its records is a line, as
    /// for a batch of events).
    pub last_seq: i64,
    /// The lines, in increasing `seq`.
    pub lines: Vec<LogLineRecord>,
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLineRecord {
    /// The agent it came from.
    pub agent_id: AgentId,
    /// The stream's key on the agent.
    pub stream: String,
    /// Its sequence number in the stream.
    pub seq: i64,
    /// When it was written, unix microseconds.
    pub ts: i64,
    /// The container's id, for container streams.
    pub container_id: Option<String>,
    /// The container's name, for container streams.
    pub container_name: Option<String>,
    /// `stdout`, `stderr`, `access`, `error`, `event`.
    pub source: String,
    /// The level the core told (`unknown` when it could not).
    pub level: String,
    /// The line (lossy UTF-8).
    pub line: String,
    /// An access log line's response status.
    pub http_status: Option<i32>,
    /// An access log line's upstream response time, milliseconds.
    pub upstream_ms: Option<i64>,
}

/// What an ingested batch changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Lines that were new.
    pub inserted: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The highest seq of the stream now stored.
    pub acked_seq: i64,
    /// The highest seq stored before this batch: its lines above it are new.
    pub previously_acked: i64,
    /// What to acknowledge to the agent: `acked_seq` in the agent's numbering.
    pub ack: i64,
}

/// Which lines a query wants. Every field narrows; empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// At or after, unix microseconds.
    pub since: Option<i64>,
    /// Before, unix microseconds.
    pub until: Option<i64>,
    /// Only these agents.
    pub agents: Vec<AgentId>,
    /// Only these containers (by name).
    pub containers: Vec<String>,
    /// Only these sources.
    pub sources: Vec<String>,
    /// Only these levels.
    pub levels: Vec<String>,
    /// Only lines containing this text (case-insensitive).
    pub text: Option<String>,
}

/// Where a page of lines starts: the last line of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCursor {
    /// Its time.
    pub ts: i64,
    /// Its agent.
    pub agent_id: String,
    /// Its stream.
    pub stream: String,
    /// Its seq.
    pub seq: i64,
}

impl LogCursor {
    /// The cursor just past `line`.
    pub fn of(line: &LogLineRecord) -> LogCursor {
        LogCursor {
            ts: line.ts,
            agent_id: line.agent_id.to_string(),
            stream: line.stream.clone(),
            seq: line.seq,
        }
    }
}

/// A stream as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStreamRecord {
    /// The agent.
    pub agent_id: AgentId,
    /// The stream's key.
    pub stream: String,
    /// What it carries.
    pub kind: String,
    /// The container's id.
    pub container_id: Option<String>,
    /// The container's name.
    pub container_name: Option<String>,
    /// The highest seq stored.
    pub acked_seq: i64,
    /// Records the agent dropped because its buffer was full.
    pub dropped: i64,
    /// When the last batch arrived, unix microseconds.
    pub updated_at: i64,
}

/// Usage for one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRecord {
    /// Days since the epoch.
    pub day: i64,
    /// Bytes stored that day.
    pub bytes: i64,
    /// Lines stored that day.
    pub lines: i64,
}

const LINE_COLUMNS: &str = "agent_id, stream, seq, ts, container_id, container_name, source, \
    level, line, http_status, upstream_ms";

fn line_from_row(row: &AnyRow) -> Result<LogLineRecord, StoreError> {
    Ok(LogLineRecord {
        agent_id: parsed(row, "agent_id")?,
        stream: col(row, "stream")?,
        seq: col(row, "seq")?,
        ts: col(row, "ts")?,
        container_id: col(row, "container_id")?,
        container_name: col(row, "container_name")?,
        source: col(row, "source")?,
        level: col(row, "level")?,
        line: col(row, "line")?,
        http_status: col(row, "http_status")?,
        upstream_ms: col(row, "upstream_ms")?,
    })
}

/// `$n, $n+1, …` for a list, advancing `n`.
fn placeholders(n: &mut usize, count: usize) -> String {
    let list: Vec<String> = (0..count)
        .map(|i| format!("${}", *n + i))
        .collect::<Vec<_>>();
    *n += count;
    list.join(", ")
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    // ASCII only: SQLite's LOWER() folds nothing else, and both databases must agree.
    for c in text.to_ascii_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The PostgreSQL channel on which every replica hears of the lines another one stored, for
/// its live tails: `<replica>:<org>:<agent>:<first seq>:<last seq>:<stream>`.
pub const LOG_LINES_CHANNEL: &str = "infrapilot_log_lines";

/// Lines one replica stored, as [`LOG_LINES_CHANNEL`] announces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLines {
    /// The replica that stored them.
    pub replica: String,
    /// Whose lines.
    pub org: OrgId,
    /// The agent that shipped them.
    pub agent: AgentId,
    /// The stored seq of the first line.
    pub first: i64,
    /// The stored seq of the last line.
    pub last: i64,
    /// The agent's stream.
    pub stream: String,
}

impl StoredLines {
    /// The notification's payload (the stream last: it is the only part that may hold `:`).
    pub fn payload(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}",
            self.replica, self.org, self.agent, self.first, self.last, self.stream
        )
    }

    /// Reads a payload back; `None` for anything else.
    pub fn parse(payload: &str) -> Option<Self> {
        let mut parts = payload.splitn(6, ':');
        Some(Self {
            replica: parts.next()?.to_owned(),
            org: parts.next()?.parse().ok()?,
            agent: parts.next()?.parse().ok()?,
            first: parts.next()?.parse().ok()?,
            last: parts.next()?.parse().ok()?,
            stream: parts.next()?.to_owned(),
        })
    }
}

impl OrgTx {
    /// Stores a batch of `agent`'s stream: the stream's row (created on first sight, its
    /// container and drop count updated), every line not stored yet, and the day's usage.
    /// The batch's seqs (the agent's) become stored seqs: after the stream's old records when
    /// the agent started it over (a new epoch). Answers what was new and what to acknowledge.
    pub async fn ingest_log_batch(
        &mut self,
        agent: AgentId,
        batch: &mut LogBatchRecord,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let org = self.org().to_string();
        let agent_text = agent.to_string();
        let mut outcome = IngestOutcome::default();
        let previous = sqlx::query(
            "SELECT acked_seq, epoch, seq_offset FROM log_streams \
             WHERE org_id = $1 AND agent_id = $2 AND stream = $3",
        )
        .bind(org.clone())
        .bind(agent_text.clone())
        .bind(batch.stream.clone())
        .fetch_optional(self.conn())
        .await?;
        let (previously_acked, offset) = match previous {
            Some(row) => {
                let acked: i64 = col(&row, "acked_seq")?;
                let epoch: String = col(&row, "epoch")?;
                let offset: i64 = col(&row, "seq_offset")?;
                if !batch.epoch.is_empty() && !epoch.is_empty() && epoch != batch.epoch {
                    // The agent started the stream over: its numbering begins after ours.
                    (acked, acked)
                } else {
                    (acked, offset)
                }
            }
            None => (0, 0),
        };
        outcome.previously_acked = previously_acked;
        for line in &mut batch.lines {
            line.seq += offset;
        }
        for chunk in batch.lines.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO log_lines (org_id, agent_id, stream, seq, ts, container_id, \
                 container_name, source, level, line, http_status, upstream_ms) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let marks: Vec<String> = (1..=12).map(|c| format!("${}", i * 12 + c)).collect();
                sql.push('(');
                sql.push_str(&marks.join(", "));
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT (agent_id, stream, seq) DO NOTHING RETURNING seq");
            let mut query = sqlx::query(&sql);
            for line in chunk {
                query = query
                    .bind(org.clone())
                    .bind(agent_text.clone())
                    .bind(batch.stream.clone())
                    .bind(line.seq)
                    .bind(line.ts)
                    .bind(line.container_id.clone())
                    .bind(line.container_name.clone())
                    .bind(line.source.clone())
                    .bind(line.level.clone())
                    .bind(line.line.clone())
                    .bind(line.http_status)
                    .bind(line.upstream_ms);
            }
            let rows = query.fetch_all(self.conn()).await?;
            let new: std::collections::HashSet<i64> = rows
                .iter()
                .map(|r| col::<i64>(r, "seq"))
                .collect::<Result<_, _>>()?;
            for line in chunk.iter().filter(|l| new.contains(&l.seq)) {
                outcome.inserted += 1;
                outcome.bytes += line.line.len() as u64;
            }
        }
        let last = batch.last_seq + offset;
        sqlx::query(
            "INSERT INTO log_streams (org_id, agent_id, stream, kind, container_id, \
             container_name, acked_seq, dropped, updated_at, epoch, seq_offset) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (agent_id, stream) DO UPDATE SET \
             kind = excluded.kind, epoch = excluded.epoch, seq_offset = excluded.seq_offset, \
             container_id = COALESCE(excluded.container_id, log_streams.container_id), \
             container_name = COALESCE(excluded.container_name, log_streams.container_name), \
             acked_seq = CASE WHEN excluded.acked_seq > log_streams.acked_seq \
                 THEN excluded.acked_seq ELSE log_streams.acked_seq END, \
             dropped = CASE WHEN excluded.dropped > log_streams.dropped \
                 THEN excluded.dropped ELSE log_streams.dropped END, \
             updated_at = excluded.updated_at",
        )
        .bind(org.clone())
        .bind(agent_text.clone())
        .bind(batch.stream.clone())
        .bind(batch.kind.clone())
        .bind(batch.container_id.clone())
        .bind(batch.container_name.clone())
        .bind(last)
        .bind(batch.dropped)
        .bind(now)
        .bind(batch.epoch.clone())
        .bind(offset)
        .execute(self.conn())
        .await?;
        outcome.acked_seq = outcome.previously_acked.max(last);
        outcome.ack = outcome.acked_seq - offset;
        if outcome.inserted > 0 {
            self.add_log_usage(now, outcome.inserted, outcome.bytes)
                .await?;
        }
        Ok(outcome)
    }

    /// Announces `lines` to every replica when this transaction commits (PostgreSQL; on
    /// SQLite there is one replica, and nothing to do).
    pub async fn notify_log_lines(&mut self, lines: &StoredLines) -> Result<(), StoreError> {
        self.notify_on_commit(LOG_LINES_CHANNEL, &lines.payload())
            .await
    }

    /// `agent`'s lines of `stream` with stored seqs `first..=last`, in order.
    pub async fn log_lines_between(
        &mut self,
        agent: AgentId,
        stream: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<LogLineRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {LINE_COLUMNS} FROM log_lines WHERE org_id = $1 AND agent_id = $2 \
             AND stream = $3 AND seq >= $4 AND seq <= $5 ORDER BY seq"
        ))
        .bind(self.org().to_string())
        .bind(agent.to_string())
        .bind(stream.to_owned())
        .bind(first)
        .bind(last)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(line_from_row).collect()
    }

    async fn add_log_usage(&mut self, now: i64, lines: u64, bytes: u64) -> Result<(), StoreError> {
        let day = now.div_euclid(86_400_000_000);
        sqlx::query(
            "INSERT INTO log_usage (org_id, day, bytes, lines) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, day) DO UPDATE SET bytes = log_usage.bytes + excluded.bytes, \
             lines = log_usage.lines + excluded.lines",
        )
        .bind(self.org().to_string())
        .bind(day)
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .bind(i64::try_from(lines).unwrap_or(i64::MAX))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// A page of lines matching `filter`, newest first (`newest_first`) or oldest first,
    /// after `after`.
    pub async fn query_logs(
        &mut self,
        filter: &LogFilter,
        after: Option<&LogCursor>,
        newest_first: bool,
        limit: i64,
    ) -> Result<Vec<LogLineRecord>, StoreError> {
        let mut sql = format!("SELECT {LINE_COLUMNS} FROM log_lines WHERE org_id = $1");
        let mut n = 2;
        if filter.since.is_some() {
            sql.push_str(&format!(" AND ts >= ${n}"));
            n += 1;
        }
        if filter.until.is_some() {
            sql.push_str(&format!(" AND ts < ${n}"));
            n += 1;
        }
        for (column, list) in [
            ("agent_id", filter.agents.len()),
            ("container_name", filter.containers.len()),
            ("source", filter.sources.len()),
            ("level", filter.levels.len()),
        ] {
            if list > 0 {
                sql.push_str(&format!(
                    " AND {column} IN ({})",
                    placeholders(&mut n, list)
                ));
            }
        }
        if filter.text.is_some() {
            sql.push_str(&format!(" AND LOWER(line) LIKE ${n} ESCAPE '\\'"));
            n += 1;
        }
        let (cmp, dir) = if newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if after.is_some() {
            sql.push_str(&format!(
                " AND (ts, agent_id, stream, seq) {cmp} (${}, ${}, ${}, ${})",
                n,
                n + 1,
                n + 2,
                n + 3
            ));
            n += 4;
        }
        sql.push_str(&format!(
            " ORDER BY ts {dir}, agent_id {dir}, stream {dir}, seq {dir} LIMIT ${n}"
        ));
        let mut query = sqlx::query(&sql).bind(self.org().to_string());
        if let Some(since) = filter.since {
            query = query.bind(since);
        }
        if let Some(until) = filter.until {
            query = query.bind(until);
        }
        for agent in &filter.agents {
            query = query.bind(agent.to_string());
        }
        for list in [&filter.containers, &filter.sources, &filter.levels] {
            for value in list {
                query = query.bind(value.clone());
            }
        }
        if let Some(text) = &filter.text {
            query = query.bind(like_escape(text));
        }
        if let Some(c) = after {
            query = query
                .bind(c.ts)
                .bind(c.agent_id.clone())
                .bind(c.stream.clone())
                .bind(c.seq);
        }
        let rows = query.bind(limit).fetch_all(self.conn()).await?;
        rows.iter().map(line_from_row).collect()
    }

    /// The status and upstream time of every request `agent` logged on `stream` from `since`
    /// to `until` (unix microseconds), at most `limit`, newest first.
    pub async fn access_samples(
        &mut self,
        agent: AgentId,
        stream: &str,
        since: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<(i32, Option<i64>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT http_status, upstream_ms FROM log_lines WHERE org_id = $1 AND agent_id = $2 \
             AND stream = $3 AND ts >= $4 AND ts < $5 AND http_status IS NOT NULL \
             ORDER BY seq DESC LIMIT $6",
        )
        .bind(self.org().to_string())
        .bind(agent.to_string())
        .bind(stream.to_owned())
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|row| Ok((col(row, "http_status")?, col(row, "upstream_ms")?)))
            .collect()
    }

    /// How many requests `agent` logged on `stream` from `since` to `until` (unix
    /// microseconds), and how many of them were answered 5xx.
    pub async fn access_counts(
        &mut self,
        agent: AgentId,
        stream: &str,
        since: i64,
        until: i64,
    ) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, \
             COALESCE(SUM(CASE WHEN http_status >= 500 THEN 1 ELSE 0 END), 0) AS errors \
             FROM log_lines WHERE org_id = $1 AND agent_id = $2 AND stream = $3 \
             AND ts >= $4 AND ts < $5 AND http_status IS NOT NULL",
        )
        .bind(self.org().to_string())
        .bind(agent.to_string())
        .bind(stream.to_owned())
        .bind(since)
        .bind(until)
        .fetch_one(self.conn())
        .await?;
        Ok((col(&row, "total")?, col(&row, "errors")?))
    }

    /// The streams of the organization's agents (of one agent, when given).
    pub async fn log_streams(
        &mut self,
        agent: Option<AgentId>,
    ) -> Result<Vec<LogStreamRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent_id, stream, kind, container_id, container_name, acked_seq, dropped, \
             updated_at FROM log_streams WHERE org_id = $1 AND ($2 = '' OR agent_id = $2) \
             ORDER BY agent_id, stream",
        )
        .bind(self.org().to_string())
        .bind(agent.map(|a| a.to_string()).unwrap_or_default())
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LogStreamRecord {
                    agent_id: parsed(row, "agent_id")?,
                    stream: col(row, "stream")?,
                    kind: col(row, "kind")?,
                    container_id: col(row, "container_id")?,
                    container_name: col(row, "container_name")?,
                    acked_seq: col(row, "acked_seq")?,
                    dropped: col(row, "dropped")?,
                    updated_at: col(row, "updated_at")?,
                })
            })
            .collect()
    }

    /// The organization's retention in days (the default when it never set one).
    pub async fn log_retention_days(&mut self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT retention_days FROM log_settings WHERE org_id = $1")
            .bind(self.org().to_string())
            .fetch_optional(self.conn())
            .await?;
        match row {
            Some(row) => {
                let days: i32 = col(&row, "retention_days")?;
                Ok(i64::from(days))
            }
            None => Ok(DEFAULT_RETENTION_DAYS),
        }
    }

    /// Sets the organization's retention in days.
    pub async fn set_log_retention_days(&mut self, days: i32, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO log_settings (org_id, retention_days, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id) DO UPDATE SET retention_days = excluded.retention_days, \
             updated_at = excluded.updated_at",
        )
        .bind(self.org().to_string())
        .bind(days)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Deletes lines written before `before` (unix microseconds); answers how many.
    pub async fn delete_logs_before(&mut self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM log_lines WHERE org_id = $1 AND ts < $2")
            .bind(self.org().to_string())
            .bind(before)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected())
    }

    /// Usage per day from `from_day` to `to_day` (days since the epoch, inclusive).
    pub async fn log_usage(
        &mut self,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT day, bytes, lines FROM log_usage WHERE org_id = $1 AND day >= $2 \
             AND day <= $3 ORDER BY day",
        )
        .bind(self.org().to_string())
        .bind(from_day)
        .bind(to_day)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UsageRecord {
                    day: col(row, "day")?,
                    bytes: col(row, "bytes")?,
                    lines: col(row, "lines")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_escape("50%_a\\B"), "%50\\%\\_a\\\\b%");
    }
}
