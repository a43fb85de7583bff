//! Collectors: containers' stdout and stderr, and the engine's container events, appended to
//! the buffer.
//!
//! Each record carries a cursor, the Docker timestamp of the line or event in unix
//! nanoseconds. A collector that starts again (the container restarted, the agent restarted)
//! asks Docker for what came since the second of the last buffered record and skips every
//! record at or before it, so no line is buffered twice and none is missed.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::EventMessage;
use bollard::query_parameters::{EventsOptions, ListContainersOptions, LogsOptions};
use futures_util::StreamExt;
use infrapilot_core::events::{DockerEvent, EventKind};
use infrapilot_core::logs::parse_rfc3339;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::LogPipeline;
use super::buffer::{LogBuffer, NewRecord, StreamMeta};

/// The stream Docker's container events are buffered on.
pub const EVENTS_STREAM: &str = "docker:events";

/// How often the running containers are listed to find new ones (a `start` event finds them
/// sooner).
const RESCAN: Duration = Duration::from_secs(2);

/// The longest line kept, in bytes; Docker itself splits lines at 16 KiB.
const MAX_LINE: usize = 64 * 1024;

/// Which containers' output is collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every container.
    All,
    /// Containers with this label (with this value, when given).
    Label {
        /// The label's key.
        key: String,
        /// The value it must have; any value when `None`.
        value: Option<String>,
    },
}

/// A selection that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a log selection: use `all`, `label:KEY` or `label:KEY=VALUE`")]
pub struct SelectionError {
    /// What was given.
    pub input: String,
}

impl FromStr for Selection {
    type Err = SelectionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SelectionError {
            input: s.to_owned(),
        };
        if s == "all" {
            return Ok(Selection::All);
        }
        let label = s.strip_prefix("label:").ok_or_else(bad)?;
        let (key, value) = match label.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (label, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(Selection::Label {
            key: key.to_owned(),
            value,
        })
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::All => f.write_str("all"),
            Selection::Label { key, value: None } => write!(f, "label:{key}"),
            Selection::Label {
                key,
                value: Some(v),
            } => write!(f, "label:{key}={v}"),
        }
    }
}

impl Selection {
    /// Docker's `label` filter for the selection.
    fn filters(&self) -> HashMap<String, Vec<String>> {
        let mut filters = HashMap::new();
        filters.insert("status".to_owned(), vec!["running".to_owned()]);
        if let Selection::Label { key, value } = self {
            let label = match value {
                Some(v) => format!("{key}={v}"),
                None => key.clone(),
            };
            filters.insert("label".to_owned(), vec![label]);
        }
        filters
    }
}

/// The buffer stream of a container.
pub fn container_stream(id: &str) -> String {
    format!("container:{id}")
}

/// Waits for the Docker engine behind `probe` (looking again every few seconds), then
/// collects as [`run`] does until `shutdown` is cancelled.
pub async fn run_with_probe(
    pipeline: LogPipeline,
    probe: Arc<crate::probe::HostProbe>,
    shutdown: CancellationToken,
) {
    let docker = loop {
        match probe.docker_client().await {
            Ok(docker) => break docker,
            Err(reason) => tracing::debug!(%reason, "no Docker engine to collect logs from yet"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    };
    run(pipeline, docker, shutdown).await;
}

/// Collects the selected containers' output and the engine's events into `pipeline` until
/// `shutdown` is cancelled.
pub async fn run(pipeline: LogPipeline, docker: Docker, shutdown: CancellationToken) {
    let started = Arc::new(Notify::new());
    let events = tokio::spawn(collect_events(
        pipeline.clone(),
        docker.clone(),
        started.clone(),
        shutdown.clone(),
    ));
    let mut following: HashSet<String> = HashSet::new();
    let mut followers: JoinSet<String> = JoinSet::new();
    let filters = pipeline.config().selection.filters();
    let mut last_collection = tokio::time::Instant::now();
    loop {
        if last_collection.elapsed() >= COLLECT_REMOVED {
            last_collection = tokio::time::Instant::now();
            forget_removed(&pipeline, &docker, &following).await;
        }
        let options = ListContainersOptions {
            all: false,
            filters: Some(filters.clone()),
            ..Default::default()
        };
        match docker.list_containers(Some(options)).await {
            Ok(list) => {
                for c in list {
                    let Some(id) = c.id else { continue };
                    if following.contains(&id) {
                        continue;
                    }
                    let name = crate::probe::container_name(c.names.as_deref());
                    following.insert(id.clone());
                    followers.spawn(follow_container(
                        pipeline.clone(),
                        docker.clone(),
                        id,
                        name,
                        shutdown.clone(),
                    ));
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot list containers to collect logs"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = started.notified() => {}
            () = tokio::time::sleep(RESCAN) => {}
            Some(Ok(id)) = followers.join_next(), if !followers.is_empty() => {
                following.remove(&id);
            }
        }
        while let Some(Ok(id)) = followers.try_join_next() {
            following.remove(&id);
        }
    }
    followers.abort_all();
    events.abort();
}

/// How often the buffer forgets the streams of removed containers.
const COLLECT_REMOVED: Duration = Duration::from_secs(60);

/// Removes the buffer's streams of containers that no longer exist once the server has all
/// their records. A container id is never reused, so such a stream can get no new record;
/// keeping it would only grow the buffer's directory (and the shipper's rounds) forever.
async fn forget_removed(pipeline: &LogPipeline, docker: &Docker, following: &HashSet<String>) {
    let options = ListContainersOptions {
        all: true,
        ..Default::default()
    };
    let Ok(list) = docker.list_containers(Some(options)).await else {
        return;
    };
    let existing: HashSet<String> = list.into_iter().filter_map(|c| c.id).collect();
    let mut buffer = pipeline.buffer();
    for status in buffer.streams() {
        let Some(id) = status.key.strip_prefix("container:") else {
            continue;
        };
        // A follower still draining a removed container's output would recreate the stream.
        if status.unacked == 0 && !existing.contains(id) && !following.contains(id) {
            match buffer.remove_stream(&status.key) {
                Ok(_) => {
                    tracing::debug!(stream = %status.key, "forgot the stream of a removed container")
                }
                Err(e) => {
                    tracing::warn!(stream = %status.key, error = %e, "cannot remove a stream")
                }
            }
        }
    }
}

/// The cursor (unix nanoseconds) of a stream's last buffered record.
fn last_cursor(pipeline: &LogPipeline, stream: &str) -> Option<i64> {
    let cursor = pipeline.buffer().last_cursor(stream)?;
    std::str::from_utf8(&cursor).ok()?.parse().ok()
}

/// Follows one container's output until it stops (or `shutdown`); returns its id.
async fn follow_container(
    pipeline: LogPipeline,
    docker: Docker,
    id: String,
    name: String,
    shutdown: CancellationToken,
) -> String {
    let stream = container_stream(&id);
    let meta = StreamMeta {
        kind: "container".to_owned(),
        container_id: Some(id.clone()),
        container_name: Some(name.clone()),
    };
    let cursor = last_cursor(&pipeline, &stream);
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        // Docker takes whole seconds: ask from the second of the cursor, skip up to it.
        since: cursor.map_or(0, |c| {
            i32::try_from(c.div_euclid(1_000_000_000)).unwrap_or(0)
        }),
        until: 0,
        timestamps: true,
        tail: match cursor {
            Some(_) => "all".to_owned(),
            None => pipeline.config().backfill_lines.to_string(),
        },
    };
    tracing::debug!(container = %name, ?cursor, "collecting logs");
    // Only while resuming are frames at or before the cursor skipped (they were buffered
    // before); once past it, every frame counts, even one stamped like the one before it
    // (Docker gives every part of a line longer than 16 KiB the first part's time, and
    // stdout and stderr are stamped separately).
    let mut resuming = cursor.is_some();
    let cursor = cursor.unwrap_or(i64::MIN);
    let mut partials = Partials::default();
    // When the oldest unended line began: one left unended for PARTIAL_WAIT (a prompt, a
    // progress bar) is buffered as it is rather than held until the container writes on.
    let mut held_since: Option<tokio::time::Instant> = None;
    let outputs = docker.logs(&id, Some(options));
    let mut chunks = std::pin::pin!(outputs.ready_chunks(256));
    loop {
        let flush_at = held_since.map(|since| since + PARTIAL_WAIT);
        let chunk = tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)),
                if flush_at.is_some() => {
                flush_partials(&pipeline, &mut partials, &stream, &meta, &name);
                held_since = None;
                continue;
            }
            chunk = chunks.next() => match chunk {
                Some(chunk) => chunk,
                None => break,
            },
        };
        let mut appended = false;
        {
            let mut buffer = pipeline.buffer();
            for output in chunk {
                let output = match output {
                    Ok(output) => output,
                    Err(e) => {
                        tracing::debug!(container = %name, error = %e, "log stream ended");
                        break;
                    }
                };
                let Some(frame) = split_output(&output) else {
                    continue;
                };
                if resuming {
                    if frame.time <= cursor {
                        continue;
                    }
                    resuming = false;
                }
                if let Some((time, line)) = partials.push(&frame) {
                    appended |= append_line(
                        &mut buffer,
                        &stream,
                        &meta,
                        time,
                        frame.source,
                        &line,
                        &name,
                    );
                }
            }
        }
        if appended {
            pipeline.notify_appended();
        }
        held_since = match (partials.is_empty(), held_since) {
            (true, _) => None,
            (false, None) => Some(tokio::time::Instant::now()),
            (false, since) => since,
        };
    }
    // A line the container never ended (it stopped mid-line) is kept as it is.
    flush_partials(&pipeline, &mut partials, &stream, &meta, &name);
    id
}

/// How long a line may stay unended before it is buffered as it is. Docker sends the parts
/// of one long line together, well within this.
const PARTIAL_WAIT: Duration = Duration::from_secs(2);

/// Buffers the lines begun and not ended, as they are.
fn flush_partials(
    pipeline: &LogPipeline,
    partials: &mut Partials,
    stream: &str,
    meta: &StreamMeta,
    name: &str,
) {
    let rest = partials.finish();
    if rest.is_empty() {
        return;
    }
    {
        let mut buffer = pipeline.buffer();
        for (time, source, line) in rest {
            append_line(&mut buffer, stream, meta, time, source, &line, name);
        }
    }
    pipeline.notify_appended();
}

/// Buffers one whole line; returns whether it was buffered.
fn append_line(
    buffer: &mut LogBuffer,
    stream: &str,
    meta: &StreamMeta,
    time: i64,
    source: &'static str,
    line: &[u8],
    name: &str,
) -> bool {
    let cursor_text = time.to_string();
    let record = NewRecord {
        time_unix_nanos: time,
        source,
        cursor: cursor_text.as_bytes(),
        line,
    };
    match buffer.append(stream, meta, record) {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(container = %name, error = %e, "cannot buffer a log line");
            false
        }
    }
}

/// One Docker log frame: its time (unix nanoseconds), source, and text without its line end.
struct Frame<'a> {
    time: i64,
    source: &'static str,
    text: &'a [u8],
    /// Whether the frame ended a line. Docker cuts a line longer than 16 KiB into partial
    /// messages, each a frame without a line end (as is a TTY's or a last unended write).
    ends_line: bool,
}

/// Puts partial messages back together, per source, before the line bound applies: a line is
/// kept up to [`MAX_LINE`] bytes and its time is its first part's.
#[derive(Default)]
struct Partials {
    pending: [Option<(i64, Vec<u8>)>; 2],
}

impl Partials {
    fn slot(source: &str) -> usize {
        usize::from(source == "stderr")
    }

    /// Takes one frame; returns the whole line it completes, if it completes one.
    fn push<'a>(&mut self, frame: &Frame<'a>) -> Option<(i64, Cow<'a, [u8]>)> {
        let slot = &mut self.pending[Self::slot(frame.source)];
        match slot {
            None if frame.ends_line => Some((
                frame.time,
                Cow::Borrowed(&frame.text[..frame.text.len().min(MAX_LINE)]),
            )),
            None => {
                let mut line = Vec::with_capacity(frame.text.len().min(MAX_LINE));
                line.extend_from_slice(&frame.text[..frame.text.len().min(MAX_LINE)]);
                *slot = Some((frame.time, line));
                None
            }
            Some((_, line)) => {
                let room = MAX_LINE.saturating_sub(line.len());
                line.extend_from_slice(&frame.text[..frame.text.len().min(room)]);
                if !frame.ends_line {
                    return None;
                }
                slot.take().map(|(time, line)| (time, Cow::Owned(line)))
            }
        }
    }

    /// Whether no line is begun and unended.
    fn is_empty(&self) -> bool {
        self.pending.iter().all(Option::is_none)
    }

    /// The lines begun and not ended (when the stream ends, or they waited too long).
    fn finish(&mut self) -> Vec<(i64, &'static str, Vec<u8>)> {
        let [stdout, stderr] = std::mem::take(&mut self.pending);
        [("stdout", stdout), ("stderr", stderr)]
            .into_iter()
            .filter_map(|(source, pending)| pending.map(|(time, line)| (time, source, line)))
            .collect()
    }
}

/// A Docker log frame's timestamp, source and text.
fn split_output(output: &LogOutput) -> Option<Frame<'_>> {
    let (source, message) = match output {
        LogOutput::StdErr { message } => ("stderr", message),
        LogOutput::StdOut { message } | LogOutput::Console { message } => ("stdout", message),
        LogOutput::StdIn { .. } => return None,
    };
    let bytes: &[u8] = message;
    let space = bytes.iter().position(|b| *b == b' ')?;
    let time = parse_docker_time(std::str::from_utf8(&bytes[..space]).ok()?)?;
    let text = &bytes[space + 1..];
    let (text, ends_line) = match text.strip_suffix(b"\n") {
        Some(text) => (text.strip_suffix(b"\r").unwrap_or(text), true),
        None => (text, false),
    };
    Some(Frame {
        time,
        source,
        text,
        ends_line,
    })
}

/// Docker's RFC 3339 timestamp with up to nine fraction digits, in unix nanoseconds.
pub fn parse_docker_time(text: &str) -> Option<i64> {
    let millis = parse_rfc3339(text)?;
    // The core reads milliseconds; the digits after the third are added back.
    let fraction = text
        .split_once('.')
        .map(|(_, f)| {
            f.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .unwrap_or_default();
    let sub_milli: i64 = if fraction.len() > 3 {
        let digits: String = fraction.chars().skip(3).take(6).collect();
        let scale = 10_i64.pow(6 - u32::try_from(digits.len()).unwrap_or(6));
        digits.parse::<i64>().ok()? * scale
    } else {
        0
    };
    millis.checked_mul(1_000_000)?.checked_add(sub_milli)
}

/// Buffers the engine's container events (the kinds the inventory keeps) until `shutdown`,
/// waking the container scan on every `start`.
async fn collect_events(
    pipeline: LogPipeline,
    docker: Docker,
    started: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let meta = StreamMeta {
        kind: "docker_events".to_owned(),
        container_id: None,
        container_name: None,
    };
    loop {
        let cursor = last_cursor(&pipeline, EVENTS_STREAM);
        let mut filters = HashMap::new();
        filters.insert("type".to_owned(), vec!["container".to_owned()]);
        let options = EventsOptions {
            // The first time, from now on; later, from the last event buffered.
            since: cursor.map(|c| c.div_euclid(1_000_000_000).to_string()),
            until: None,
            filters: Some(filters),
        };
        let mut last = cursor.unwrap_or(i64::MIN);
        let mut events = std::pin::pin!(docker.events(Some(options)));
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                event = events.next() => event,
            };
            let Some(Ok(event)) = event else { break };
            let Some(event) = docker_event(&event) else {
                continue;
            };
            if event.time_unix_nanos <= last {
                continue;
            }
            if event.kind() == Some(EventKind::ContainerStart) {
                started.notify_one();
            }
            let Ok(line) = serde_json::to_vec(&event) else {
                continue;
            };
            let cursor_text = event.time_unix_nanos.to_string();
            let record = NewRecord {
                time_unix_nanos: event.time_unix_nanos,
                source: "event",
                cursor: cursor_text.as_bytes(),
                line: &line,
            };
            let appended = pipeline.buffer().append(EVENTS_STREAM, &meta, record);
            match appended {
                Ok(_) => {
                    last = event.time_unix_nanos;
                    pipeline.notify_appended();
                }
                Err(e) => tracing::warn!(error = %e, "cannot buffer a Docker event"),
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// A container event the inventory keeps, as the core's [`DockerEvent`].
fn docker_event(message: &EventMessage) -> Option<DockerEvent> {
    let action = message.action.clone()?;
    EventKind::from_docker_action(&action)?;
    let actor = message.actor.as_ref()?;
    let attributes = actor.attributes.clone().unwrap_or_default();
    let time = message
        .time_nano
        .or_else(|| message.time.map(|t| t.saturating_mul(1_000_000_000)))?;
    Some(DockerEvent {
        action,
        container_id: actor.id.clone()?,
        container_name: attributes.get("name").cloned().unwrap_or_default(),
        image: attributes.get("image").cloned().unwrap_or_default(),
        exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
        time_unix_nanos: time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_times_keep_their_nanoseconds() {
        assert_eq!(
            parse_docker_time("1970-01-01T00:00:01.123456789Z"),
            Some(1_123_456_789)
        );
        assert_eq!(
            parse_docker_time("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(
            parse_docker_time("1970-01-01T00:00:01.1234Z"),
            Some(1_123_400_000)
        );
        assert_eq!(
            parse_docker_time("1970-01-01T00:00:02Z"),
            Some(2_000_000_000)
        );
        assert_eq!(parse_docker_time("yesterday"), None);
    }

    #[test]
    fn selections_parse_and_print() {
        for text in ["all", "label:app", "label:logs=on"] {
            assert_eq!(
                text.parse::<Selection>().map(|s| s.to_string()),
                Ok(text.to_owned())
            );
        }
        for bad in ["", "some", "label:", "label: x"] {
            assert!(bad.parse::<Selection>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn streams_of_removed_containers_are_forgotten_once_shipped() {
        let docker = crate::testing::TestDocker::new("forget-removed")
            .await
            .unwrap();
        let running = docker
            .run("kept", &["sleep", "60"], Default::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pipeline = LogPipeline::open(super::super::LogConfig::new(dir.path())).unwrap();
        let meta = StreamMeta {
            kind: "container".into(),
            container_id: None,
            container_name: None,
        };
        let record = NewRecord {
            time_unix_nanos: 1,
            source: "stdout",
            cursor: b"1",
            line: b"x",
        };
        let gone =
            container_stream("0000000000000000000000000000000000000000000000000000000000000000");
        let gone_unshipped =
            container_stream("1111111111111111111111111111111111111111111111111111111111111111");
        let kept = container_stream(&running.id);
        {
            let mut buffer = pipeline.buffer();
            for stream in [&gone, &gone_unshipped, &kept] {
                buffer.append(stream, &meta, record).unwrap();
            }
            buffer.ack(&gone, 1).unwrap();
            buffer.ack(&kept, 1).unwrap();
        }
        forget_removed(&pipeline, docker.docker(), &HashSet::new()).await;
        let left: Vec<String> = pipeline
            .buffer()
            .streams()
            .into_iter()
            .map(|s| s.key)
            .collect();
        let mut expected = vec![gone_unshipped, kept];
        expected.sort();
        assert_eq!(
            left, expected,
            "only the shipped stream of a removed container goes"
        );
    }

    #[test]
    fn frames_split_into_time_source_and_line() {
        let frame = LogOutput::StdErr {
            message: "1970-01-01T00:00:01.000000002Z oops\r\n".into(),
        };
        let frame = split_output(&frame).unwrap();
        assert_eq!(
            (frame.time, frame.source, frame.text, frame.ends_line),
            (1_000_000_002, "stderr", &b"oops"[..], true)
        );
        let partial = LogOutput::StdOut {
            message: "1970-01-01T00:00:01Z part".into(),
        };
        assert!(!split_output(&partial).unwrap().ends_line);
    }

    /// A real container writes a 40,000-byte line, which Docker cuts into 16 KiB partial
    /// messages, between two short ones: the collector buffers three lines, the long one whole.
    #[tokio::test]
    async fn a_real_containers_long_line_is_buffered_whole() {
        let docker = crate::testing::TestDocker::new("partials").await.unwrap();
        let container = docker
            .run(
                "long-line",
                &[
                    "sh",
                    "-c",
                    "echo before; head -c 40000 /dev/zero | tr '\\0' a; echo; echo after; sleep 60",
                ],
                Default::default(),
            )
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pipeline = LogPipeline::open(super::super::LogConfig::new(dir.path())).unwrap();
        let shutdown = CancellationToken::new();
        let follower = tokio::spawn(follow_container(
            pipeline.clone(),
            docker.docker().clone(),
            container.id.clone(),
            container.name.clone(),
            shutdown.clone(),
        ));
        let stream = container_stream(&container.id);
        let mut lines = Vec::new();
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let buffer = pipeline.buffer();
            lines = buffer
                .read(&stream, 0, 100, usize::MAX)
                .map(|records| records.into_iter().map(|r| r.line).collect::<Vec<_>>())
                .unwrap_or_default();
            if lines.len() >= 3 {
                break;
            }
        }
        shutdown.cancel();
        let _ = follower.await;
        assert_eq!(
            lines.len(),
            3,
            "{:?}",
            lines.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(lines[0], b"before");
        assert_eq!(lines[1], vec![b'a'; 40_000]);
        assert_eq!(lines[2], b"after");
    }

    fn frame<'a>(time: i64, source: &'static str, text: &'a [u8], ends_line: bool) -> Frame<'a> {
        Frame {
            time,
            source,
            text,
            ends_line,
        }
    }

    /// Docker's 16 KiB partial messages, interleaved on stdout and stderr, come out as whole
    /// lines with their first part's time; the bound applies to the whole line; a line never
    /// ended is kept when the stream ends.
    #[test]
    fn partial_messages_are_joined_then_bounded() {
        let mut partials = Partials::default();
        let part = vec![b'a'; 16 * 1024];
        assert!(partials.push(&frame(1, "stdout", &part, false)).is_none());
        assert!(partials.push(&frame(1, "stderr", b"err ", false)).is_none());
        assert!(partials.push(&frame(1, "stdout", &part, false)).is_none());
        let (time, line) = partials.push(&frame(1, "stdout", b"end", true)).unwrap();
        assert_eq!((time, line.len()), (1, 32 * 1024 + 3));
        assert!(line.ends_with(b"aend"));
        let (_, line) = partials.push(&frame(2, "stderr", b"whole", true)).unwrap();
        assert_eq!(&*line, b"err whole");
        // A line past the bound is cut at it, and the next line starts clean.
        for _ in 0..6 {
            assert!(partials.push(&frame(3, "stdout", &part, false)).is_none());
        }
        let (_, line) = partials.push(&frame(3, "stdout", b"tail", true)).unwrap();
        assert_eq!(line.len(), MAX_LINE);
        let (_, line) = partials.push(&frame(4, "stdout", b"next", true)).unwrap();
        assert_eq!(&*line, b"next");
        // An unended last write is kept.
        assert!(
            partials
                .push(&frame(5, "stderr", b"no end", false))
                .is_none()
        );
        assert!(!partials.is_empty());
        assert_eq!(partials.finish(), vec![(5, "stderr", b"no end".to_vec())]);
        assert!(partials.finish().is_empty() && partials.is_empty());
    }
}
