//! nginx's log files, tailed into the buffer — the shared `access.log` and `error.log` and
//! every host's `<kind>-<id>.access.log` and `<kind>-<id>.error.log` — and rotated so that
//! they never fill the disk.
//!
//! Each file is a stream (`nginx:<file name without .log>`); a record's cursor is
//! `<inode>:<offset after the line>`, so a restarted agent goes on exactly after the last
//! line it buffered. Only whole lines are read: a line nginx is still writing waits for its
//! newline.
//!
//! # Rotation
//!
//! A file that has grown past its bound ([`NginxLogs::rotate_bytes`]) and is read to
//! its end is renamed to `<name>.1` (replacing the one before) and nginx is asked to reopen
//! its logs ([`ReopenLogs`]). nginx writes on into the renamed file until it has reopened, so
//! the tailer goes on reading `<name>.1` — the file its cursor's inode names — until it is
//! read to its end *and* its successor has existed for [`ROTATE_WAIT`]; only then does it
//! move to the new `<name>` from its start. An outside `logrotate` that renames to `<name>.1`
//! is followed the same way, also across a restart of the agent; a file replaced any other
//! way is read from its start. Nothing nginx wrote is skipped (but the incomplete last line
//! of a renamed file, given up [`ROTATE_GIVE_UP`] after its successor appeared), and the disk
//! holds at most two files per log.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use infrapilot_core::logs::{parse_access_line, parse_error_line};
use tokio_util::sync::CancellationToken;

use super::LogPipeline;
use super::buffer::{NewRecord, StreamMeta};

/// How often the directory is looked at.
const POLL: Duration = Duration::from_millis(500);
/// The most bytes read from one file per look.
const MAX_READ: usize = 1024 * 1024;
/// The longest line kept; the rest of a longer line is dropped.
const MAX_LINE: usize = 64 * 1024;
/// How long a rotated file is still read after its successor appeared: nginx's workers
/// reopen a moment after its master, and write to the old file until then.
pub const ROTATE_WAIT: Duration = Duration::from_secs(2);
/// How long after its successor appeared a rotated file that ends in an incomplete line (nginx
/// died mid-write, the disk was full) is given up on, once nothing more comes.
pub const ROTATE_GIVE_UP: Duration = Duration::from_secs(30);
/// How often untailed logs are looked at for rotation.
pub const UNTAILED_CHECK: Duration = Duration::from_secs(30);
/// How often nginx is asked again to reopen while a rotated file has no successor.
const REOPEN_RETRY: Duration = Duration::from_secs(10);

/// Makes nginx reopen its log files (`nginx -s reopen`), after the tailer renamed one.
pub trait ReopenLogs: Send + Sync {
    /// Asks nginx to reopen; an nginx that does not run has nothing to reopen (`Ok`).
    fn reopen_logs(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// nginx's log directory, and what rotating its files needs.
#[derive(Clone)]
pub struct NginxLogs {
    /// The directory nginx writes its logs to.
    pub dir: PathBuf,
    /// The size past which a file is rotated; `None`: never.
    pub rotate_bytes: Option<u64>,
    /// Asks nginx to reopen its logs after a rotation.
    pub reopen: Arc<dyn ReopenLogs>,
}

impl std::fmt::Debug for NginxLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NginxLogs")
            .field("dir", &self.dir)
            .field("rotate_bytes", &self.rotate_bytes)
            .finish_non_exhaustive()
    }
}

/// What a file in nginx's log directory is.
fn classify(name: &str) -> Option<(&'static str, &'static str)> {
    if name == "access.log" || name.ends_with(".access.log") {
        Some(("nginx_access", "access"))
    } else if name == "error.log" || name.ends_with(".error.log") {
        Some(("nginx_error", "error"))
    } else {
        None
    }
}

/// The stream a log file is shipped on.
pub fn nginx_stream(file_name: &str) -> String {
    format!(
        "nginx:{}",
        file_name.strip_suffix(".log").unwrap_or(file_name)
    )
}

/// Where reading a file goes on from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    inode: u64,
    offset: u64,
}

impl Position {
    fn parse(cursor: &[u8]) -> Option<Position> {
        let text = std::str::from_utf8(cursor).ok()?;
        let (inode, offset) = text.split_once(':')?;
        Some(Position {
            inode: inode.parse().ok()?,
            offset: offset.parse().ok()?,
        })
    }
}

/// What the tailer knows of one stream.
#[derive(Debug, Clone, Copy)]
struct Tail {
    position: Position,
    /// When the current file was first seen renamed to `<name>.1` with a successor.
    successor_since: Option<Instant>,
}

/// The tailer's state across looks.
#[derive(Debug, Default)]
struct Tails {
    streams: HashMap<String, Tail>,
}

/// What one look did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Look {
    /// Records were buffered.
    appended: bool,
    /// A file was renamed to `<name>.1`: nginx must reopen.
    rotated: bool,
    /// A renamed file has no successor yet: nginx has not reopened.
    awaiting_reopen: bool,
    /// A file had a whole window to read: look again at once.
    more: bool,
}

/// Tails the log files of `logs` into `pipeline` until `shutdown` is cancelled, rotating
/// each past its bound.
pub async fn run_nginx(pipeline: LogPipeline, logs: NginxLogs, shutdown: CancellationToken) {
    let rotate_bytes = logs.rotate_bytes;
    let mut tails = Tails::default();
    let mut last_reopen: Option<Instant> = None;
    loop {
        let look = {
            let pipeline = pipeline.clone();
            let dir = logs.dir.clone();
            let mut owned = std::mem::take(&mut tails);
            tokio::task::spawn_blocking(move || {
                let look = look_once(&pipeline, &dir, &mut owned, rotate_bytes, Instant::now());
                (owned, look)
            })
            .await
        };
        let mut more = false;
        match look {
            Ok((kept, look)) => {
                tails = kept;
                more = look.more;
                if look.appended {
                    pipeline.notify_appended();
                }
                let retry = look.awaiting_reopen
                    && last_reopen.is_none_or(|at| at.elapsed() >= REOPEN_RETRY);
                if look.rotated || retry {
                    last_reopen = Some(Instant::now());
                    if let Err(e) = logs.reopen.reopen_logs().await {
                        tracing::warn!(error = %e, "nginx could not reopen its logs");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading nginx's logs failed"),
        }
        // A busy log is read on without waiting, so it is kept up with (and rotated).
        let pause = if more { Duration::ZERO } else { POLL };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Rotates the log files of `logs` past their bound, with nobody tailing them (log collection
/// is off), until `shutdown` is cancelled: every [`UNTAILED_CHECK`], each file past it becomes
/// `<name>.1` and nginx reopens.
pub async fn rotate_untailed(logs: NginxLogs, shutdown: CancellationToken) {
    let Some(bound) = logs.rotate_bytes else {
        return;
    };
    loop {
        let dir = logs.dir.clone();
        let reopen = tokio::task::spawn_blocking(move || rotate_due(&dir, bound))
            .await
            .unwrap_or(false);
        if reopen && let Err(e) = logs.reopen.reopen_logs().await {
            tracing::warn!(error = %e, "nginx could not reopen its logs");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(UNTAILED_CHECK) => {}
        }
    }
}

/// Renames every log file in `dir` past `bound` to `<name>.1`; answers whether nginx must
/// reopen: a file was renamed, or one renamed before still has no successor (a reopen that
/// failed).
fn rotate_due(dir: &Path, bound: u64) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut rotated = false;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".1")
            && classify(base).is_some()
            && !dir.join(base).exists()
        {
            rotated = true;
            continue;
        }
        if classify(&name).is_none() || !entry.metadata().is_ok_and(|m| m.len() >= bound) {
            continue;
        }
        let path = entry.path();
        match rotate(&path) {
            Ok(()) => rotated = true,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot rotate an nginx log")
            }
        }
    }
    rotated
}

/// Renames a log file to `<name>.1`, replacing the one before.
fn rotate(path: &Path) -> std::io::Result<()> {
    let mut to = path.as_os_str().to_owned();
    to.push(".1");
    std::fs::rename(path, to)
}

/// The files of one log: `<name>` and `<name>.1`, each when it exists.
#[derive(Debug, Default)]
struct LogFiles {
    kind: &'static str,
    source: &'static str,
    current: Option<PathBuf>,
    rotated: Option<PathBuf>,
}

/// Reads what is new in every log file once, rotating what is due.
fn look_once(
    pipeline: &LogPipeline,
    dir: &Path,
    tails: &mut Tails,
    rotate_bytes: Option<u64>,
    now: Instant,
) -> Look {
    let mut look = Look::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return look;
    };
    let mut logs: HashMap<String, LogFiles> = HashMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let (base, rotated) = match name.strip_suffix(".1") {
            Some(base) => (base.to_owned(), true),
            None => (name.clone(), false),
        };
        let Some((kind, source)) = classify(&base) else {
            continue;
        };
        let files = logs.entry(base).or_default();
        files.kind = kind;
        files.source = source;
        if rotated {
            files.rotated = Some(entry.path());
        } else {
            files.current = Some(entry.path());
        }
    }
    for (name, files) in &logs {
        let stream = nginx_stream(name);
        if let Err(e) = look_at(
            pipeline,
            &stream,
            files,
            tails,
            rotate_bytes,
            now,
            &mut look,
        ) {
            tracing::debug!(file = %name, error = %e, "cannot read an nginx log");
        }
    }
    look
}

/// One log's share of a look.
fn look_at(
    pipeline: &LogPipeline,
    stream: &str,
    files: &LogFiles,
    tails: &mut Tails,
    rotate_bytes: Option<u64>,
    now: Instant,
    look: &mut Look,
) -> std::io::Result<()> {
    let known = match tails.streams.get(stream) {
        Some(tail) => Some(*tail),
        None => pipeline
            .buffer()
            .last_cursor(stream)
            .and_then(|c| Position::parse(&c))
            .map(|position| Tail {
                position,
                successor_since: None,
            }),
    };
    let inode_of = |path: &Option<PathBuf>| {
        path.as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.ino())
    };
    let current_inode = inode_of(&files.current);
    // Still on a file that was renamed away: read it to its end, and on until its
    // successor has been there long enough for every nginx worker to have moved over.
    if let (Some(mut tail), Some(rotated)) = (known, &files.rotated)
        && inode_of(&files.rotated) == Some(tail.position.inode)
        && current_inode != Some(tail.position.inode)
    {
        let (count, position, len, full) = read_lines(
            pipeline,
            rotated,
            stream,
            files.kind,
            files.source,
            tail.position,
        )?;
        look.appended |= count > 0;
        look.more |= full;
        tail.position = position;
        if current_inode.is_none() {
            look.awaiting_reopen = true;
            tails.streams.insert(stream.to_owned(), tail);
            return Ok(());
        }
        let since = *tail.successor_since.get_or_insert(now);
        let waited = now.duration_since(since);
        let stuck = count == 0 && waited >= ROTATE_GIVE_UP;
        if stuck && position.offset < len {
            tracing::warn!(
                file = %rotated.display(),
                bytes = len - position.offset,
                "a rotated nginx log ends in an incomplete line; it is skipped"
            );
        }
        let drained = position.offset >= len || stuck;
        if !drained || waited < ROTATE_WAIT {
            tails.streams.insert(stream.to_owned(), tail);
            return Ok(());
        }
        // Done with it: on to its successor, from its start.
        tails.streams.remove(stream);
    }
    let Some(current) = &files.current else {
        return Ok(());
    };
    let Some(inode) = current_inode else {
        return Ok(());
    };
    // Another file under the same name (a successor), or the same one truncated, is read from
    // its start: `read_lines` checks the position against the file.
    let start = tails
        .streams
        .get(stream)
        .map(|t| t.position)
        .or(known.map(|t| t.position))
        .unwrap_or(Position { inode, offset: 0 });
    let (count, position, len, full) =
        read_lines(pipeline, current, stream, files.kind, files.source, start)?;
    look.appended |= count > 0;
    look.more |= full;
    tails.streams.insert(
        stream.to_owned(),
        Tail {
            position,
            successor_since: None,
        },
    );
    // Read to its end and past its bound: renamed away, and nginx asked to reopen.
    if let Some(bound) = rotate_bytes
        && position.offset >= len
        && len >= bound
    {
        rotate(current)?;
        tracing::info!(file = %current.display(), bytes = len, "rotated an nginx log");
        look.rotated = true;
    }
    Ok(())
}

/// Buffers the whole lines of `path` after `start` (whose inode must be the file's, else it
/// is read from its beginning); answers how many, the position after them, the file's
/// length, and whether a whole window was read (so more may wait).
fn read_lines(
    pipeline: &LogPipeline,
    path: &Path,
    stream: &str,
    kind: &str,
    source: &str,
    start: Position,
) -> std::io::Result<(usize, Position, u64, bool)> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let inode = meta.ino();
    let len = meta.len();
    // A truncated file, or another one than expected, is read from its start.
    let start = if start.inode == inode && start.offset <= len {
        start.offset
    } else {
        0
    };
    let mut position = Position {
        inode,
        offset: start,
    };
    if start >= len {
        return Ok((0, position, len, false));
    }
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(MAX_READ as u64).read_to_end(&mut bytes)?;
    let full = bytes.len() == MAX_READ;
    // A whole window without a line end (a line longer than it, or garbage after a crash) is
    // taken as one line, cut like any long one, so that reading goes on.
    let (end, unended) = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => (end, false),
        None if full => (bytes.len(), true),
        None => return Ok((0, position, len, false)),
    };
    let stream_meta = StreamMeta {
        kind: kind.to_owned(),
        container_id: None,
        container_name: None,
    };
    let now = crate::session::now_unix_ms().saturating_mul(1_000_000);
    let mut offset = start;
    let mut count = 0;
    let mut buffer = pipeline.buffer();
    for line in bytes[..end].split(|b| *b == b'\n') {
        offset += line.len() as u64 + u64::from(!unended);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            position.offset = offset;
            continue;
        }
        let millis = match kind {
            "nginx_access" => parse_access_line(line).ok().and_then(|e| e.unix_millis),
            _ => parse_error_line(line).ok().map(|e| e.unix_millis),
        };
        let cursor = format!("{inode}:{offset}");
        let record = NewRecord {
            time_unix_nanos: millis.map_or(now, |m| m.saturating_mul(1_000_000)),
            source,
            cursor: cursor.as_bytes(),
            line: &line[..line.len().min(MAX_LINE)],
        };
        if let Err(e) = buffer.append(stream, &stream_meta, record) {
            tracing::warn!(%stream, error = %e, "cannot buffer an nginx log line");
            if count == 0 {
                // Nothing taken: not progress the rotation could mistake for a stuck file.
                return Err(std::io::Error::other(e.to_string()));
            }
            break;
        }
        position.offset = offset;
        count += 1;
    }
    Ok((count, position, len, full))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::logs::LogConfig;

    /// One look without rotation; answers whether it buffered anything.
    fn look(pipeline: &LogPipeline, dir: &Path, tails: &mut Tails) -> bool {
        look_once(pipeline, dir, tails, None, Instant::now()).appended
    }

    fn lines(pipeline: &LogPipeline, stream: &str) -> Vec<String> {
        pipeline
            .buffer()
            .read(stream, 0, 1000, usize::MAX)
            .unwrap_or_default()
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.line).into_owned())
            .collect()
    }

    #[test]
    fn whole_lines_once_across_restarts_and_replacements() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let buffer = dir.path().join("buffer");
        let file = logs.join("proxy-1.access.log");
        let mut f = std::fs::File::create(&file).unwrap();
        f.write_all(b"{\"status\":\"200\",\"time\":\"2026-12-02T10:00:00+00:00\"}\npartial")
            .unwrap();
        std::fs::write(logs.join("other.txt"), "not a log\n").unwrap();
        let stream = nginx_stream("proxy-1.access.log");
        assert_eq!(stream, "nginx:proxy-1.access");
        {
            let pipeline = LogPipeline::open(LogConfig::new(&buffer)).unwrap();
            let mut tails = Tails::default();
            assert!(look(&pipeline, &logs, &mut tails));
            assert_eq!(lines(&pipeline, &stream).len(), 1, "the partial line waits");
            let records = pipeline.buffer().read(&stream, 0, 10, usize::MAX).unwrap();
            assert_eq!(records[0].time_unix_nanos, 1_796_205_600_000_000_000);
            f.write_all(b" line\n").unwrap();
            assert!(look(&pipeline, &logs, &mut tails));
            assert!(!look(&pipeline, &logs, &mut tails));
            assert_eq!(lines(&pipeline, &stream)[1], "partial line");
        }
        // A restarted agent goes on after the last buffered line.
        f.write_all(b"third\n").unwrap();
        let pipeline = LogPipeline::open(LogConfig::new(&buffer)).unwrap();
        let mut tails = Tails::default();
        assert!(look(&pipeline, &logs, &mut tails));
        assert_eq!(lines(&pipeline, &stream).len(), 3);
        // A new file under the same name is read from its start.
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, "fourth\n").unwrap();
        assert!(look(&pipeline, &logs, &mut tails));
        assert_eq!(
            lines(&pipeline, &stream),
            [
                "{\"status\":\"200\",\"time\":\"2026-12-02T10:00:00+00:00\"}",
                "partial line",
                "third",
                "fourth"
            ]
        );
    }

    #[test]
    fn a_rotated_file_is_read_to_its_end_before_its_successor_also_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let buffer = dir.path().join("buffer");
        let file = logs.join("access.log");
        let rotated = logs.join("access.log.1");
        let stream = nginx_stream("access.log");
        let append = |path: &Path, text: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        };
        let t0 = Instant::now();
        let bound = Some(16);
        let pipeline = LogPipeline::open(LogConfig::new(&buffer)).unwrap();
        let mut tails = Tails::default();

        // Under the bound nothing happens; past it, read to its end, the file is renamed.
        append(&file, "one\n");
        let first = look_once(&pipeline, &logs, &mut tails, bound, t0);
        assert!(first.appended && !first.rotated);
        append(&file, "two plus enough\n");
        let look = look_once(&pipeline, &logs, &mut tails, bound, t0);
        assert!(look.appended && look.rotated, "{look:?}");
        assert!(!file.exists() && rotated.exists());

        // nginx writes on into the renamed file until it reopens: those lines are read too,
        // and reopening is asked for again.
        append(&rotated, "three\n");
        let look = look_once(&pipeline, &logs, &mut tails, bound, t0);
        assert!(
            look.appended && look.awaiting_reopen && !look.rotated,
            "{look:?}"
        );

        // Reopened: a successor exists, but the renamed file is read on for ROTATE_WAIT.
        append(&file, "five\n");
        append(&rotated, "four\n");
        let look = look_once(&pipeline, &logs, &mut tails, bound, t0);
        assert!(look.appended && !look.awaiting_reopen, "{look:?}");
        assert_eq!(
            lines(&pipeline, &stream),
            ["one", "two plus enough", "three", "four"]
        );

        // A restarted agent goes on in the renamed file from its cursor.
        drop(tails);
        let mut tails = Tails::default();
        append(&rotated, "late\n");
        let later = t0 + ROTATE_WAIT;
        look_once(&pipeline, &logs, &mut tails, bound, later);
        assert_eq!(lines(&pipeline, &stream).last().unwrap(), "late");

        // Drained and past the wait: on to the successor, from its start.
        let look = look_once(&pipeline, &logs, &mut tails, bound, later + ROTATE_WAIT);
        assert!(look.appended, "{look:?}");
        assert_eq!(
            lines(&pipeline, &stream),
            ["one", "two plus enough", "three", "four", "late", "five"]
        );
        // Nothing twice, and an old rotated file is left alone.
        assert!(!look_once(&pipeline, &logs, &mut tails, None, later + ROTATE_WAIT).appended);
        append(&rotated, "written after the wait\n");
        assert!(!look_once(&pipeline, &logs, &mut tails, None, later + ROTATE_WAIT).appended);
    }

    #[test]
    fn a_rotated_file_ending_in_an_incomplete_line_is_given_up_on() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let pipeline = LogPipeline::open(LogConfig::new(dir.path().join("buffer"))).unwrap();
        let stream = nginx_stream("error.log");
        let mut tails = Tails::default();
        let t0 = Instant::now();
        std::fs::write(logs.join("error.log"), "first\n").unwrap();
        assert!(look_once(&pipeline, &logs, &mut tails, Some(1), t0).rotated);
        // nginx died in the middle of a line, and its successor writes elsewhere.
        std::fs::write(logs.join("error.log.1"), "first\ncut in the mid").unwrap();
        std::fs::write(logs.join("error.log"), "after\n").unwrap();
        look_once(&pipeline, &logs, &mut tails, None, t0);
        look_once(&pipeline, &logs, &mut tails, None, t0 + ROTATE_WAIT);
        assert_eq!(
            lines(&pipeline, &stream),
            ["first"],
            "the incomplete line waits"
        );
        look_once(&pipeline, &logs, &mut tails, None, t0 + ROTATE_GIVE_UP);
        assert_eq!(lines(&pipeline, &stream), ["first", "after"]);
    }

    /// Counts the reopens asked for.
    struct CountReopens(std::sync::atomic::AtomicUsize);

    impl ReopenLogs for CountReopens {
        fn reopen_logs(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn with_collection_off_files_past_the_bound_are_still_rotated() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("proxy-1.access.log"), "x".repeat(100)).unwrap();
        std::fs::write(dir.path().join("error.log"), "small\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "y".repeat(100)).unwrap();
        let reopens = Arc::new(CountReopens(0.into()));
        let logs = NginxLogs {
            dir: dir.path().to_owned(),
            rotate_bytes: Some(50),
            reopen: reopens.clone(),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(rotate_untailed(logs, shutdown.clone()));
        let count = || reopens.0.load(std::sync::atomic::Ordering::SeqCst);
        for _ in 0..100 {
            if count() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(count(), 1);
        let names: std::collections::BTreeSet<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["error.log", "notes.txt", "proxy-1.access.log.1"]
        );
    }

    #[test]
    fn a_window_without_a_line_end_is_taken_as_one_cut_line_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let pipeline = LogPipeline::open(LogConfig::new(dir.path().join("buffer"))).unwrap();
        let mut garbage = vec![b'x'; MAX_READ + 10];
        garbage.extend_from_slice(b"\nnext\n");
        std::fs::write(logs.join("error.log"), garbage).unwrap();
        let mut tails = Tails::default();
        let first = look_once(&pipeline, &logs, &mut tails, None, Instant::now());
        assert!(first.appended && first.more, "{first:?}");
        let second = look_once(&pipeline, &logs, &mut tails, None, Instant::now());
        assert!(second.appended && !second.more, "{second:?}");
        let lines = lines(&pipeline, &nginx_stream("error.log"));
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), MAX_LINE, "cut like any long line");
        assert_eq!(lines[1], "x".repeat(10));
        assert_eq!(lines[2], "next");
    }
}
