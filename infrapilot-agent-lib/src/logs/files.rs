//! nginx's log files, tailed into the buffer: the shared `access.log` and `error.log` and
//! every host's `<kind>-<id>.access.log` and `<kind>-<id>.error.log`.
//!
//! Each file is a stream (`nginx:<file name without .log>`); a record's cursor is
//! `<inode>:<offset after the line>`, so a restarted agent goes on exactly after the last
//! line it buffered, and a file replaced by another (rotated, recreated) is read from its
//! start. Only whole lines are read: a line nginx is still writing waits for its newline.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Tails the log files in `dir` into `pipeline` until `shutdown` is cancelled.
pub async fn run_nginx(pipeline: LogPipeline, dir: PathBuf, shutdown: CancellationToken) {
    let mut positions: HashMap<String, Position> = HashMap::new();
    loop {
        let tick = {
            let pipeline = pipeline.clone();
            let dir = dir.clone();
            let mut owned = std::mem::take(&mut positions);
            tokio::task::spawn_blocking(move || {
                let appended = read_dir_once(&pipeline, &dir, &mut owned);
                (owned, appended)
            })
            .await
        };
        match tick {
            Ok((kept, appended)) => {
                positions = kept;
                if appended {
                    pipeline.notify_appended();
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading nginx's logs failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Reads what is new in every log file once; answers whether anything was buffered.
fn read_dir_once(
    pipeline: &LogPipeline,
    dir: &Path,
    positions: &mut HashMap<String, Position>,
) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut appended = false;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((kind, source)) = classify(&name) else {
            continue;
        };
        let stream = nginx_stream(&name);
        match read_file(pipeline, &entry.path(), &stream, kind, source, positions) {
            Ok(n) => appended |= n > 0,
            Err(e) => tracing::debug!(file = %name, error = %e, "cannot read an nginx log"),
        }
    }
    appended
}

/// Buffers the whole lines of `path` after its position; answers how many.
fn read_file(
    pipeline: &LogPipeline,
    path: &Path,
    stream: &str,
    kind: &str,
    source: &str,
    positions: &mut HashMap<String, Position>,
) -> std::io::Result<usize> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let inode = meta.ino();
    let known = match positions.get(stream) {
        Some(p) => Some(*p),
        None => pipeline
            .buffer()
            .last_cursor(stream)
            .and_then(|c| Position::parse(&c)),
    };
    // Another file under the same name, or the same one truncated: start at its beginning.
    let start = match known {
        Some(p) if p.inode == inode && p.offset <= meta.len() => p.offset,
        _ => 0,
    };
    positions.insert(
        stream.to_owned(),
        Position {
            inode,
            offset: start,
        },
    );
    if start >= meta.len() {
        return Ok(0);
    }
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(MAX_READ as u64).read_to_end(&mut bytes)?;
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
        return Ok(0);
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
        offset += line.len() as u64 + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
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
            break;
        }
        positions.insert(stream.to_owned(), Position { inode, offset });
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::logs::LogConfig;

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
            let mut positions = HashMap::new();
            assert!(read_dir_once(&pipeline, &logs, &mut positions));
            assert_eq!(lines(&pipeline, &stream).len(), 1, "the partial line waits");
            let records = pipeline.buffer().read(&stream, 0, 10, usize::MAX).unwrap();
            assert_eq!(records[0].time_unix_nanos, 1_796_205_600_000_000_000);
            f.write_all(b" line\n").unwrap();
            assert!(read_dir_once(&pipeline, &logs, &mut positions));
            assert!(!read_dir_once(&pipeline, &logs, &mut positions));
            assert_eq!(lines(&pipeline, &stream)[1], "partial line");
        }
        // A restarted agent goes on after the last buffered line.
        f.write_all(b"third\n").unwrap();
        let pipeline = LogPipeline::open(LogConfig::new(&buffer)).unwrap();
        let mut positions = HashMap::new();
        assert!(read_dir_once(&pipeline, &logs, &mut positions));
        assert_eq!(lines(&pipeline, &stream).len(), 3);
        // A new file under the same name is read from its start.
        std::fs::remove_file(&file).unwrap();
        std::fs::write(&file, "fourth\n").unwrap();
        assert!(read_dir_once(&pipeline, &logs, &mut positions));
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
}
