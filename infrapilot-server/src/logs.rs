//! Central logs and events on the server: ingest of the agents' log batches, the live tail,
//! the server's own events, and the retention job.
//!
//! An agent ships each stream's records in batches ([`LogBatch`]); [`ingest`] stores a batch
//! in one transaction — container and nginx lines in `log_lines` with the level the core
//! tells, Docker's events in the event inventory — and answers the seq to acknowledge, which
//! the session sends back as `LogAck` only after the commit. A batch sent twice stores
//! nothing twice.

use std::sync::Arc;
use std::time::Duration;

use infrapilot_core::events::{DockerEvent, EventKind, Severity};
use infrapilot_core::ids::{AgentId, OrgId};
use infrapilot_core::logs::{Level, analyze_line, parse_access_line, parse_error_line};
use infrapilot_proto::v1::LogBatch;
use tokio::sync::broadcast;

use crate::AppState;
use crate::store::{EventRecord, LogBatchRecord, LogLineRecord, OrgScope, StoreError, StoredLines};
use crate::util::{new_id, now_micros};

/// The longest line stored, in bytes; longer lines are cut (and say so).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Lines ingested, for live tails: on this replica, or on another one (PostgreSQL).
#[derive(Debug, Clone)]
pub struct TailBatch {
    /// Whose lines.
    pub org: OrgId,
    /// The lines, in stream order.
    pub lines: Arc<Vec<LogLineRecord>>,
    /// Lines another replica stored were skipped here (this replica fell behind reading
    /// them back); `lines` is empty.
    pub skipped: bool,
}

/// How many tails each organization has open on this replica.
type Watching = Arc<std::sync::Mutex<std::collections::HashMap<OrgId, usize>>>;

/// The live-tail fan-out of one replica: every batch ingested here or announced by another
/// replica is offered to every tail; a tail that falls behind by more than the channel holds
/// is told how many batches it missed.
#[derive(Debug, Clone)]
pub struct LogTail {
    sender: broadcast::Sender<TailBatch>,
    /// How many tails each organization has open here.
    watching: Watching,
}

impl Default for LogTail {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(1024);
        Self {
            sender,
            watching: Arc::default(),
        }
    }
}

/// One open tail of an organization: the batches from now on (every organization's; the tail
/// keeps its own). Dropping it closes the tail.
#[derive(Debug)]
pub struct TailSubscription {
    /// The batches.
    pub batches: broadcast::Receiver<TailBatch>,
    org: OrgId,
    watching: Watching,
}

impl Drop for TailSubscription {
    fn drop(&mut self) {
        if let Ok(mut watching) = self.watching.lock()
            && let Some(count) = watching.get_mut(&self.org)
        {
            *count -= 1;
            if *count == 0 {
                watching.remove(&self.org);
            }
        }
    }
}

impl LogTail {
    /// A new tail of `org`: the batches ingested from now on.
    pub fn subscribe(&self, org: OrgId) -> TailSubscription {
        if let Ok(mut watching) = self.watching.lock() {
            *watching.entry(org).or_default() += 1;
        }
        TailSubscription {
            batches: self.sender.subscribe(),
            org,
            watching: self.watching.clone(),
        }
    }

    fn publish(&self, batch: TailBatch) {
        // No tail listening is the usual case, not an error.
        let _ = self.sender.send(batch);
    }

    /// Whether a tail of `org` is open on this replica.
    fn is_watched(&self, org: OrgId) -> bool {
        self.watching
            .lock()
            .is_ok_and(|watching| watching.contains_key(&org))
    }

    /// Tells `org`'s tails that lines another replica stored were skipped here.
    pub fn skipped(&self, payload: &str) {
        if let Some(stored) = StoredLines::parse(payload)
            && self.is_watched(stored.org)
        {
            self.publish(TailBatch {
                org: stored.org,
                lines: Arc::new(Vec::new()),
                skipped: true,
            });
        }
    }
}

/// Offers lines another replica stored (announced on [`crate::store::LOG_LINES_CHANNEL`] as
/// `payload`) to this replica's tails: read back from the database, when a tail is open to see
/// them. Called in the order the announcements arrive, so each stream's lines stay in order.
pub async fn offer_stored_lines(state: &AppState, payload: &str) {
    let Some(stored) = StoredLines::parse(payload) else {
        tracing::debug!(payload, "not an announcement of stored lines");
        return;
    };
    if stored.replica == state.hub().replica() || !state.log_tail().is_watched(stored.org) {
        return;
    }
    let scope = OrgScope::system(stored.org);
    let read = async {
        let mut tx = state.store().org_read(&scope).await?;
        let lines = tx
            .log_lines_between(stored.agent, &stored.stream, stored.first, stored.last)
            .await?;
        tx.commit().await?;
        Ok::<_, StoreError>(lines)
    };
    match read.await {
        Ok(lines) if !lines.is_empty() => state.log_tail().publish(TailBatch {
            org: stored.org,
            lines: Arc::new(lines),
            skipped: false,
        }),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "reading lines another replica stored failed"),
    }
}

/// Stores one batch of `agent`'s stream and answers the seq to acknowledge.
pub async fn ingest(
    state: &AppState,
    org: OrgId,
    agent: AgentId,
    batch: LogBatch,
) -> Result<u64, StoreError> {
    let now = now_micros();
    let is_events = batch.kind == "docker_events";
    let container_id = Some(batch.container_id.clone()).filter(|s| !s.is_empty());
    let container_name = Some(batch.container_name.clone()).filter(|s| !s.is_empty());
    let last_seq = batch.records.last().map_or(0, |r| r.seq);
    let mut lines = Vec::new();
    let mut events = Vec::new();
    for record in &batch.records {
        let seq = i64::try_from(record.seq).unwrap_or(i64::MAX);
        let ts = record.time_unix_nanos.div_euclid(1000);
        if is_events {
            let origin = if batch.epoch.is_empty() {
                format!("{agent}/{}/{seq}", batch.stream)
            } else {
                format!("{agent}/{}/{}/{seq}", batch.stream, batch.epoch)
            };
            match docker_event(agent, origin, &record.line, now) {
                Some(event) => events.push(event),
                None => {
                    tracing::debug!(%agent, seq, "skipping an event the inventory does not keep")
                }
            }
            continue;
        }
        let access = (batch.kind == "nginx_access")
            .then(|| parse_access_line(&record.line).ok())
            .flatten();
        lines.push(LogLineRecord {
            agent_id: agent,
            stream: batch.stream.clone(),
            seq,
            ts,
            container_id: container_id.clone(),
            container_name: container_name.clone(),
            source: record.source.clone(),
            level: line_level(&batch.kind, &record.line).as_str().to_owned(),
            line: line_text(&record.line),
            http_status: access.as_ref().map(|a| i32::from(a.status)),
            upstream_ms: access.as_ref().and_then(|a| {
                let times: Vec<u64> = a
                    .upstream_response_millis
                    .iter()
                    .flatten()
                    .copied()
                    .collect();
                (!times.is_empty())
                    .then(|| i64::try_from(times.iter().sum::<u64>()).unwrap_or(i64::MAX))
            }),
        });
    }
    let mut record = LogBatchRecord {
        stream: batch.stream.clone(),
        kind: batch.kind.clone(),
        container_id,
        container_name,
        dropped: i64::try_from(batch.dropped).unwrap_or(i64::MAX),
        epoch: batch.epoch.clone(),
        last_seq: i64::try_from(last_seq).unwrap_or(i64::MAX),
        lines,
    };
    let scope = OrgScope::system(org);
    let mut tx = state.store().org(&scope).await?;
    let outcome = tx.ingest_log_batch(agent, &mut record, now).await?;
    for event in &events {
        tx.insert_event(event).await?;
    }
    let new: Vec<LogLineRecord> = record
        .lines
        .into_iter()
        .filter(|l| l.seq > outcome.previously_acked)
        .collect();
    if let (Some(first), Some(last)) = (new.first(), new.last()) {
        // The other replicas' tails hear of them once they are committed.
        tx.notify_log_lines(&StoredLines {
            replica: state.hub().replica().to_owned(),
            org,
            agent,
            first: first.seq,
            last: last.seq,
            stream: record.stream.clone(),
        })
        .await?;
    }
    tx.commit().await?;
    if !new.is_empty() {
        state.log_tail().publish(TailBatch {
            org,
            lines: Arc::new(new),
            skipped: false,
        });
    }
    Ok(u64::try_from(outcome.ack).unwrap_or(0))
}

/// The level of a line of a stream of `kind`: nginx access lines by their status, nginx
/// error lines by nginx's own level, everything else as the core tells.
fn line_level(kind: &str, line: &[u8]) -> Level {
    match kind {
        "nginx_access" => match parse_access_line(line) {
            Ok(entry) if entry.status >= 500 => Level::Error,
            Ok(entry) if entry.status >= 400 => Level::Warn,
            Ok(_) => Level::Info,
            Err(_) => Level::Unknown,
        },
        "nginx_error" => parse_error_line(line).map_or(Level::Unknown, |e| e.level),
        _ => analyze_line(line).level,
    }
}

/// The line as stored: lossy UTF-8 without NUL (PostgreSQL text cannot hold it), cut at
/// [`MAX_LINE_BYTES`].
fn line_text(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line).replace('\0', "\u{FFFD}");
    if text.len() <= MAX_LINE_BYTES {
        return text;
    }
    let mut end = MAX_LINE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [cut at {MAX_LINE_BYTES} bytes]", &text[..end])
}

/// A Docker event shipped as `origin` (`<agent>/<stream>/[<epoch>/]<seq>`, what makes it
/// unique) as an inventory event; `None` when it is not one the inventory keeps, or not an
/// event at all.
fn docker_event(agent: AgentId, origin: String, line: &[u8], now: i64) -> Option<EventRecord> {
    let event: DockerEvent = serde_json::from_slice(line).ok()?;
    let kind = event.kind()?;
    Some(EventRecord {
        id: new_id().to_string(),
        kind,
        severity: event.severity(),
        agent_id: Some(agent),
        container_id: Some(event.container_id.clone()),
        container_name: Some(event.container_name.clone()).filter(|n| !n.is_empty()),
        summary: event.summary(),
        details: serde_json::json!({
            "action": event.action,
            "image": event.image,
            "exit_code": event.exit_code,
        }),
        origin: Some(origin),
        at: event.time_unix_nanos.div_euclid(1000),
        recorded_at: now,
    })
}

/// An event the server records itself.
#[derive(Debug, Clone)]
pub struct ServerEvent {
    /// What happened.
    pub kind: EventKind,
    /// How much it matters.
    pub severity: Severity,
    /// The agent it concerns.
    pub agent: Option<AgentId>,
    /// One line for people.
    pub summary: String,
    /// Everything else.
    pub details: serde_json::Value,
}

impl ServerEvent {
    fn into_record(self) -> EventRecord {
        let now = now_micros();
        EventRecord {
            id: new_id().to_string(),
            kind: self.kind,
            severity: self.severity,
            agent_id: self.agent,
            container_id: None,
            container_name: None,
            summary: self.summary,
            details: self.details,
            origin: None,
            at: now,
            recorded_at: now,
        }
    }
}

/// Records a server event inside an open transaction.
pub async fn record_event_in(
    tx: &mut crate::store::OrgTx,
    event: ServerEvent,
) -> Result<(), StoreError> {
    tx.insert_event(&event.into_record()).await.map(|_| ())
}

/// Records a server event in its own transaction; a failure is logged, not raised (an event
/// is never worth failing the operation it describes).
pub async fn record_event(state: &AppState, org: OrgId, event: ServerEvent) {
    let result = async {
        let mut tx = state.store().org(&OrgScope::system(org)).await?;
        record_event_in(&mut tx, event).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(%org, error = %e, "recording an event failed");
    }
}

/// How often the retention job runs.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Deletes every organization's lines and events older than its retention, once; answers
/// how many lines were deleted.
pub async fn apply_retention(state: &AppState, now: i64) -> Result<u64, StoreError> {
    let mut deleted = 0;
    let mut after = None;
    loop {
        let mut g = state.store().global_read().await?;
        let orgs = g.list_orgs(after, 200).await?;
        g.commit().await?;
        let Some(last) = orgs.last() else { break };
        after = Some((last.created_at, last.id.to_string()));
        for org in &orgs {
            let mut tx = state.store().org(&OrgScope::system(org.id)).await?;
            let days = tx.log_retention_days().await?;
            let before = now - days * 86_400_000_000;
            deleted += tx.delete_logs_before(before).await?;
            tx.delete_events_before(before).await?;
            // Relayed commands whose asking replica died before it cleaned up.
            tx.delete_relays_before(now - RELAY_KEPT).await?;
            tx.commit().await?;
        }
    }
    Ok(deleted)
}

/// How long a relayed command's row outlives any asker that could still read it, in
/// microseconds (an hour; a command waits at most minutes).
const RELAY_KEPT: i64 = 3_600_000_000;

/// Runs [`apply_retention`] every [`RETENTION_INTERVAL`] for as long as the server runs.
pub async fn run_retention(state: AppState) {
    let mut ticker = tokio::time::interval(RETENTION_INTERVAL);
    loop {
        ticker.tick().await;
        match apply_retention(&state, now_micros()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(lines = n, "retention: old log lines deleted"),
            Err(e) => tracing::warn!(error = %e, "retention failed; retrying at the next run"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_stream_kind() {
        assert_eq!(line_level("container", b"ERROR: boom"), Level::Error);
        assert_eq!(line_level("container", b"hello"), Level::Unknown);
        let access =
            br#"127.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 502 0 "-" "curl""#;
        assert_eq!(line_level("nginx_access", access), Level::Error);
    }

    #[test]
    fn stored_lines_have_no_nul_and_are_cut() {
        assert_eq!(line_text(b"a\0b"), "a\u{FFFD}b");
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let text = line_text(&long);
        assert!(
            text.ends_with("[cut at 65536 bytes]"),
            "{}",
            &text[text.len() - 30..]
        );
    }
}
