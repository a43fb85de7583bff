//! The event inventory: list with filters, counts per type and period, and a live feed over
//! Server-Sent Events that resumes from `Last-Event-ID`.
//!
//! The live feed reads the database (about once a second), not this replica's memory, so it
//! shows events stored by every replica. Each SSE event's id is the event's position in the
//! feed; a client that reconnects with it as `Last-Event-ID` gets everything recorded after
//! it, exactly once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use infrapilot_core::events::{EventKind, Severity};
use infrapilot_core::rbac::{Action, Resource};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::logs::{
    agent_id, async_stream, container_name, parse_instant, parse_list, revoked_event,
};
use super::{PageQuery, cursor};
use crate::AppState;
use crate::auth::{Liveness, Scoped};
use crate::error::{AppError, Problem};
use crate::store::{EventFilter, EventRecord};
use crate::util::{now_micros, rfc3339};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(count_events))
        .routes(routes!(stream_events))
}

/// How far back the live feed looks again on each poll, for events whose transaction
/// committed after a later one (unix microseconds).
const FEED_OVERLAP: i64 = 15_000_000;

/// Events read per page by the live feed.
const FEED_PAGE: i64 = 500;

/// The most events the live feed sends per poll (the rest follow at the next).
const FEED_MAX_PER_POLL: usize = 5000;

/// Which events: every parameter narrows, lists are comma-separated.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilterQuery {
    /// Only these types (`container.die`, `agent.offline`, …).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Only these agents (ids, comma-separated).
    pub agent_id: Option<String>,
    /// Only this container (by name).
    pub container: Option<String>,
    /// Only at least this severity: `info`, `warning`, `error`.
    pub severity: Option<String>,
    /// Only events that happened at or after this time (RFC 3339 or unix seconds).
    pub since: Option<String>,
    /// Only events that happened before this time (RFC 3339 or unix seconds).
    pub until: Option<String>,
}

impl EventFilterQuery {
    fn filter(&self) -> Result<EventFilter, AppError> {
        let since = parse_instant("since", self.since.as_deref())?;
        let until = parse_instant("until", self.until.as_deref())?;
        if let (Some(s), Some(u)) = (since, until)
            && u <= s
        {
            return Err(AppError::field("until", "must be after since"));
        }
        Ok(EventFilter {
            kinds: parse_list("type", self.kind.as_deref(), |s| {
                s.parse::<EventKind>().map_err(|e| e.to_string())
            })?,
            agents: parse_list("agent_id", self.agent_id.as_deref(), agent_id)?,
            container: self
                .container
                .as_deref()
                .map(container_name)
                .transpose()
                .map_err(|reason| AppError::field("container", reason))?,
            min_severity: match self.severity.as_deref() {
                None => None,
                Some("info") => Some(Severity::Info),
                Some("warning") => Some(Severity::Warning),
                Some("error") => Some(Severity::Error),
                Some(_) => {
                    return Err(AppError::field(
                        "severity",
                        "must be info, warning or error",
                    ));
                }
            },
            since,
            until,
        })
    }
}

/// One event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    /// Its id.
    pub id: String,
    /// What happened (`container.die`, `agent.online`, `proxy.apply`, …).
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
    /// `info`, `warning` or `error`.
    pub severity: String,
    /// The agent it concerns.
    pub agent_id: Option<String>,
    /// The container it concerns.
    pub container_id: Option<String>,
    /// The container's name.
    pub container_name: Option<String>,
    /// One line for people.
    pub summary: String,
    /// Everything else known about it (exit code, image, hosts, …).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// When it happened (RFC 3339).
    pub at: String,
    /// When the server recorded it (RFC 3339).
    pub recorded_at: String,
}

fn view(e: EventRecord) -> EventView {
    EventView {
        id: e.id,
        kind: e.kind.as_str().to_owned(),
        severity: e.severity.as_str().to_owned(),
        agent_id: e.agent_id.map(|a| a.to_string()),
        container_id: e.container_id,
        container_name: e.container_name,
        summary: e.summary,
        details: e.details,
        at: rfc3339(e.at),
        recorded_at: rfc3339(e.recorded_at),
    }
}

/// A page of events.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventPageQuery {
    /// `newest` (the default) or `oldest` first, by when they were recorded.
    pub order: Option<String>,
    /// How many (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events.
    pub items: Vec<EventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Lists events, newest first by default.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("bearer" = [])),
    params(EventFilterQuery, EventPageQuery), responses(
    (status = 200, body = EventPage),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_events(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(filter): Query<EventFilterQuery>,
    Query(page): Query<EventPageQuery>,
) -> Result<axum::Json<EventPage>, AppError> {
    let scope = scoped.require(Action::View, Resource::Event)?;
    let filter = filter.filter()?;
    let newest = match page.order.as_deref() {
        None | Some("newest") => true,
        Some("oldest") => false,
        Some(_) => return Err(AppError::field("order", "must be newest or oldest")),
    };
    let paging = PageQuery {
        limit: page.limit,
        cursor: page.cursor,
    };
    let limit = paging.fetch_limit()?;
    let mut tx = state.store().org_read(scope).await?;
    let mut rows = tx
        .list_events(&filter, paging.after()?, newest, limit)
        .await?;
    tx.commit().await?;
    let size = usize::try_from(limit - 1).unwrap_or(0);
    let next_cursor = if rows.len() > size {
        rows.truncate(size);
        rows.last().map(|e| cursor(e.recorded_at, &e.id))
    } else {
        None
    };
    Ok(axum::Json(EventPage {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }))
}

/// The period of counts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CountQuery {
    /// `hour` (the default) or `day`.
    pub period: Option<String>,
}

/// Counts of one type in one period.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodCount {
    /// The period's start (RFC 3339).
    pub period_start: String,
    /// The event type.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
    /// How many.
    pub count: i64,
}

/// Event counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventCounts {
    /// Per type over the whole range.
    pub by_type: HashMap<String, i64>,
    /// Per period and type, oldest period first.
    pub by_period: Vec<PeriodCount>,
}

/// Counts events per type and per hour or day, for the dashboard.
#[utoipa::path(get, path = "/api/v1/events/counts", tag = "events", security(("bearer" = [])),
    params(EventFilterQuery, CountQuery), responses(
    (status = 200, body = EventCounts),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn count_events(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(filter): Query<EventFilterQuery>,
    Query(q): Query<CountQuery>,
) -> Result<axum::Json<EventCounts>, AppError> {
    let scope = scoped.require(Action::View, Resource::Event)?;
    let filter = filter.filter()?;
    let bucket = match q.period.as_deref() {
        None | Some("hour") => 3_600_000_000,
        Some("day") => 86_400_000_000,
        Some(_) => return Err(AppError::field("period", "must be hour or day")),
    };
    let mut tx = state.store().org_read(scope).await?;
    let rows = tx.count_events(&filter, bucket).await?;
    tx.commit().await?;
    let mut by_type: HashMap<String, i64> = HashMap::new();
    for (_, kind, n) in &rows {
        *by_type.entry(kind.clone()).or_default() += n;
    }
    Ok(axum::Json(EventCounts {
        by_type,
        by_period: rows
            .into_iter()
            .map(|(start, kind, count)| PeriodCount {
                period_start: rfc3339(start),
                kind,
                count,
            })
            .collect(),
    }))
}

/// Where a live feed resumes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The id of the last event received (as `Last-Event-ID`, for clients that cannot set
    /// the header); without either, the feed starts with events recorded from now on.
    pub last_event_id: Option<String>,
}

/// Streams events as they are recorded (Server-Sent Events: `event` events whose data is the
/// event as JSON and whose id resumes the feed through `Last-Event-ID`). The stream ends with a
/// `revoked` event (a problem document) within seconds of its session or token being revoked
/// or its member losing access.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", security(("bearer" = [])),
    params(EventFilterQuery, FeedQuery), responses(
    (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn stream_events(
    State(state): State<AppState>,
    scoped: Scoped,
    liveness: Liveness,
    headers: HeaderMap,
    Query(filter): Query<EventFilterQuery>,
    Query(q): Query<FeedQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let scope = scoped.require(Action::View, Resource::Event)?.clone();
    let filter = filter.filter()?;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.last_event_id);
    let start = match last {
        Some(raw) => PageQuery {
            limit: None,
            cursor: Some(raw),
        }
        .after()
        .map_err(|_| AppError::field("last_event_id", "is not an event id this feed sent"))?,
        None => None,
    };
    let mut revoked = liveness.watch(Action::View, Resource::Event);
    let stream = async_stream(move |tx| async move {
        // Everything at or before `start` was sent before; `from` is the newest sent since.
        let start = start.unwrap_or((now_micros(), String::new()));
        let mut from = start.0;
        let mut sent: HashSet<String> = HashSet::new();
        let mut order: VecDeque<(i64, String)> = VecDeque::new();
        loop {
            // Page through everything recorded since a little before the newest event sent
            // (transactions may commit out of order), skipping what was sent already.
            let mut page_after = (from - FEED_OVERLAP, String::new());
            let rows = async {
                let mut rows = Vec::new();
                loop {
                    let mut db = state.store().org_read(&scope).await?;
                    let page = db
                        .events_recorded_after(&filter, (page_after.0, &page_after.1), FEED_PAGE)
                        .await?;
                    db.commit().await?;
                    let short = page.len() < usize::try_from(FEED_PAGE).unwrap_or(0);
                    if let Some(last) = page.last() {
                        page_after = (last.recorded_at, last.id.clone());
                    }
                    rows.extend(page);
                    if short || rows.len() >= FEED_MAX_PER_POLL {
                        return Ok::<_, crate::store::StoreError>(rows);
                    }
                }
            }
            .await;
            match rows {
                Ok(rows) => {
                    for event in rows {
                        let key = (event.recorded_at, event.id.clone());
                        if key <= start || sent.contains(&event.id) {
                            continue;
                        }
                        let id = cursor(event.recorded_at, &event.id);
                        let data = serde_json::to_string(&view(event)).unwrap_or_default();
                        let message = Event::default().event("event").id(id).data(data);
                        if tx.send(message).await.is_err() {
                            return;
                        }
                        from = from.max(key.0);
                        sent.insert(key.1.clone());
                        order.push_back(key);
                    }
                    // Forget what fell out of the overlap window.
                    while order
                        .front()
                        .is_some_and(|(t, _)| *t < from - 2 * FEED_OVERLAP)
                    {
                        if let Some((_, id)) = order.pop_front() {
                            sent.remove(&id);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the event feed failed; retrying"),
            }
            tokio::select! {
                () = tx.closed() => return,
                refusal = &mut revoked => {
                    let _ = tx.send(revoked_event(&refusal)).await;
                    return;
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
