//! Container logs: the last lines, or a follow that streams new lines until cancelled.

use bollard::Docker;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use infrapilot_core::docker::{ContainerRef, DEFAULT_LOG_TAIL, LogLine, LogsPage, MAX_LOG_TAIL};

use super::convert::log_line;
use super::error::docker_error;
use super::json;
use crate::command::{CommandError, ErrorCode, Replies};

/// The most lines one follow chunk carries (a line is at most 16 KiB in Docker's log files).
const MAX_LINES_PER_CHUNK: usize = 64;

/// Which lines to read.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogQuery {
    pub(super) tail: Option<u32>,
    pub(super) since: Option<i64>,
    pub(super) until: Option<i64>,
    pub(super) follow: bool,
}

/// The last `tail` lines (with timestamps, within since/until). With `follow`, they and every
/// later line are sent as chunks — each a JSON array of the lines that arrived together — and
/// the reply is an empty page once the container stops.
pub(super) async fn logs(
    docker: &Docker,
    container: &ContainerRef,
    query: LogQuery,
    replies: &Replies,
) -> Result<LogsPage, CommandError> {
    let tail = query.tail.unwrap_or(DEFAULT_LOG_TAIL);
    if tail > MAX_LOG_TAIL {
        return Err(CommandError::new(
            ErrorCode::Invalid,
            format!("tail must be at most {MAX_LOG_TAIL} lines, not {tail}"),
        ));
    }
    let options = LogsOptions {
        follow: query.follow,
        stdout: true,
        stderr: true,
        since: unix_i32(query.since),
        until: unix_i32(query.until),
        timestamps: true,
        tail: tail.to_string(),
    };
    let entries = docker.logs(container.as_str(), Some(options));
    if !query.follow {
        let mut lines = Vec::new();
        let mut entries = std::pin::pin!(entries);
        while let Some(entry) = entries.next().await {
            lines.push(log_line(&entry.map_err(docker_error)?));
        }
        return Ok(LogsPage { lines });
    }
    // Lines that are already there when one is read travel in the same chunk.
    let mut batches = std::pin::pin!(entries.ready_chunks(MAX_LINES_PER_CHUNK));
    while let Some(batch) = batches.next().await {
        let lines = batch
            .into_iter()
            .map(|entry| entry.map(|e| log_line(&e)))
            .collect::<Result<Vec<LogLine>, _>>()
            .map_err(docker_error)?;
        replies.chunk(json(&lines)?).await?;
    }
    Ok(LogsPage { lines: Vec::new() })
}

/// Docker takes unix seconds as a 32-bit number; absent (or not positive) means no bound.
fn unix_i32(t: Option<i64>) -> i32 {
    t.map_or(0, |t| i32::try_from(t.max(0)).unwrap_or(i32::MAX))
}
