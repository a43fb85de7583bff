//! Central logs: query with filters and cursor pagination, a live tail (Server-Sent Events),
//! streamed CSV and NDJSON export, the streams each agent ships, retention and usage.
//!
//! Every filter is validated into a typed value first (an unknown level, a malformed agent
//! id, a search text with control characters are refused naming the parameter); values reach
//! SQL only as bound parameters.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::Stream;
use infrapilot_core::ids::AgentId;
use infrapilot_core::logs::Level;
use infrapilot_core::rbac::{Action, Resource};
use infrapilot_core::values::ContainerName;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{MAX_PAGE, audit};
use crate::AppState;
use crate::auth::{ClientIp, Liveness, Scoped};
use crate::error::{ApiJson, AppError, Problem};
use crate::store::{LogCursor, LogFilter, LogLineRecord, OrgScope};
use crate::util::{now_micros, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(query_logs))
        .routes(routes!(tail_logs))
        .routes(routes!(export_logs))
        .routes(routes!(list_streams))
        .routes(routes!(get_settings, update_settings))
        .routes(routes!(get_usage))
}

/// The sources a line can come from.
const SOURCES: [&str; 5] = ["stdout", "stderr", "access", "error", "event"];
/// The most values one list filter may hold.
const MAX_LIST: usize = 50;
/// The longest search text.
const MAX_TEXT: usize = 200;
/// The most lines one export may hold.
const MAX_EXPORT: u64 = 1_000_000;

/// Which lines: every parameter narrows, lists are comma-separated.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogFilterQuery {
    /// Only lines written at or after this time (RFC 3339 or unix seconds).
    pub since: Option<String>,
    /// Only lines written before this time (RFC 3339 or unix seconds).
    pub until: Option<String>,
    /// Only these agents' lines (ids, comma-separated).
    pub agent_id: Option<String>,
    /// Only these containers' lines (names, comma-separated).
    pub container: Option<String>,
    /// Only these sources: `stdout`, `stderr`, `access`, `error`, `event`.
    pub source: Option<String>,
    /// Only these levels: `unknown`, `trace`, `debug`, `info`, `warn`, `error`, `fatal`.
    pub level: Option<String>,
    /// Only lines containing this text (1–200 characters; ASCII letters match in either
    /// case).
    pub q: Option<String>,
}

/// A page of lines.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogPageQuery {
    /// `newest` (the default) or `oldest` first.
    pub order: Option<String>,
    /// How many (1–200, default 100).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One stored log line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLineView {
    /// When it was written (RFC 3339, microseconds).
    pub time: String,
    /// The agent it came from.
    pub agent_id: String,
    /// The container's id, for container output.
    pub container_id: Option<String>,
    /// The container's name, for container output.
    pub container_name: Option<String>,
    /// The agent's stream (`container:<id>`, `nginx:access`, …).
    pub stream: String,
    /// Its sequence number in the stream.
    pub seq: i64,
    /// `stdout`, `stderr`, `access`, `error` or `event`.
    pub source: String,
    /// The level InfraPilot read from it.
    pub level: String,
    /// The line.
    pub line: String,
}

/// A page of lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogPage {
    /// The lines, in the order asked for.
    pub items: Vec<LogLineView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn view(line: LogLineRecord) -> LogLineView {
    LogLineView {
        time: rfc3339(line.ts),
        agent_id: line.agent_id.to_string(),
        container_id: line.container_id,
        container_name: line.container_name,
        stream: line.stream,
        seq: line.seq,
        source: line.source,
        level: line.level,
        line: line.line,
    }
}

/// Unix seconds or RFC 3339, as unix microseconds.
pub(crate) fn parse_instant(field: &str, raw: Option<&str>) -> Result<Option<i64>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    if let Ok(secs) = raw.parse::<i64>() {
        return secs
            .checked_mul(1_000_000)
            .map(Some)
            .ok_or_else(|| AppError::field(field, "is out of range"));
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)))
        .map_err(|_| {
            AppError::field(
                field,
                "must be unix seconds or an RFC 3339 time (2026-01-31T12:00:00Z)",
            )
        })
}

/// A comma-separated list, each item checked by `item`.
pub(crate) fn parse_list<T>(
    field: &str,
    raw: Option<&str>,
    item: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, AppError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let items: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.len() > MAX_LIST {
        return Err(AppError::field(
            field,
            format!("may hold at most {MAX_LIST} values"),
        ));
    }
    items
        .into_iter()
        .map(|s| item(s).map_err(|reason| AppError::field(field, reason)))
        .collect()
}

/// A Docker container name, read by the core's `ContainerName` (a leading `/` dropped).
pub(crate) fn container_name(s: &str) -> Result<String, String> {
    ContainerName::parse(s)
        .map(|name| name.as_str().to_owned())
        .map_err(|e| {
            format!(
                "{:?} is not a container name: it {}",
                s.chars().take(40).collect::<String>(),
                e.reason()
            )
        })
}

pub(crate) fn agent_id(s: &str) -> Result<AgentId, String> {
    s.parse().map_err(|_| {
        format!(
            "{:?} is not an agent id",
            s.chars().take(40).collect::<String>()
        )
    })
}

impl LogFilterQuery {
    /// The validated filter.
    pub fn filter(&self) -> Result<LogFilter, AppError> {
        let since = parse_instant("since", self.since.as_deref())?;
        let until = parse_instant("until", self.until.as_deref())?;
        if let (Some(s), Some(u)) = (since, until)
            && u <= s
        {
            return Err(AppError::field("until", "must be after since"));
        }
        let text = match self.q.as_deref() {
            None => None,
            Some(q) if q.is_empty() || q.chars().count() > MAX_TEXT => {
                return Err(AppError::field(
                    "q",
                    format!("must be 1 to {MAX_TEXT} characters"),
                ));
            }
            Some(q) if q.chars().any(char::is_control) => {
                return Err(AppError::field("q", "must not contain control characters"));
            }
            Some(q) => Some(q.to_owned()),
        };
        Ok(LogFilter {
            since,
            until,
            agents: parse_list("agent_id", self.agent_id.as_deref(), agent_id)?,
            containers: parse_list("container", self.container.as_deref(), container_name)?,
            sources: parse_list("source", self.source.as_deref(), |s| {
                if SOURCES.contains(&s) {
                    Ok(s.to_owned())
                } else {
                    Err(format!("{s:?} is not a source: use {}", SOURCES.join(", ")))
                }
            })?,
            levels: parse_list("level", self.level.as_deref(), |s| {
                let all = [
                    Level::Unknown,
                    Level::Trace,
                    Level::Debug,
                    Level::Info,
                    Level::Warn,
                    Level::Error,
                    Level::Fatal,
                ];
                all.iter()
                    .find(|l| l.as_str() == s)
                    .map(|l| l.as_str().to_owned())
                    .ok_or_else(|| {
                        format!(
                            "{:?} is not a level: use {}",
                            s.chars().take(20).collect::<String>(),
                            all.map(Level::as_str).join(", ")
                        )
                    })
            })?,
            text,
        })
    }
}

/// Whether a line matches a filter (for the live tail, which filters in memory).
fn matches(filter: &LogFilter, line: &LogLineRecord) -> bool {
    filter.since.is_none_or(|s| line.ts >= s)
        && filter.until.is_none_or(|u| line.ts < u)
        && (filter.agents.is_empty() || filter.agents.contains(&line.agent_id))
        && (filter.containers.is_empty()
            || line
                .container_name
                .as_ref()
                .is_some_and(|n| filter.containers.contains(n)))
        && (filter.sources.is_empty() || filter.sources.contains(&line.source))
        && (filter.levels.is_empty() || filter.levels.contains(&line.level))
        && filter.text.as_ref().is_none_or(|t| {
            line.line
                .to_ascii_lowercase()
                .contains(&t.to_ascii_lowercase())
        })
}

fn encode_cursor(c: &LogCursor) -> String {
    URL_SAFE_NO_PAD.encode(json!([c.ts, c.agent_id, c.stream, c.seq]).to_string())
}

fn decode_cursor(raw: &str) -> Result<LogCursor, AppError> {
    let bad = || AppError::field("cursor", "is not a cursor this API returned");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let (ts, agent_id, stream, seq): (i64, String, String, i64) =
        serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if agent_id.len() > 64 || stream.len() > 200 {
        return Err(bad());
    }
    Ok(LogCursor {
        ts,
        agent_id,
        stream,
        seq,
    })
}

fn newest_first(order: Option<&str>) -> Result<bool, AppError> {
    match order {
        None | Some("newest") => Ok(true),
        Some("oldest") => Ok(false),
        Some(_) => Err(AppError::field("order", "must be newest or oldest")),
    }
}

/// Queries stored lines: a time range, agents, containers, sources, levels and text, newest
/// (or oldest) first, a page at a time.
#[utoipa::path(get, path = "/api/v1/logs", tag = "logs", security(("bearer" = [])),
    params(LogFilterQuery, LogPageQuery), responses(
    (status = 200, body = LogPage),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn query_logs(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(filter): Query<LogFilterQuery>,
    Query(page): Query<LogPageQuery>,
) -> Result<axum::Json<LogPage>, AppError> {
    let scope = scoped.require(Action::View, Resource::Log)?;
    let filter = filter.filter()?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::field(
            "limit",
            format!("must be from 1 to {MAX_PAGE}"),
        ));
    }
    let newest = newest_first(page.order.as_deref())?;
    let after = page.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut tx = state.store().org_read(scope).await?;
    let mut rows = tx
        .query_logs(&filter, after.as_ref(), newest, limit + 1)
        .await?;
    tx.commit().await?;
    let next_cursor = if rows.len() > usize::try_from(limit).unwrap_or(0) {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        rows.last().map(|l| encode_cursor(&LogCursor::of(l)))
    } else {
        None
    };
    Ok(axum::Json(LogPage {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }))
}

/// Streams new lines as they arrive (Server-Sent Events: `line` events, each one line as
/// JSON; a `lagged` event if the client fell behind and lines were skipped). The same filters
/// as the query, applied to lines stored from now on (by any server replica). The stream ends
/// with a `revoked` event (a problem document) within seconds of its session or token being
/// revoked or its member losing access.
#[utoipa::path(get, path = "/api/v1/logs/tail", tag = "logs", security(("bearer" = [])),
    params(LogFilterQuery), responses(
    (status = 200, description = "An event stream of `line` events", content_type = "text/event-stream", body = String),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn tail_logs(
    State(state): State<AppState>,
    scoped: Scoped,
    liveness: Liveness,
    Query(filter): Query<LogFilterQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Log)?;
    let filter = filter.filter()?;
    let org = scope.org();
    let mut tail = state.log_tail().subscribe(org);
    let mut revoked = liveness.watch(Action::View, Resource::Log);
    let stream = async_stream(move |tx| async move {
        loop {
            let received = tokio::select! {
                () = tx.closed() => return,
                refusal = &mut revoked => {
                    let _ = tx.send(revoked_event(&refusal)).await;
                    return;
                }
                received = tail.batches.recv() => received,
            };
            let missed = match received {
                Ok(batch) if batch.org != org => continue,
                // Another replica's lines were skipped on this one.
                Ok(batch) if batch.skipped => 1,
                Ok(batch) => {
                    for line in batch.lines.iter().filter(|l| matches(&filter, l)) {
                        let data = serde_json::to_string(&view(line.clone())).unwrap_or_default();
                        if tx
                            .send(Event::default().event("line").data(data))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    continue;
                }
                Err(RecvError::Lagged(missed)) => missed,
                Err(RecvError::Closed) => return,
            };
            let data = json!({ "missed_batches": missed }).to_string();
            if tx
                .send(Event::default().event("lagged").data(data))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The last event of a stream whose request is no longer authorized (its session revoked,
/// its membership removed, ...; see [`crate::auth::Liveness`]): a `revoked` event whose data is
/// the problem a new request would get.
pub(crate) fn revoked_event(refusal: &AppError) -> Event {
    let data = serde_json::to_string(&refusal.problem()).unwrap_or_default();
    Event::default().event("revoked").data(data)
}

/// A stream fed by a task through a small channel: the task ends when the client goes away.
pub(crate) fn async_stream<F, Fut>(task: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(task(tx));
    futures_util::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok)
}

/// An export.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `ndjson` (the default: one JSON line per log line) or `csv`.
    pub format: Option<String>,
    /// `oldest` (the default) or `newest` first.
    pub order: Option<String>,
    /// The most lines (1–1,000,000, default 100,000).
    pub max_lines: Option<u64>,
}

/// Exports matching lines as NDJSON or CSV, streamed (audited). In CSV a line that starts
/// with `=`, `+`, `-` or `@` gets a leading `'` so a spreadsheet never runs it as a formula.
#[utoipa::path(get, path = "/api/v1/logs/export", tag = "logs", security(("bearer" = [])),
    params(LogFilterQuery, ExportQuery), responses(
    (status = 200, description = "The lines, streamed", content_type = "application/x-ndjson", body = String),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn export_logs(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    Query(filter_query): Query<LogFilterQuery>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, AppError> {
    let scope = scoped.require(Action::Export, Resource::Log)?.clone();
    let filter = filter_query.filter()?;
    let csv = match q.format.as_deref() {
        None | Some("ndjson") => false,
        Some("csv") => true,
        Some(_) => return Err(AppError::field("format", "must be ndjson or csv")),
    };
    let newest = match q.order.as_deref() {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(_) => return Err(AppError::field("order", "must be oldest or newest")),
    };
    let max = q.max_lines.unwrap_or(100_000);
    if !(1..=MAX_EXPORT).contains(&max) {
        return Err(AppError::field(
            "max_lines",
            format!("must be from 1 to {MAX_EXPORT}"),
        ));
    }
    let mut tx = state.store().org(&scope).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "logs.export",
        "logs",
        scope.org(),
        json!({
            "format": if csv { "csv" } else { "ndjson" },
            "max_lines": max,
            "since": filter_query.since, "until": filter_query.until,
            "agent_id": filter_query.agent_id, "container": filter_query.container,
            "source": filter_query.source, "level": filter_query.level, "q": filter_query.q,
        }),
    )
    .await?;
    tx.commit().await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(8);
    tokio::spawn(export_pages(state, scope, filter, newest, max, csv, tx));
    let (content_type, extension) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "ndjson")
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"infrapilot-logs.{extension}\""),
            ),
        ],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response())
}

/// Reads the export a page at a time (each page its own short transaction) into `tx`.
async fn export_pages(
    state: AppState,
    scope: OrgScope,
    filter: LogFilter,
    newest: bool,
    max: u64,
    csv: bool,
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) {
    const PAGE: i64 = 1000;
    let mut sent = 0_u64;
    let mut after: Option<LogCursor> = None;
    if csv {
        let header = b"time,agent_id,container_name,container_id,stream,seq,source,level,line\n";
        if tx.send(Ok(header.to_vec())).await.is_err() {
            return;
        }
    }
    while sent < max {
        let limit = PAGE.min(i64::try_from(max - sent).unwrap_or(PAGE));
        let rows = async {
            let mut db = state.store().org_read(&scope).await?;
            let rows = db
                .query_logs(&filter, after.as_ref(), newest, limit)
                .await?;
            db.commit().await?;
            Ok::<_, crate::store::StoreError>(rows)
        }
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "log export failed mid-way");
                let _ = tx
                    .send(Err(std::io::Error::other("the export failed")))
                    .await;
                return;
            }
        };
        let Some(last) = rows.last() else { return };
        after = Some(LogCursor::of(last));
        let count = rows.len();
        let mut chunk = Vec::with_capacity(count * 160);
        for line in rows {
            if csv {
                csv_row(&mut chunk, &view(line));
            } else {
                let _ = serde_json::to_writer(&mut chunk, &view(line));
                chunk.push(b'\n');
            }
        }
        sent += count as u64;
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
        if count < usize::try_from(limit).unwrap_or(0) {
            return;
        }
    }
}

fn csv_row(out: &mut Vec<u8>, line: &LogLineView) {
    let seq = line.seq.to_string();
    let fields = [
        line.time.as_str(),
        line.agent_id.as_str(),
        line.container_name.as_deref().unwrap_or(""),
        line.container_id.as_deref().unwrap_or(""),
        line.stream.as_str(),
        seq.as_str(),
        line.source.as_str(),
        line.level.as_str(),
        line.line.as_str(),
    ];
    let mut row = String::with_capacity(160);
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            row.push(',');
        }
        infrapilot_core::logs::write_csv_cell(&mut row, field);
    }
    row.push('\n');
    out.extend_from_slice(row.as_bytes());
}

/// Which agent's streams.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamsQuery {
    /// Only this agent's.
    pub agent_id: Option<AgentId>,
}

/// A stream an agent ships.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogStreamView {
    /// The agent.
    pub agent_id: String,
    /// The stream's key on the agent.
    pub stream: String,
    /// `container`, `docker_events`, `nginx_access` or `nginx_error`.
    pub kind: String,
    /// The container's id.
    pub container_id: Option<String>,
    /// The container's name.
    pub container_name: Option<String>,
    /// The highest sequence number stored (and acknowledged to the agent).
    pub acked_seq: i64,
    /// Records the agent dropped because its buffer was full while the server was away.
    pub dropped: i64,
    /// When the last batch arrived (RFC 3339).
    pub updated_at: String,
}

/// The streams each agent ships, with what was stored and what the agent had to drop.
#[utoipa::path(get, path = "/api/v1/logs/streams", tag = "logs", security(("bearer" = [])),
    params(StreamsQuery), responses(
    (status = 200, body = Vec<LogStreamView>),
))]
pub async fn list_streams(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(q): Query<StreamsQuery>,
) -> Result<axum::Json<Vec<LogStreamView>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Log)?;
    let mut tx = state.store().org_read(scope).await?;
    let streams = tx.log_streams(q.agent_id).await?;
    tx.commit().await?;
    Ok(axum::Json(
        streams
            .into_iter()
            .map(|s| LogStreamView {
                agent_id: s.agent_id.to_string(),
                stream: s.stream,
                kind: s.kind,
                container_id: s.container_id,
                container_name: s.container_name,
                acked_seq: s.acked_seq,
                dropped: s.dropped,
                updated_at: rfc3339(s.updated_at),
            })
            .collect(),
    ))
}

/// The organization's log settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// How many days lines and events are kept (1–3650).
    pub retention_days: i64,
}

/// The log settings.
#[utoipa::path(get, path = "/api/v1/logs/settings", tag = "logs", security(("bearer" = [])), responses(
    (status = 200, body = LogSettings),
))]
pub async fn get_settings(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<axum::Json<LogSettings>, AppError> {
    let scope = scoped.require(Action::View, Resource::OrgSettings)?;
    let mut tx = state.store().org_read(scope).await?;
    let retention_days = tx.log_retention_days().await?;
    tx.commit().await?;
    Ok(axum::Json(LogSettings { retention_days }))
}

/// Changes the log settings (audited); the retention job deletes what fell outside within
/// the hour.
#[utoipa::path(put, path = "/api/v1/logs/settings", tag = "logs", security(("bearer" = [])),
    request_body = LogSettings, responses(
    (status = 200, body = LogSettings),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update_settings(
    State(state): State<AppState>,
    scoped: Scoped,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LogSettings>,
) -> Result<axum::Json<LogSettings>, AppError> {
    let scope = scoped.require(Action::Update, Resource::OrgSettings)?;
    let days = i32::try_from(body.retention_days)
        .ok()
        .filter(|d| (1..=3650).contains(d))
        .ok_or_else(|| AppError::field("retention_days", "must be from 1 to 3650"))?;
    let mut tx = state.store().org(scope).await?;
    let before = tx.log_retention_days().await?;
    tx.set_log_retention_days(days, now_micros()).await?;
    audit(
        &state,
        &mut tx,
        ip,
        "logs.settings.update",
        "logs",
        scope.org(),
        json!({ "retention_days": { "from": before, "to": days } }),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(LogSettings {
        retention_days: i64::from(days),
    }))
}

/// How many days of usage.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Days back from today, today included (1–366, default 30).
    pub days: Option<i64>,
}

/// Log usage for one UTC day.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    /// The day (`2026-12-02`).
    pub day: String,
    /// Bytes of lines stored that day.
    pub bytes: i64,
    /// Lines stored that day.
    pub lines: i64,
}

/// Log usage over a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Days with usage, oldest first.
    pub days: Vec<UsageDay>,
    /// Bytes over the period.
    pub total_bytes: i64,
    /// Lines over the period.
    pub total_lines: i64,
}

/// Bytes and lines stored per day (what billing counts).
#[utoipa::path(get, path = "/api/v1/logs/usage", tag = "logs", security(("bearer" = [])),
    params(UsageQuery), responses(
    (status = 200, body = Usage),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_usage(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(q): Query<UsageQuery>,
) -> Result<axum::Json<Usage>, AppError> {
    let scope = scoped.require(Action::View, Resource::Billing)?;
    let days = q.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(AppError::field("days", "must be from 1 to 366"));
    }
    let today = now_micros().div_euclid(86_400_000_000);
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx.log_usage(today - days + 1, today).await?;
    tx.commit().await?;
    let mut seen = HashSet::new();
    let days: Vec<UsageDay> = rows
        .into_iter()
        .filter(|r| seen.insert(r.day))
        .map(|r| UsageDay {
            day: rfc3339(r.day * 86_400_000_000)
                .get(..10)
                .unwrap_or_default()
                .to_owned(),
            bytes: r.bytes,
            lines: r.lines,
        })
        .collect();
    Ok(axum::Json(Usage {
        total_bytes: days.iter().map(|d| d.bytes).sum(),
        total_lines: days.iter().map(|d| d.lines).sum(),
        days,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLineRecord {
        LogLineRecord {
            agent_id: AgentId::from_uuid(uuid::Uuid::nil()),
            stream: "container:x".into(),
            seq: 1,
            ts: 10,
            container_id: Some("x".into()),
            container_name: Some("web".into()),
            source: "stdout".into(),
            level: "error".into(),
            line: text.into(),
            http_status: None,
            upstream_ms: None,
        }
    }

    #[test]
    fn filters_are_validated_naming_the_parameter() {
        let check = |q: LogFilterQuery, field: &str| {
            let Err(AppError::Invalid(errors)) = q.filter() else {
                panic!("{field} accepted")
            };
            assert_eq!(errors[0].field, field);
        };
        check(
            LogFilterQuery {
                level: Some("loud".into()),
                ..Default::default()
            },
            "level",
        );
        check(
            LogFilterQuery {
                source: Some("stdin".into()),
                ..Default::default()
            },
            "source",
        );
        check(
            LogFilterQuery {
                container: Some("a;b".into()),
                ..Default::default()
            },
            "container",
        );
        check(
            LogFilterQuery {
                agent_id: Some("nope".into()),
                ..Default::default()
            },
            "agent_id",
        );
        check(
            LogFilterQuery {
                q: Some("a\nb".into()),
                ..Default::default()
            },
            "q",
        );
        check(
            LogFilterQuery {
                since: Some("yesterday".into()),
                ..Default::default()
            },
            "since",
        );
        check(
            LogFilterQuery {
                since: Some("20".into()),
                until: Some("10".into()),
                ..Default::default()
            },
            "until",
        );
        let ok = LogFilterQuery {
            level: Some("warn,error".into()),
            container: Some("web,db-1".into()),
            q: Some("100%".into()),
            ..Default::default()
        };
        let filter = ok.filter().unwrap();
        assert_eq!(filter.levels, ["warn", "error"]);
        assert_eq!(filter.containers, ["web", "db-1"]);
    }

    #[test]
    fn the_tail_filters_like_the_query() {
        let filter = LogFilterQuery {
            level: Some("error".into()),
            q: Some("BOOM".into()),
            ..Default::default()
        }
        .filter()
        .unwrap();
        assert!(matches(&filter, &line("it went boom")));
        assert!(!matches(&filter, &line("all good")));
    }

    #[test]
    fn cursors_round_trip_and_csv_is_quoted_and_defused() {
        let c = LogCursor::of(&line("x"));
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        assert!(decode_cursor("bm9wZQ").is_err());
        let mut out = Vec::new();
        csv_row(&mut out, &view(line("=HYPERLINK(\"x\")")));
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with(",\"'=HYPERLINK(\"\"x\"\")\"\n"), "{text}");
    }
}
