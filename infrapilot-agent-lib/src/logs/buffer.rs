//! The agent's on-disk log buffer.
//!
//! Collectors (container logs, docker events, nginx logs) [`append`](LogBuffer::append) lines
//! to a *stream*; the shipper [`read`](LogBuffer::read)s them and sends them to the server; the
//! server acknowledges the highest sequence number it stored per stream, and only then does
//! [`ack`](LogBuffer::ack) let the buffer delete them. The buffer survives a restart or a
//! crash of the agent, and is bounded by [`BufferConfig::max_bytes`].
//!
//! # Layout
//!
//! | path under the root | content |
//! |---|---|
//! | `<hex of the stream key>/` | one directory per stream; the lowercase hex of the key's bytes, so no key can name a path outside the root |
//! | `<stream>/stream.json` | the stream's state: metadata, acked, next sequence, dropped count, last cursor; replaced atomically |
//! | `<stream>/00000000000000000001.seg` | a segment: records in sequence order, named by the sequence of its first record |
//! | `<stream>.removing/` | a stream being removed; deleted on open |
//!
//! A segment is a run of records, each `len: u32 LE`, `crc: u32 LE` (CRC-32/IEEE of the
//! payload), then `len` bytes of payload: `seq: u64 LE`, `time_unix_nanos: i64 LE`,
//! `source_len: u8`, source (UTF-8), `cursor_len: u16 LE`, cursor, `line_len: u32 LE`, line.
//!
//! # Durability
//!
//! Each append is one `write(2)` of a whole record, so once [`LogBuffer::append`] returns the
//! kernel holds the record and a crash of the agent process loses nothing. Appends are not
//! fsynced: after a power loss the newest segment may end in a torn record, and
//! [`LogBuffer::open`] truncates it away. `stream.json` is written to a temporary file,
//! fsynced, and renamed over the old one, and it is always written *before* a segment is
//! deleted, so the next sequence number and the last cursor are never lost with the segment
//! that held them.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest line a record may hold; a collector truncates longer lines before appending.
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// The longest cursor a record may hold.
pub const MAX_CURSOR_BYTES: usize = 1024;

/// The longest source name a record may hold (`stdout`, `stderr`, `event`, `access`, ...).
pub const MAX_SOURCE_BYTES: usize = 64;

/// The longest stream key, in bytes. Its hex encoding (twice as long) plus the `.removing`
/// suffix stays well inside the 255-byte limit of a file name.
pub const MAX_STREAM_KEY_BYTES: usize = 100;

/// How large the buffer may grow and what it gives up when it is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferConfig {
    /// The most bytes all streams' segment files may take together.
    pub max_bytes: u64,
    /// The size at which a stream starts a new segment. Acknowledged and dropped records are
    /// deleted a whole segment at a time, so this is also the granularity of reclaiming space.
    pub segment_bytes: u64,
    /// What an append does when the buffer is full.
    pub when_full: FullPolicy,
}

impl Default for BufferConfig {
    /// 256 MiB in 1 MiB segments, dropping the oldest records when full.
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024 * 1024,
            segment_bytes: 1024 * 1024,
            when_full: FullPolicy::DropOldest,
        }
    }
}

/// What [`LogBuffer::append`] does when the new record would take the buffer over
/// [`BufferConfig::max_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// Delete the oldest segment of any stream until the record fits, counting its
    /// unacknowledged records as dropped. "Oldest" is the segment whose first record has the
    /// smallest `time_unix_nanos` among the first segments of all streams (ties broken by the
    /// stream key), so a stream only ever loses its oldest records, never ones in the middle.
    #[default]
    DropOldest,
    /// Refuse the new record, counting it as dropped.
    DropNewest,
}

impl FullPolicy {
    /// The policy's name in settings: `drop_oldest` or `drop_newest`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DropOldest => "drop_oldest",
            Self::DropNewest => "drop_newest",
        }
    }
}

impl fmt::Display for FullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FullPolicy {
    type Err = ParseFullPolicyError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input {
            "drop_oldest" => Ok(Self::DropOldest),
            "drop_newest" => Ok(Self::DropNewest),
            _ => Err(ParseFullPolicyError {
                input: input.to_owned(),
            }),
        }
    }
}

/// A string that names no [`FullPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log buffer policy {input:?}: expected \"drop_oldest\" or \"drop_newest\"")]
pub struct ParseFullPolicyError {
    /// The string that was given.
    pub input: String,
}

/// What a stream carries, kept in its `stream.json` and shipped with its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// What the stream is: `container`, `docker_events`, `nginx_access`, ...
    pub kind: String,
    /// The container the lines come from, for container streams.
    pub container_id: Option<String>,
    /// The container's name when the stream was last appended to.
    pub container_name: Option<String>,
}

/// One record as a collector hands it to [`LogBuffer::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRecord<'a> {
    /// When the line was produced, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: i64,
    /// Where the line came from: `stdout`, `stderr`, `event`, `access`, ... At most
    /// [`MAX_SOURCE_BYTES`].
    pub source: &'a str,
    /// The collector's position just after this line (a Docker log timestamp, a file offset),
    /// opaque to the buffer and returned by [`LogBuffer::last_cursor`]. At most
    /// [`MAX_CURSOR_BYTES`].
    pub cursor: &'a [u8],
    /// The line, without its newline. At most [`MAX_LINE_BYTES`].
    pub line: &'a [u8],
}

/// One record as [`LogBuffer::read`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferedRecord {
    /// The record's sequence number in its stream, assigned by the buffer from 1.
    pub seq: u64,
    /// When the line was produced, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: i64,
    /// Where the line came from.
    pub source: String,
    /// The collector's cursor for this line.
    pub cursor: Vec<u8>,
    /// The line.
    pub line: Vec<u8>,
}

/// A stream's state, as [`LogBuffer::status`] and [`LogBuffer::streams`] report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStatus {
    /// The stream key.
    pub key: String,
    /// The metadata given with the latest append.
    pub meta: StreamMeta,
    /// The highest sequence number the server acknowledged (0 before the first ack).
    pub acked: u64,
    /// The sequence number the next record will get.
    pub next_seq: u64,
    /// How many records the full policy dropped before the server acknowledged them, ever.
    pub dropped: u64,
    /// How many records are kept and not yet acknowledged.
    pub unacked: u64,
    /// The cursor of the most recently appended record, if any record was ever appended.
    pub last_cursor: Option<Vec<u8>>,
    /// The time of the most recently appended record, if any.
    pub last_time_unix_nanos: Option<i64>,
    /// The bytes the stream's segment files take.
    pub bytes: u64,
    /// How many segment files the stream has.
    pub segments: usize,
    /// The stream's incarnation (see `LogBatch.epoch`): it changes only when the stream is
    /// created anew, its sequence numbers starting over.
    pub epoch: String,
}

/// Why the log buffer could not do what was asked. Every variant names the stream or the
/// file and carries the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BufferError {
    /// A file or directory of the buffer could not be read, written or deleted.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done: `create`, `read`, `write`, `delete`, ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A `stream.json` is not what the buffer writes; the agent does not guess, since a wrong
    /// guess could reuse sequence numbers the server has already stored.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The configured sizes cannot work.
    #[error(
        "invalid log buffer sizes: max_bytes {max_bytes} and segment_bytes {segment_bytes} \
         must both be positive, with segment_bytes <= max_bytes"
    )]
    InvalidConfig {
        /// The configured total.
        max_bytes: u64,
        /// The configured segment size.
        segment_bytes: u64,
    },
    /// A stream key is empty or too long.
    #[error("invalid log stream key {stream:?}: {reason}")]
    InvalidStreamKey {
        /// The key.
        stream: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No stream has this key.
    #[error("no log stream {stream:?} in the buffer")]
    UnknownStream {
        /// The key.
        stream: String,
    },
    /// A line is longer than [`MAX_LINE_BYTES`], or a whole encoded record is larger than
    /// [`BufferConfig::max_bytes`].
    #[error("a record for log stream {stream:?} is {bytes} bytes, more than the limit of {max}")]
    RecordTooLarge {
        /// The stream appended to.
        stream: String,
        /// The size of the line, or of the encoded record.
        bytes: usize,
        /// The limit it exceeds.
        max: u64,
    },
    /// A record's source or cursor is longer than its limit.
    #[error(
        "the {field} of a record for log stream {stream:?} is {bytes} bytes, more than the \
         limit of {max}"
    )]
    FieldTooLong {
        /// The stream appended to.
        stream: String,
        /// `source` or `cursor`.
        field: &'static str,
        /// Its size.
        bytes: usize,
        /// The limit it exceeds.
        max: usize,
    },
}

/// The on-disk log buffer. It is synchronous and uses `std::fs` only; a caller that shares
/// it between tasks wraps it in a `Mutex` (appends and reads are short: one write, or reading
/// at most a segment or two).
#[derive(Debug)]
pub struct LogBuffer {
    root: PathBuf,
    config: BufferConfig,
    streams: BTreeMap<String, Stream>,
    /// The sum of every stream's segment bytes, kept in step with them so appends need not
    /// look at the disk to apply the bound.
    total_bytes: u64,
}

impl LogBuffer {
    /// Opens the buffer at `root`, creating the directory if needed. Every stream's newest
    /// segment is checked record by record and a torn or corrupt tail is truncated away (with
    /// a warning); segments left fully acknowledged by a crash are deleted.
    pub fn open(root: impl Into<PathBuf>, config: BufferConfig) -> Result<Self, BufferError> {
        if config.max_bytes == 0
            || config.segment_bytes == 0
            || config.segment_bytes > config.max_bytes
        {
            return Err(BufferError::InvalidConfig {
                max_bytes: config.max_bytes,
                segment_bytes: config.segment_bytes,
            });
        }
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_error("create", &root))?;
        let mut streams = BTreeMap::new();
        let mut total_bytes = 0;
        for entry in fs::read_dir(&root).map_err(io_error("list", &root))? {
            let entry = entry.map_err(io_error("list", &root))?;
            let path = entry.path();
            let is_dir = entry
                .file_type()
                .map_err(io_error("inspect", &path))?
                .is_dir();
            let name = entry.file_name();
            let name = name.to_str().unwrap_or_default();
            if is_dir && name.ends_with(REMOVING_SUFFIX) {
                // A removal that was interrupted after its (atomic) rename: finish it.
                fs::remove_dir_all(&path).map_err(io_error("delete", &path))?;
                continue;
            }
            let key = if is_dir { decode_key(name) } else { None };
            let Some(key) = key else {
                tracing::warn!(path = %path.display(), "ignoring an entry that is not a log stream");
                continue;
            };
            if let Some(stream) = Stream::load(key.clone(), path)? {
                total_bytes += stream.bytes();
                streams.insert(key, stream);
            }
        }
        Ok(Self {
            root,
            config,
            streams,
            total_bytes,
        })
    }

    /// The buffer's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The configuration the buffer was opened with.
    pub fn config(&self) -> &BufferConfig {
        &self.config
    }

    /// Appends `record` to `stream`, creating the stream on its first append, and returns the
    /// record's sequence number: 1 for a stream's first record, then one more per append.
    /// `meta` replaces the stream's stored metadata when it differs.
    ///
    /// When the buffer is full, [`FullPolicy::DropOldest`] deletes old segments first, and
    /// [`FullPolicy::DropNewest`] refuses the record and returns `Ok(None)` (the refusal is
    /// counted in [`StreamStatus::dropped`], and [`LogBuffer::last_cursor`] does not move).
    pub fn append(
        &mut self,
        stream: &str,
        meta: &StreamMeta,
        record: NewRecord<'_>,
    ) -> Result<Option<u64>, BufferError> {
        validate_key(stream)?;
        validate_record(stream, &record)?;
        let record_bytes = encoded_len(&record);
        // `as u64` cannot truncate: the record is bounded by the field limits above.
        if record_bytes as u64 > self.config.max_bytes {
            return Err(BufferError::RecordTooLarge {
                stream: stream.to_owned(),
                bytes: record_bytes,
                max: self.config.max_bytes,
            });
        }
        let record_len = record_bytes as u64;

        match self.streams.get_mut(stream) {
            Some(s) if s.meta != *meta => {
                let previous = std::mem::replace(&mut s.meta, meta.clone());
                if let Err(e) = s.persist() {
                    s.meta = previous;
                    return Err(e);
                }
            }
            Some(_) => {}
            None => {
                let s = Stream::create(&self.root, stream, meta)?;
                self.streams.insert(stream.to_owned(), s);
            }
        }

        if self.total_bytes + record_len > self.config.max_bytes {
            match self.config.when_full {
                FullPolicy::DropNewest => {
                    let s = stream_mut(&mut self.streams, stream)?;
                    s.dropped += 1;
                    // Not written now: one state write per refused line would make a full
                    // buffer slower still. It goes out with the next state write or `flush`.
                    s.dirty = true;
                    return Ok(None);
                }
                FullPolicy::DropOldest => self.make_room(stream, record_len)?,
            }
        }

        let segment_bytes = self.config.segment_bytes;
        let s = stream_mut(&mut self.streams, stream)?;
        let seq = s.next_seq;
        s.write(&encode_record(seq, &record), &record, segment_bytes)?;
        self.total_bytes += record_len;
        Ok(Some(seq))
    }

    /// Returns `stream`'s records with a sequence number above `after_seq`, in order: at most
    /// `max_records`, and no more than `max_bytes` of lines in total, except that the first
    /// record is returned whatever its size, so a reader always makes progress. Records that
    /// the full policy dropped are absent; the answer continues with the oldest kept one.
    /// Corruption inside an older segment skips the rest of that segment, with a warning.
    pub fn read(
        &self,
        stream: &str,
        after_seq: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<BufferedRecord>, BufferError> {
        let s = self
            .streams
            .get(stream)
            .ok_or_else(|| BufferError::UnknownStream {
                stream: stream.to_owned(),
            })?;
        let mut out: Vec<BufferedRecord> = Vec::new();
        if max_records == 0 {
            return Ok(out);
        }
        // The last segment starting at or before `after_seq + 1` holds it, if it is kept.
        let wanted = after_seq.saturating_add(1);
        let start = s
            .segments
            .partition_point(|seg| seg.first_seq <= wanted)
            .saturating_sub(1);
        let mut line_bytes = 0usize;
        for segment in s.segments.iter().skip(start) {
            let path = s.segment_path(segment.first_seq);
            let file = File::open(&path).map_err(io_error("open", &path))?;
            // Only the bytes the buffer accounted for: anything past them is the garbage of a
            // failed write.
            let mut reader = BufReader::with_capacity(READ_BUFFER, file.take(segment.bytes));
            let mut offset = 0u64;
            loop {
                match read_record(&mut reader).map_err(io_error("read", &path))? {
                    Decoded::End => break,
                    Decoded::Torn(reason) => {
                        tracing::warn!(
                            path = %path.display(),
                            offset,
                            reason,
                            "skipping the rest of a corrupt log buffer segment"
                        );
                        break;
                    }
                    Decoded::Record(record, size) => {
                        offset += size;
                        let last = out.last().map_or(after_seq, |r| r.seq);
                        if record.seq <= last {
                            continue;
                        }
                        if !out.is_empty() && line_bytes + record.line.len() > max_bytes {
                            return Ok(out);
                        }
                        line_bytes += record.line.len();
                        out.push(record);
                        if out.len() >= max_records {
                            return Ok(out);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Records that the server stored `stream`'s records up to `seq`, then deletes every
    /// segment whose records are all acknowledged. An ack below an earlier one changes
    /// nothing; an ack beyond the last appended record is taken as acknowledging all of them.
    pub fn ack(&mut self, stream: &str, seq: u64) -> Result<(), BufferError> {
        let s = stream_mut(&mut self.streams, stream)?;
        let acked = seq.min(s.next_seq - 1).max(s.acked);
        if acked == s.acked && !s.dirty {
            return Ok(());
        }
        let previous = std::mem::replace(&mut s.acked, acked);
        // The state goes first: a crash between the two leaves acknowledged segments, which
        // the next open deletes, never segments deleted while the state still wants them.
        if let Err(e) = s.persist() {
            s.acked = previous;
            return Err(e);
        }
        s.delete_acked_segments(&mut self.total_bytes)
    }

    /// Deletes `stream` (its directory and everything the buffer knows of it, including its
    /// last cursor) if every kept record is acknowledged, and says whether it did. An unknown
    /// stream is not removed. For streams whose source is gone, such as a removed container.
    pub fn remove_stream(&mut self, stream: &str) -> Result<bool, BufferError> {
        let Some(s) = self.streams.get(stream) else {
            return Ok(false);
        };
        if s.unacked() > 0 {
            return Ok(false);
        }
        let tombstone = self
            .root
            .join(format!("{}{REMOVING_SUFFIX}", encode_key(stream)));
        // A rename is atomic, so a crash leaves the stream either whole or marked for
        // deletion, never a directory with segments and no state.
        remove_dir_if_exists(&tombstone)?;
        fs::rename(&s.dir, &tombstone).map_err(io_error("rename", &s.dir))?;
        if let Some(s) = self.streams.remove(stream) {
            self.total_bytes = self.total_bytes.saturating_sub(s.bytes());
        }
        if let Err(e) = fs::remove_dir_all(&tombstone) {
            // The stream is already gone as far as the buffer is concerned; the next open
            // finishes the deletion.
            tracing::warn!(
                path = %tombstone.display(),
                error = %e,
                "cannot delete a removed log stream's directory yet"
            );
        }
        Ok(true)
    }

    /// The cursor of the most recently appended record of `stream`, so a collector can
    /// resume right after the last line it buffered. It survives a restart and the deletion
    /// of every segment; `None` for an unknown stream or one that never took a record.
    pub fn last_cursor(&self, stream: &str) -> Option<Vec<u8>> {
        self.streams.get(stream)?.last_cursor.clone()
    }

    /// The state of `stream`, or `None` if there is no such stream.
    pub fn status(&self, stream: &str) -> Option<StreamStatus> {
        self.streams.get(stream).map(Stream::status)
    }

    /// The state of every stream, ordered by key.
    pub fn streams(&self) -> Vec<StreamStatus> {
        self.streams.values().map(Stream::status).collect()
    }

    /// The bytes all segment files take together; never more than
    /// [`BufferConfig::max_bytes`].
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Writes the state of every stream whose dropped count changed since its state was
    /// last written ([`FullPolicy::DropNewest`] refusals are not written one by one). Dropping
    /// the buffer does the same, logging failures.
    pub fn flush(&mut self) -> Result<(), BufferError> {
        for s in self.streams.values_mut().filter(|s| s.dirty) {
            s.persist()?;
        }
        Ok(())
    }

    /// Deletes the oldest segments until `record_len` more bytes fit, never the segment the
    /// record will be appended to while anything else is left.
    fn make_room(&mut self, target: &str, record_len: u64) -> Result<(), BufferError> {
        let segment_bytes = self.config.segment_bytes;
        while self.total_bytes + record_len > self.config.max_bytes {
            let protected = self
                .streams
                .get(target)
                .and_then(|s| s.append_target(record_len, segment_bytes));
            let victim = self
                .streams
                .iter()
                .filter_map(|(key, s)| {
                    let front = s.segments.front()?;
                    let is_protected = key == target && protected == Some(front.first_seq);
                    (!is_protected).then_some((front.first_time, key))
                })
                .min()
                .map(|(_, key)| key.clone());
            let key = match (victim, protected) {
                (Some(key), _) => key,
                // Only the segment being appended to is left: drop it and start afresh.
                (None, Some(_)) => target.to_owned(),
                // Nothing left to drop; the record fits an empty buffer, so the accounting
                // is what is off, and refusing the record would not fix it.
                (None, None) => break,
            };
            let s = stream_mut(&mut self.streams, &key)?;
            let lost = s.drop_front_segment(&mut self.total_bytes)?;
            tracing::warn!(
                stream = %key,
                records = lost,
                "log buffer full: dropped the stream's oldest segment"
            );
        }
        Ok(())
    }
}

impl Drop for LogBuffer {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "cannot write the log buffer's dropped counts");
        }
    }
}

/// The state file's name in a stream directory.
const STATE_FILE: &str = "stream.json";
/// Where the state file is written before it is renamed over `STATE_FILE`.
const STATE_TMP: &str = "stream.json.tmp";
/// The suffix of a stream directory being removed.
const REMOVING_SUFFIX: &str = ".removing";
/// The version of `stream.json` and of the segment format this code writes.
const STATE_FORMAT: u32 = 1;
/// `len` and `crc` before each payload.
const HEADER_BYTES: usize = 8;
/// The payload's fixed fields: seq, time, source_len, cursor_len, line_len.
const FIXED_PAYLOAD_BYTES: usize = 8 + 8 + 1 + 2 + 4;
/// The largest payload a valid record has; a larger length is garbage, not an allocation.
const MAX_PAYLOAD_BYTES: usize =
    FIXED_PAYLOAD_BYTES + MAX_SOURCE_BYTES + MAX_CURSOR_BYTES + MAX_LINE_BYTES;
/// The read buffer for segments.
const READ_BUFFER: usize = 64 * 1024;

/// `stream.json`.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: u32,
    /// The stream key, for an operator reading the file (the directory name is its hex).
    key: String,
    meta: StreamMeta,
    acked: u64,
    next_seq: u64,
    dropped: u64,
    #[serde(default)]
    last_cursor_hex: Option<String>,
    #[serde(default)]
    last_time_unix_nanos: Option<i64>,
    /// The stream's incarnation: made when the stream is created, so a stream created again
    /// under the same key (its state was lost) is told apart from the old one.
    #[serde(default)]
    epoch: String,
}

/// A segment file as the buffer tracks it.
#[derive(Debug, Clone, Copy)]
struct Segment {
    first_seq: u64,
    /// The file's length: every byte of it is a whole record.
    bytes: u64,
    /// The time of its first record, which orders segments for `DropOldest`.
    first_time: i64,
}

/// One stream, in memory.
#[derive(Debug)]
struct Stream {
    key: String,
    dir: PathBuf,
    meta: StreamMeta,
    acked: u64,
    next_seq: u64,
    dropped: u64,
    last_cursor: Option<Vec<u8>>,
    last_time: Option<i64>,
    epoch: String,
    /// Kept segments, by ascending first sequence number.
    segments: VecDeque<Segment>,
    /// The last segment, opened for appending; opened on the first append after open or a
    /// roll, closed when the segment is deleted.
    active: Option<File>,
    /// Whether the last segment ends just before `next_seq`, so appends may continue it. Not
    /// so when records at its end were lost (a torn tail after a power loss, a failed write):
    /// the next append starts a new segment rather than leave a gap inside one.
    appendable: bool,
    /// Whether `dropped` changed since `stream.json` was last written.
    dirty: bool,
}

impl Stream {
    /// Creates the directory and state of a new stream.
    fn create(root: &Path, key: &str, meta: &StreamMeta) -> Result<Self, BufferError> {
        let dir = root.join(encode_key(key));
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let mut stream = Self {
            key: key.to_owned(),
            dir,
            meta: meta.clone(),
            acked: 0,
            next_seq: 1,
            dropped: 0,
            last_cursor: None,
            last_time: None,
            epoch: new_epoch(),
            segments: VecDeque::new(),
            active: None,
            appendable: false,
            dirty: false,
        };
        stream.persist()?;
        Ok(stream)
    }

    /// Loads a stream directory, repairing the tail of its newest segment. `None` when the
    /// directory holds nothing (created, then the agent stopped before its first write), in
    /// which case it is deleted.
    fn load(key: String, dir: PathBuf) -> Result<Option<Self>, BufferError> {
        remove_file_if_exists(&dir.join(STATE_TMP))?;
        let mut seqs = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error("list", &dir))? {
            let entry = entry.map_err(io_error("list", &dir))?;
            let name = entry.file_name();
            match name.to_str().and_then(parse_segment_name) {
                Some(seq) => seqs.push(seq),
                None if name == STATE_FILE => {}
                None => tracing::warn!(
                    path = %entry.path().display(),
                    "ignoring a file that is not part of the log buffer"
                ),
            }
        }
        seqs.sort_unstable();

        let state_path = dir.join(STATE_FILE);
        let state = match fs::read(&state_path) {
            Ok(bytes) => parse_state(&state_path, &key, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && seqs.is_empty() => {
                fs::remove_dir_all(&dir).map_err(io_error("delete", &dir))?;
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The buffer writes the state before any segment, so this is someone else's
                // doing; the records are still worth shipping.
                tracing::warn!(
                    path = %state_path.display(),
                    "a log stream has segments but no state; its metadata is lost"
                );
                LoadedState {
                    meta: StreamMeta {
                        kind: "unknown".to_owned(),
                        container_id: None,
                        container_name: None,
                    },
                    acked: 0,
                    next_seq: 1,
                    dropped: 0,
                    last_cursor: None,
                    last_time: None,
                    epoch: new_epoch(),
                }
            }
            Err(source) => {
                return Err(BufferError::Io {
                    action: "read",
                    path: state_path,
                    source,
                });
            }
        };

        let mut stream = Self {
            key,
            dir,
            meta: state.meta,
            acked: state.acked,
            next_seq: state.next_seq.max(1),
            dropped: state.dropped,
            last_cursor: state.last_cursor,
            last_time: state.last_time,
            epoch: state.epoch,
            segments: VecDeque::new(),
            active: None,
            appendable: false,
            dirty: false,
        };

        // Only the newest segment can end in a torn record: older ones were complete before
        // the next was started. An empty newest segment is deleted and the one before it
        // becomes the newest.
        let mut newest = None;
        while let Some(first_seq) = seqs.pop() {
            let path = stream.segment_path(first_seq);
            let scan = scan_segment(&path, first_seq)?;
            if let Some(reason) = &scan.torn {
                tracing::warn!(
                    path = %path.display(),
                    valid_bytes = scan.valid_bytes,
                    reason = %reason,
                    "truncating a torn record at the end of a log buffer segment"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_error("open", &path))?;
                file.set_len(scan.valid_bytes)
                    .map_err(io_error("truncate", &path))?;
            }
            match scan.last {
                Some(last) => {
                    newest = Some((
                        first_seq,
                        scan.count,
                        scan.valid_bytes,
                        scan.first_time,
                        last,
                    ));
                    break;
                }
                None => remove_file_if_exists(&path)?,
            }
        }
        for first_seq in seqs {
            let path = stream.segment_path(first_seq);
            let bytes = fs::metadata(&path)
                .map_err(io_error("inspect", &path))?
                .len();
            if bytes == 0 {
                remove_file_if_exists(&path)?;
                continue;
            }
            let first_time = match first_record(&path)? {
                Some(record) => record.time_unix_nanos,
                None => {
                    tracing::warn!(
                        path = %path.display(),
                        "the first record of a log buffer segment is corrupt; it will be the first dropped"
                    );
                    i64::MIN
                }
            };
            stream.segments.push_back(Segment {
                first_seq,
                bytes,
                first_time,
            });
        }
        let mut segments_end = None;
        if let Some((first_seq, count, bytes, first_time, last)) = newest {
            stream.segments.push_back(Segment {
                first_seq,
                bytes,
                first_time,
            });
            let end = first_seq + count;
            // The newest record on disk wins over the state, unless the state knows of later
            // records (lost from a torn tail after a power loss).
            if end >= stream.next_seq {
                stream.next_seq = end;
                stream.last_cursor = Some(last.cursor);
                stream.last_time = Some(last.time_unix_nanos);
            }
            segments_end = Some(end);
        }
        // Sequence numbers up to `acked` are stored by the server: never hand them out again.
        stream.next_seq = stream.next_seq.max(stream.acked.saturating_add(1));
        stream.appendable = segments_end == Some(stream.next_seq);
        let mut freed = 0;
        stream.delete_acked_segments(&mut freed)?;
        Ok(Some(stream))
    }

    fn segment_path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(format!("{first_seq:020}.seg"))
    }

    /// The sequence number of the last record of segment `index`.
    fn segment_end(&self, index: usize) -> u64 {
        match self.segments.get(index + 1) {
            Some(next) => next.first_seq - 1,
            None => self.next_seq - 1,
        }
    }

    fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn unacked(&self) -> u64 {
        let first_kept = self.segments.front().map_or(self.next_seq, |s| s.first_seq);
        (self.next_seq - 1).saturating_sub(self.acked.max(first_kept - 1))
    }

    fn status(&self) -> StreamStatus {
        StreamStatus {
            key: self.key.clone(),
            meta: self.meta.clone(),
            acked: self.acked,
            next_seq: self.next_seq,
            dropped: self.dropped,
            unacked: self.unacked(),
            last_cursor: self.last_cursor.clone(),
            last_time_unix_nanos: self.last_time,
            bytes: self.bytes(),
            segments: self.segments.len(),
            epoch: self.epoch.clone(),
        }
    }

    /// The first sequence number of the segment a record of `record_len` bytes would be
    /// appended to, or `None` if it would start a new segment.
    fn append_target(&self, record_len: u64, segment_bytes: u64) -> Option<u64> {
        let last = self.segments.back()?;
        (self.appendable && (last.bytes == 0 || last.bytes + record_len <= segment_bytes))
            .then_some(last.first_seq)
    }

    /// Writes one encoded record, starting a new segment when the last one is full.
    fn write(
        &mut self,
        bytes: &[u8],
        record: &NewRecord<'_>,
        segment_bytes: u64,
    ) -> Result<(), BufferError> {
        let record_len = bytes.len() as u64;
        let (first_seq, previous_len, fresh) = match self.append_target(record_len, segment_bytes) {
            Some(first_seq) => (
                first_seq,
                self.segments.back().map_or(0, |s| s.bytes),
                false,
            ),
            None => (self.next_seq, 0, true),
        };
        let path = self.segment_path(first_seq);
        if fresh {
            self.active = None;
        }
        let file = match &mut self.active {
            Some(file) => file,
            None => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(io_error("open", &path))?;
                if fresh {
                    // A file by this name can only be what a failed write left behind.
                    file.set_len(0).map_err(io_error("truncate", &path))?;
                }
                self.active.insert(file)
            }
        };
        // One write of the whole record, not a buffered writer: when this returns, the
        // kernel has the record, and the caller may take it as stored.
        if let Err(source) = file.write_all(bytes) {
            // A partial record would sit in the middle of the segment once later records
            // follow it; cut it off, or failing that, continue in a new segment.
            if file.set_len(previous_len).is_err() {
                self.active = None;
                self.appendable = false;
            }
            return Err(BufferError::Io {
                action: "append to",
                path,
                source,
            });
        }
        if fresh {
            self.segments.push_back(Segment {
                first_seq,
                bytes: 0,
                first_time: record.time_unix_nanos,
            });
            self.appendable = true;
        }
        if let Some(last) = self.segments.back_mut() {
            last.bytes += record_len;
        }
        self.next_seq += 1;
        self.last_cursor = Some(record.cursor.to_vec());
        self.last_time = Some(record.time_unix_nanos);
        Ok(())
    }

    /// Deletes the oldest segment, counting its unacknowledged records as dropped, and
    /// returns how many that was.
    fn drop_front_segment(&mut self, total_bytes: &mut u64) -> Result<u64, BufferError> {
        let Some(front) = self.segments.front().copied() else {
            return Ok(0);
        };
        let end = self.segment_end(0);
        let lost = end.saturating_sub(self.acked.max(front.first_seq - 1));
        self.dropped += lost;
        // Before the delete: if this is the stream's last segment, the state must already
        // hold the next sequence number and last cursor it took with it.
        if let Err(e) = self.persist() {
            self.dropped -= lost;
            return Err(e);
        }
        self.delete_front(front, total_bytes)?;
        Ok(lost)
    }

    /// Deletes every segment whose records are all acknowledged.
    fn delete_acked_segments(&mut self, total_bytes: &mut u64) -> Result<(), BufferError> {
        while let Some(front) = self.segments.front().copied() {
            if self.segment_end(0) > self.acked {
                break;
            }
            self.delete_front(front, total_bytes)?;
        }
        Ok(())
    }

    fn delete_front(&mut self, front: Segment, total_bytes: &mut u64) -> Result<(), BufferError> {
        remove_file_if_exists(&self.segment_path(front.first_seq))?;
        self.segments.pop_front();
        if self.segments.is_empty() {
            self.active = None;
        }
        *total_bytes = total_bytes.saturating_sub(front.bytes);
        Ok(())
    }

    /// Writes `stream.json`: to a temporary file, synced, then renamed over the old one, so a
    /// crash leaves the old state or the new one.
    fn persist(&mut self) -> Result<(), BufferError> {
        let state = StateFile {
            format: STATE_FORMAT,
            key: self.key.clone(),
            meta: self.meta.clone(),
            acked: self.acked,
            next_seq: self.next_seq,
            dropped: self.dropped,
            last_cursor_hex: self.last_cursor.as_deref().map(hex),
            last_time_unix_nanos: self.last_time,
            epoch: self.epoch.clone(),
        };
        let path = self.dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(&state).map_err(|e| BufferError::Corrupt {
            path: path.clone(),
            reason: format!("cannot encode the state: {e}"),
        })?;
        let tmp = self.dir.join(STATE_TMP);
        let mut file = File::create(&tmp).map_err(io_error("create", &tmp))?;
        file.write_all(&json).map_err(io_error("write", &tmp))?;
        file.sync_all().map_err(io_error("sync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_error("replace", &path))?;
        self.dirty = false;
        Ok(())
    }
}

/// `stream.json`, checked and decoded.
struct LoadedState {
    meta: StreamMeta,
    acked: u64,
    next_seq: u64,
    dropped: u64,
    last_cursor: Option<Vec<u8>>,
    last_time: Option<i64>,
    epoch: String,
}

/// A new stream incarnation's name: 16 random hex digits.
fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn parse_state(path: &Path, key: &str, bytes: &[u8]) -> Result<LoadedState, BufferError> {
    let corrupt = |reason: String| BufferError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let state: StateFile = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if state.format != STATE_FORMAT {
        return Err(corrupt(format!(
            "format {} is not supported (this agent writes {STATE_FORMAT})",
            state.format
        )));
    }
    if state.key != key {
        return Err(corrupt(format!(
            "it names the stream {:?}, but its directory is that of {key:?}",
            state.key
        )));
    }
    let last_cursor = match &state.last_cursor_hex {
        Some(text) => Some(
            unhex(text).ok_or_else(|| corrupt(format!("last_cursor_hex {text:?} is not hex")))?,
        ),
        None => None,
    };
    Ok(LoadedState {
        meta: state.meta,
        acked: state.acked,
        next_seq: state.next_seq,
        dropped: state.dropped,
        last_cursor,
        last_time: state.last_time_unix_nanos,
        // A state written before epochs existed gets one now (and keeps it).
        epoch: if state.epoch.is_empty() {
            new_epoch()
        } else {
            state.epoch
        },
    })
}

fn stream_mut<'a>(
    streams: &'a mut BTreeMap<String, Stream>,
    key: &str,
) -> Result<&'a mut Stream, BufferError> {
    streams
        .get_mut(key)
        .ok_or_else(|| BufferError::UnknownStream {
            stream: key.to_owned(),
        })
}

fn validate_key(key: &str) -> Result<(), BufferError> {
    let reason = if key.is_empty() {
        "it is empty"
    } else if key.len() > MAX_STREAM_KEY_BYTES {
        "it is longer than 100 bytes"
    } else {
        return Ok(());
    };
    Err(BufferError::InvalidStreamKey {
        stream: key.to_owned(),
        reason,
    })
}

fn validate_record(stream: &str, record: &NewRecord<'_>) -> Result<(), BufferError> {
    if record.line.len() > MAX_LINE_BYTES {
        return Err(BufferError::RecordTooLarge {
            stream: stream.to_owned(),
            bytes: record.line.len(),
            max: MAX_LINE_BYTES as u64,
        });
    }
    for (field, bytes, max) in [
        ("source", record.source.len(), MAX_SOURCE_BYTES),
        ("cursor", record.cursor.len(), MAX_CURSOR_BYTES),
    ] {
        if bytes > max {
            return Err(BufferError::FieldTooLong {
                stream: stream.to_owned(),
                field,
                bytes,
                max,
            });
        }
    }
    Ok(())
}

/// The size of `record` encoded, header included.
fn encoded_len(record: &NewRecord<'_>) -> usize {
    HEADER_BYTES
        + FIXED_PAYLOAD_BYTES
        + record.source.len()
        + record.cursor.len()
        + record.line.len()
}

/// Encodes a record checked by `validate_record`, so the length casts cannot truncate.
fn encode_record(seq: u64, record: &NewRecord<'_>) -> Vec<u8> {
    let len = encoded_len(record);
    let mut buf = Vec::with_capacity(len);
    buf.extend_from_slice(&((len - HEADER_BYTES) as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&record.time_unix_nanos.to_le_bytes());
    buf.push(record.source.len() as u8);
    buf.extend_from_slice(record.source.as_bytes());
    buf.extend_from_slice(&(record.cursor.len() as u16).to_le_bytes());
    buf.extend_from_slice(record.cursor);
    buf.extend_from_slice(&(record.line.len() as u32).to_le_bytes());
    buf.extend_from_slice(record.line);
    let crc = crc32(&buf[HEADER_BYTES..]);
    buf[4..HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// What reading one record gave.
enum Decoded {
    /// A valid record and its encoded size.
    Record(BufferedRecord, u64),
    /// The end of the data, at a record boundary.
    End,
    /// A short or corrupt record, and why.
    Torn(String),
}

fn read_record(reader: &mut impl Read) -> io::Result<Decoded> {
    let mut header = [0u8; HEADER_BYTES];
    match read_full(reader, &mut header)? {
        0 => return Ok(Decoded::End),
        HEADER_BYTES => {}
        n => return Ok(Decoded::Torn(format!("only {n} bytes of a record header"))),
    }
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if !(FIXED_PAYLOAD_BYTES..=MAX_PAYLOAD_BYTES).contains(&len) {
        return Ok(Decoded::Torn(format!(
            "record length {len} is out of range"
        )));
    }
    let mut payload = vec![0u8; len];
    let got = read_full(reader, &mut payload)?;
    if got < len {
        return Ok(Decoded::Torn(format!(
            "only {got} of {len} bytes of a record"
        )));
    }
    if crc32(&payload) != crc {
        return Ok(Decoded::Torn("checksum mismatch".to_owned()));
    }
    Ok(match decode_payload(&payload) {
        Some(record) => Decoded::Record(record, (HEADER_BYTES + len) as u64),
        None => Decoded::Torn("record fields do not match its length".to_owned()),
    })
}

fn decode_payload(payload: &[u8]) -> Option<BufferedRecord> {
    let mut rest = payload;
    let seq = u64::from_le_bytes(take_array(&mut rest)?);
    let time_unix_nanos = i64::from_le_bytes(take_array(&mut rest)?);
    let [source_len] = take_array::<1>(&mut rest)?;
    let source = String::from_utf8(take(&mut rest, usize::from(source_len))?.to_vec()).ok()?;
    let cursor_len = u16::from_le_bytes(take_array(&mut rest)?);
    let cursor = take(&mut rest, usize::from(cursor_len))?.to_vec();
    let line_len = u32::from_le_bytes(take_array(&mut rest)?) as usize;
    let line = take(&mut rest, line_len)?.to_vec();
    rest.is_empty().then_some(BufferedRecord {
        seq,
        time_unix_nanos,
        source,
        cursor,
        line,
    })
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

fn take_array<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    take(rest, N)?.try_into().ok()
}

/// Reads until `buf` is full or the data ends, and returns how many bytes it read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// What a check of a whole segment found.
struct Scan {
    /// The length of the run of valid records from the start.
    valid_bytes: u64,
    count: u64,
    first_time: i64,
    last: Option<BufferedRecord>,
    /// Why the records stop before the end of the file, if they do.
    torn: Option<String>,
}

/// Reads a segment from the start, stopping at the first torn record or at a record whose
/// sequence number does not follow from the file's name.
fn scan_segment(path: &Path, first_seq: u64) -> Result<Scan, BufferError> {
    let file = File::open(path).map_err(io_error("open", path))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let mut scan = Scan {
        valid_bytes: 0,
        count: 0,
        first_time: 0,
        last: None,
        torn: None,
    };
    loop {
        match read_record(&mut reader).map_err(io_error("read", path))? {
            Decoded::End => break,
            Decoded::Torn(reason) => {
                scan.torn = Some(format!("at byte {}: {reason}", scan.valid_bytes));
                break;
            }
            Decoded::Record(record, size) => {
                let expected = first_seq + scan.count;
                if record.seq != expected {
                    scan.torn = Some(format!(
                        "at byte {}: the record has seq {} where {expected} was expected",
                        scan.valid_bytes, record.seq
                    ));
                    break;
                }
                if scan.count == 0 {
                    scan.first_time = record.time_unix_nanos;
                }
                scan.valid_bytes += size;
                scan.count += 1;
                scan.last = Some(record);
            }
        }
    }
    Ok(scan)
}

/// The first record of a segment, or `None` if it is torn.
fn first_record(path: &Path) -> Result<Option<BufferedRecord>, BufferError> {
    let file = File::open(path).map_err(io_error("open", path))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    match read_record(&mut reader).map_err(io_error("read", path))? {
        Decoded::Record(record, _) => Ok(Some(record)),
        Decoded::End | Decoded::Torn(_) => Ok(None),
    }
}

/// The sequence number a segment file's name gives: 20 decimal digits, then `.seg`.
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&seq| seq > 0)
}

/// The directory name of a stream: lowercase hex of its key's bytes, so any key, with `/`,
/// `..` or anything else in it, names a directory right under the root.
fn encode_key(key: &str) -> String {
    hex(key.as_bytes())
}

/// The key of a stream directory, if the name is one `encode_key` makes.
fn decode_key(name: &str) -> Option<String> {
    String::from_utf8(unhex(name)?)
        .ok()
        .filter(|key| validate_key(key).is_ok())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes lowercase hex only, so every byte string has exactly one directory name.
fn unhex(text: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The CRC-32/IEEE table (reflected polynomial 0xEDB88320), built at compile time.
const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// CRC-32/IEEE, as zlib and PNG compute it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BufferError {
    move |source| BufferError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn remove_file_if_exists(path: &Path) -> Result<(), BufferError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(BufferError::Io {
            action: "delete",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn remove_dir_if_exists(path: &Path) -> Result<(), BufferError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(BufferError::Io {
            action: "delete",
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;

    fn meta() -> StreamMeta {
        StreamMeta {
            kind: "container".to_owned(),
            container_id: Some("3f2a".to_owned()),
            container_name: Some("web".to_owned()),
        }
    }

    fn config(max_bytes: u64, segment_bytes: u64, when_full: FullPolicy) -> BufferConfig {
        BufferConfig {
            max_bytes,
            segment_bytes,
            when_full,
        }
    }

    /// The encoded size of a record made by `append_n` (line `line-NNNN`, cursor `cNNNN`).
    const N_RECORD: u64 = (HEADER_BYTES + FIXED_PAYLOAD_BYTES + 6 + 5 + 9) as u64;

    fn line(n: u64) -> Vec<u8> {
        format!("line-{n:04}").into_bytes()
    }

    fn cursor(n: u64) -> Vec<u8> {
        format!("c{n:04}").into_bytes()
    }

    /// Appends records `from..=to` of a stream (time `n`, line `line-n`, cursor `cn`).
    fn append_n(buffer: &mut LogBuffer, stream: &str, from: u64, to: u64) -> Vec<Option<u64>> {
        (from..=to)
            .map(|n| {
                buffer
                    .append(
                        stream,
                        &meta(),
                        NewRecord {
                            time_unix_nanos: i64::try_from(n).unwrap(),
                            source: "stdout",
                            cursor: &cursor(n),
                            line: &line(n),
                        },
                    )
                    .unwrap()
            })
            .collect()
    }

    fn read_all(buffer: &LogBuffer, stream: &str, after: u64) -> Vec<BufferedRecord> {
        buffer.read(stream, after, usize::MAX, usize::MAX).unwrap()
    }

    fn seqs(records: &[BufferedRecord]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    fn stream_dir(root: &Path, key: &str) -> PathBuf {
        root.join(encode_key(key))
    }

    fn segment_files(root: &Path, key: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(stream_dir(root, key))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn full_policy_parses_its_display_and_names_a_bad_value() {
        for policy in [FullPolicy::DropOldest, FullPolicy::DropNewest] {
            assert_eq!(policy.to_string().parse::<FullPolicy>(), Ok(policy));
        }
        assert_eq!(FullPolicy::default(), FullPolicy::DropOldest);
        let err = "drop_all".parse::<FullPolicy>().unwrap_err();
        assert!(err.to_string().contains("\"drop_all\""), "{err}");
    }

    #[test]
    fn invalid_sizes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (max, segment) in [(0, 0), (100, 0), (100, 200)] {
            let err = LogBuffer::open(dir.path(), config(max, segment, FullPolicy::DropOldest))
                .unwrap_err();
            assert!(matches!(err, BufferError::InvalidConfig { .. }), "{err}");
        }
    }

    #[test]
    fn sequence_numbers_start_at_one_and_increase_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = LogBuffer::open(dir.path(), BufferConfig::default()).unwrap();
        assert_eq!(
            append_n(&mut buffer, "a", 1, 3),
            [Some(1), Some(2), Some(3)]
        );
        assert_eq!(append_n(&mut buffer, "b", 1, 2), [Some(1), Some(2)]);
        assert_eq!(append_n(&mut buffer, "a", 4, 4), [Some(4)]);
        let records = read_all(&buffer, "a", 0);
        assert_eq!(seqs(&records), [1, 2, 3, 4]);
        assert_eq!(
            records[1],
            BufferedRecord {
                seq: 2,
                time_unix_nanos: 2,
                source: "stdout".to_owned(),
                cursor: cursor(2),
                line: line(2),
            }
        );
        let status = buffer.status("b").unwrap();
        assert_eq!((status.next_seq, status.acked, status.unacked), (3, 0, 2));
        assert_eq!(status.meta, meta());
        assert_eq!(buffer.total_bytes(), 6 * N_RECORD);
    }

    #[test]
    fn read_honours_after_seq_and_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = LogBuffer::open(
            dir.path(),
            config(1 << 20, 3 * N_RECORD, FullPolicy::DropOldest),
        )
        .unwrap();
        append_n(&mut buffer, "s", 1, 10);
        assert_eq!(buffer.status("s").unwrap().segments, 4);
        assert_eq!(seqs(&read_all(&buffer, "s", 4)), [5, 6, 7, 8, 9, 10]);
        assert_eq!(
            seqs(&buffer.read("s", 2, 3, usize::MAX).unwrap()),
            [3, 4, 5]
        );
        // Lines are 9 bytes: 20 bytes take two of them, not a third.
        assert_eq!(seqs(&buffer.read("s", 0, 100, 20).unwrap()), [1, 2]);
        // The first record is returned even when it alone is over the limit.
        assert_eq!(seqs(&buffer.read("s", 6, 100, 1).unwrap()), [7]);
        assert!(read_all(&buffer, "s", 10).is_empty());
        assert!(buffer.read("s", 0, 0, usize::MAX).unwrap().is_empty());
        assert!(matches!(
            buffer.read("nope", 0, 1, 1),
            Err(BufferError::UnknownStream { .. })
        ));
    }

    #[test]
    fn ack_deletes_fully_acknowledged_segments_and_reading_continues() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = LogBuffer::open(
            dir.path(),
            config(1 << 20, 3 * N_RECORD, FullPolicy::DropOldest),
        )
        .unwrap();
        append_n(&mut buffer, "s", 1, 10);
        assert_eq!(segment_files(dir.path(), "s").len(), 4);

        buffer.ack("s", 5).unwrap();
        // Segments 1-3 go; 4-6 still holds record 6.
        assert_eq!(segment_files(dir.path(), "s").len(), 3);
        assert_eq!(seqs(&read_all(&buffer, "s", 5)), [6, 7, 8, 9, 10]);
        assert_eq!(buffer.status("s").unwrap().unacked, 5);
        assert_eq!(buffer.total_bytes(), 7 * N_RECORD);

        // A lower ack changes nothing; one past the end acknowledges everything.
        buffer.ack("s", 2).unwrap();
        assert_eq!(buffer.status("s").unwrap().acked, 5);
        buffer.ack("s", 1_000).unwrap();
        let status = buffer.status("s").unwrap();
        assert_eq!((status.acked, status.unacked, status.segments), (10, 0, 0));
        assert!(segment_files(dir.path(), "s").is_empty());
        assert_eq!(buffer.total_bytes(), 0);

        assert_eq!(append_n(&mut buffer, "s", 11, 11), [Some(11)]);
        assert_eq!(seqs(&read_all(&buffer, "s", 10)), [11]);
        assert!(matches!(
            buffer.ack("nope", 1),
            Err(BufferError::UnknownStream { .. })
        ));
    }

    #[test]
    fn reopening_gives_back_the_same_records_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(1 << 20, 3 * N_RECORD, FullPolicy::DropOldest);
        let (records, status) = {
            let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
            append_n(&mut buffer, "s", 1, 8);
            buffer.ack("s", 4).unwrap();
            append_n(&mut buffer, "s", 9, 9);
            (read_all(&buffer, "s", 0), buffer.status("s").unwrap())
        };
        let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(read_all(&buffer, "s", 0), records);
        assert_eq!(buffer.status("s").unwrap(), status);
        assert_eq!(buffer.last_cursor("s"), Some(cursor(9)));
        assert_eq!(buffer.total_bytes(), status.bytes);
        assert_eq!(append_n(&mut buffer, "s", 10, 10), [Some(10)]);
    }

    #[test]
    fn last_cursor_survives_every_segment_being_acknowledged_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(1 << 20, 3 * N_RECORD, FullPolicy::DropOldest);
        {
            let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
            assert_eq!(buffer.last_cursor("s"), None);
            append_n(&mut buffer, "s", 1, 7);
            buffer.ack("s", 7).unwrap();
            assert!(segment_files(dir.path(), "s").is_empty());
            assert_eq!(buffer.last_cursor("s"), Some(cursor(7)));
        }
        let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(buffer.last_cursor("s"), Some(cursor(7)));
        let status = buffer.status("s").unwrap();
        assert_eq!((status.next_seq, status.acked), (8, 7));
        assert_eq!(status.last_time_unix_nanos, Some(7));
        assert_eq!(append_n(&mut buffer, "s", 8, 8), [Some(8)]);
    }

    #[test]
    fn a_torn_tail_is_truncated_and_earlier_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(1 << 20, 3 * N_RECORD, FullPolicy::DropOldest);
        {
            let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
            append_n(&mut buffer, "s", 1, 5);
        }
        let last = segment_files(dir.path(), "s").pop().unwrap();
        let file = OpenOptions::new().write(true).open(&last).unwrap();
        file.set_len(2 * N_RECORD - 3).unwrap();
        drop(file);

        let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(seqs(&read_all(&buffer, "s", 0)), [1, 2, 3, 4]);
        assert_eq!(buffer.last_cursor("s"), Some(cursor(4)));
        assert_eq!(fs::metadata(&last).unwrap().len(), N_RECORD);
        // Record 5 never finished its write, so its number is given again.
        assert_eq!(append_n(&mut buffer, "s", 5, 6), [Some(5), Some(6)]);
        assert_eq!(seqs(&read_all(&buffer, "s", 0)), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn garbage_after_the_last_record_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BufferConfig::default();
        {
            let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
            append_n(&mut buffer, "s", 1, 3);
        }
        let last = segment_files(dir.path(), "s").pop().unwrap();
        let mut file = OpenOptions::new().append(true).open(&last).unwrap();
        // A plausible header (length 40) followed by bytes that do not match its checksum.
        file.write_all(&[40, 0, 0, 0, 1, 2, 3, 4]).unwrap();
        file.write_all(&[0xab; 40]).unwrap();
        drop(file);

        let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(fs::metadata(&last).unwrap().len(), 3 * N_RECORD);
        assert_eq!(buffer.total_bytes(), 3 * N_RECORD);
        assert_eq!(append_n(&mut buffer, "s", 4, 4), [Some(4)]);
        assert_eq!(seqs(&read_all(&buffer, "s", 0)), [1, 2, 3, 4]);
    }

    #[test]
    fn an_empty_newest_segment_is_removed_and_the_one_before_continues() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(1 << 20, 3 * N_RECORD, FullPolicy::DropOldest);
        {
            let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
            append_n(&mut buffer, "s", 1, 4);
        }
        let last = segment_files(dir.path(), "s").pop().unwrap();
        fs::write(&last, b"\x01\x02").unwrap();

        let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        assert!(!last.exists());
        assert_eq!(buffer.last_cursor("s"), Some(cursor(3)));
        assert_eq!(append_n(&mut buffer, "s", 4, 4), [Some(4)]);
        assert_eq!(seqs(&read_all(&buffer, "s", 0)), [1, 2, 3, 4]);
    }

    #[test]
    fn corruption_inside_an_older_segment_skips_the_rest_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(1 << 20, 3 * N_RECORD, FullPolicy::DropOldest);
        {
            let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
            append_n(&mut buffer, "s", 1, 6);
        }
        let first = segment_files(dir.path(), "s").remove(0);
        let mut bytes = fs::read(&first).unwrap();
        // The last byte of record 2's line.
        let at = usize::try_from(2 * N_RECORD - 1).unwrap();
        bytes[at] ^= 0xff;
        fs::write(&first, bytes).unwrap();

        let buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(seqs(&read_all(&buffer, "s", 0)), [1, 4, 5, 6]);
        assert_eq!(seqs(&read_all(&buffer, "s", 1)), [4, 5, 6]);
    }

    #[test]
    fn drop_oldest_stays_under_the_limit_and_counts_what_it_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(9 * N_RECORD, 3 * N_RECORD, FullPolicy::DropOldest);
        let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        for n in 1..=20 {
            assert_eq!(append_n(&mut buffer, "s", n, n), [Some(n)]);
            assert!(buffer.total_bytes() <= cfg.max_bytes);
        }
        let status = buffer.status("s").unwrap();
        let records = read_all(&buffer, "s", 0);
        let first_kept = records[0].seq;
        assert!(first_kept > 1, "nothing was dropped");
        assert_eq!(seqs(&records), (first_kept..=20).collect::<Vec<_>>());
        assert_eq!(status.dropped, first_kept - 1);
        assert_eq!(status.unacked, 20 - first_kept + 1);
        // The shipper's position fell among dropped records: it goes on from what is kept.
        assert_eq!(read_all(&buffer, "s", 2)[0].seq, first_kept);
        // Acknowledged records are not counted as dropped.
        buffer.ack("s", 19).unwrap();
        append_n(&mut buffer, "s", 21, 30);
        let status = buffer.status("s").unwrap();
        assert!(buffer.total_bytes() <= cfg.max_bytes);
        assert_eq!(
            status.dropped,
            first_kept - 1 + (read_all(&buffer, "s", 0)[0].seq - 20)
        );
        drop(buffer);
        let buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(buffer.status("s").unwrap(), status);
    }

    #[test]
    fn drop_oldest_takes_the_segment_with_the_oldest_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(6 * N_RECORD, 3 * N_RECORD, FullPolicy::DropOldest);
        let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        append_n(&mut buffer, "old", 1, 3);
        append_n(&mut buffer, "new", 4, 6);
        // Full: the next record of "new" must push out "old"'s segment, not its own.
        append_n(&mut buffer, "new", 7, 7);
        assert!(read_all(&buffer, "old", 0).is_empty());
        assert_eq!(buffer.status("old").unwrap().dropped, 3);
        assert_eq!(buffer.last_cursor("old"), Some(cursor(3)));
        assert_eq!(seqs(&read_all(&buffer, "new", 0)), [1, 2, 3, 4]);
        assert_eq!(buffer.status("new").unwrap().dropped, 0);
        // A dropped stream's numbering continues.
        assert_eq!(append_n(&mut buffer, "old", 8, 8), [Some(4)]);
    }

    #[test]
    fn drop_newest_refuses_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(3 * N_RECORD, 3 * N_RECORD, FullPolicy::DropNewest);
        {
            let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
            assert_eq!(
                append_n(&mut buffer, "s", 1, 5),
                [Some(1), Some(2), Some(3), None, None]
            );
            let status = buffer.status("s").unwrap();
            assert_eq!((status.dropped, status.next_seq), (2, 4));
            // A refused record is not buffered, so the collector's resume point stays put.
            assert_eq!(buffer.last_cursor("s"), Some(cursor(3)));
            assert_eq!(seqs(&read_all(&buffer, "s", 0)), [1, 2, 3]);
            buffer.ack("s", 3).unwrap();
            assert_eq!(append_n(&mut buffer, "s", 6, 6), [Some(4)]);
            assert_eq!(append_n(&mut buffer, "s", 7, 9), [Some(5), Some(6), None]);
        }
        // The last refusal was never written by an ack; dropping the buffer wrote it.
        let buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        assert_eq!(buffer.status("s").unwrap().dropped, 3);
    }

    #[test]
    fn hostile_stream_keys_stay_inside_the_root() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("buffer");
        let keys = ["../../etc/passwd", "..", "/", "a/b", ".", "ключ/🙂", "x\0y"];
        {
            let mut buffer = LogBuffer::open(&root, BufferConfig::default()).unwrap();
            for key in keys {
                assert_eq!(append_n(&mut buffer, key, 1, 1), [Some(1)], "{key:?}");
            }
        }
        let outside: Vec<_> = fs::read_dir(parent.path()).unwrap().collect();
        assert_eq!(outside.len(), 1);
        for entry in fs::read_dir(&root).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(name.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        }
        let buffer = LogBuffer::open(&root, BufferConfig::default()).unwrap();
        let mut expected: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        expected.sort();
        let found: Vec<String> = buffer.streams().into_iter().map(|s| s.key).collect();
        assert_eq!(found, expected);
        for key in keys {
            assert_eq!(read_all(&buffer, key, 0)[0].line, line(1));
        }
    }

    #[test]
    fn bad_keys_and_oversized_records_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(1000, 1000, FullPolicy::DropOldest);
        let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
        let record = |line: &'static [u8]| NewRecord {
            time_unix_nanos: 0,
            source: "stdout",
            cursor: b"",
            line,
        };
        let long_key = "k".repeat(MAX_STREAM_KEY_BYTES + 1);
        for key in ["", long_key.as_str()] {
            let err = buffer.append(key, &meta(), record(b"x")).unwrap_err();
            assert!(matches!(err, BufferError::InvalidStreamKey { .. }), "{err}");
        }
        let err = buffer
            .append("s", &meta(), record(&[b'x'; 2000]))
            .unwrap_err();
        assert!(
            matches!(err, BufferError::RecordTooLarge { bytes, max: 1000, .. } if bytes > 2000),
            "{err}"
        );
        let huge = vec![b'x'; MAX_LINE_BYTES + 1];
        let err = buffer
            .append(
                "s",
                &meta(),
                NewRecord {
                    line: &huge,
                    ..record(b"")
                },
            )
            .unwrap_err();
        assert!(matches!(err, BufferError::RecordTooLarge { .. }), "{err}");
        let source = "s".repeat(MAX_SOURCE_BYTES + 1);
        let err = buffer
            .append(
                "s",
                &meta(),
                NewRecord {
                    source: &source,
                    ..record(b"")
                },
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                BufferError::FieldTooLong {
                    field: "source",
                    ..
                }
            ),
            "{err}"
        );
        let long_cursor = vec![b'c'; MAX_CURSOR_BYTES + 1];
        let err = buffer
            .append(
                "s",
                &meta(),
                NewRecord {
                    cursor: &long_cursor,
                    ..record(b"")
                },
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                BufferError::FieldTooLong {
                    field: "cursor",
                    ..
                }
            ),
            "{err}"
        );
        assert!(buffer.status("s").is_none());
    }

    #[test]
    fn new_metadata_replaces_the_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        let renamed = StreamMeta {
            container_name: Some("web-2".to_owned()),
            ..meta()
        };
        {
            let mut buffer = LogBuffer::open(dir.path(), BufferConfig::default()).unwrap();
            append_n(&mut buffer, "s", 1, 1);
            buffer
                .append(
                    "s",
                    &renamed,
                    NewRecord {
                        time_unix_nanos: 2,
                        source: "stderr",
                        cursor: b"",
                        line: b"x",
                    },
                )
                .unwrap();
        }
        let buffer = LogBuffer::open(dir.path(), BufferConfig::default()).unwrap();
        assert_eq!(buffer.status("s").unwrap().meta, renamed);
    }

    #[test]
    fn remove_stream_waits_for_every_record_to_be_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = LogBuffer::open(dir.path(), BufferConfig::default()).unwrap();
        append_n(&mut buffer, "gone", 1, 3);
        append_n(&mut buffer, "kept", 1, 1);
        assert!(!buffer.remove_stream("gone").unwrap());
        assert!(!buffer.remove_stream("never").unwrap());
        buffer.ack("gone", 3).unwrap();
        assert!(buffer.remove_stream("gone").unwrap());
        assert!(buffer.status("gone").is_none());
        assert!(!stream_dir(dir.path(), "gone").exists());
        assert_eq!(buffer.total_bytes(), N_RECORD);
        drop(buffer);
        let buffer = LogBuffer::open(dir.path(), BufferConfig::default()).unwrap();
        let keys: Vec<String> = buffer.streams().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, ["kept"]);
    }

    #[test]
    fn an_interrupted_removal_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut buffer = LogBuffer::open(dir.path(), BufferConfig::default()).unwrap();
            append_n(&mut buffer, "s", 1, 2);
        }
        let tombstone = dir
            .path()
            .join(format!("{}{REMOVING_SUFFIX}", encode_key("s")));
        fs::rename(stream_dir(dir.path(), "s"), &tombstone).unwrap();
        let buffer = LogBuffer::open(dir.path(), BufferConfig::default()).unwrap();
        assert!(buffer.streams().is_empty());
        assert!(!tombstone.exists());
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut buffer = LogBuffer::open(dir.path(), BufferConfig::default()).unwrap();
            append_n(&mut buffer, "s", 1, 1);
        }
        let state = stream_dir(dir.path(), "s").join(STATE_FILE);
        fs::write(&state, b"{ not json").unwrap();
        let err = LogBuffer::open(dir.path(), BufferConfig::default()).unwrap_err();
        assert!(
            matches!(&err, BufferError::Corrupt { path, .. } if *path == state),
            "{err}"
        );
    }

    /// One step of the model test.
    #[derive(Debug, Clone)]
    enum Op {
        Append {
            stream: usize,
            len: usize,
            fill: u8,
        },
        /// Acknowledge the first `permille` thousandths of what was appended.
        Ack {
            stream: usize,
            permille: u64,
        },
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..3usize, 0..3000usize, any::<u8>())
                .prop_map(|(stream, len, fill)| Op::Append { stream, len, fill }),
            2 => (0..3usize, 0..=1000u64).prop_map(|(stream, permille)| Op::Ack { stream, permille }),
            1 => Just(Op::Reopen),
        ]
    }

    const MODEL_KEYS: [&str; 3] = ["container:a", "docker:events", "nginx/../access"];

    /// What a stream should hold: every appended record by sequence number, and the ack.
    #[derive(Debug, Default)]
    struct ModelStream {
        records: Vec<BufferedRecord>,
        acked: u64,
    }

    fn check_against_model(
        buffer: &LogBuffer,
        model: &BTreeMap<usize, ModelStream>,
    ) -> Result<(), TestCaseError> {
        for (index, expected) in model {
            let key = MODEL_KEYS[*index];
            let status = buffer.status(key).unwrap();
            prop_assert_eq!(status.next_seq, expected.records.len() as u64 + 1);
            prop_assert_eq!(status.acked, expected.acked);
            prop_assert_eq!(status.dropped, 0);
            prop_assert_eq!(
                buffer.last_cursor(key),
                expected.records.last().map(|r| r.cursor.clone())
            );
            // Read in small pages, as the shipper does, from the ack onwards.
            let mut got = Vec::new();
            let mut after = expected.acked;
            loop {
                let page = buffer.read(key, after, 7, 5000).unwrap();
                let Some(last) = page.last() else { break };
                after = last.seq;
                got.extend(page);
            }
            let unacked = usize::try_from(expected.acked).unwrap();
            prop_assert_eq!(&got[..], &expected.records[unacked..]);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_unacknowledged_record_is_read_once_in_order_across_reopens(
            ops in proptest::collection::vec(op(), 1..60)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let cfg = config(1 << 30, 4096, FullPolicy::DropOldest);
            let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
            let mut model: BTreeMap<usize, ModelStream> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Append { stream, len, fill } => {
                        let entry = model.entry(stream).or_default();
                        let seq = entry.records.len() as u64 + 1;
                        let record = BufferedRecord {
                            seq,
                            time_unix_nanos: i64::try_from(seq).unwrap() * 1000,
                            source: if len % 2 == 0 { "stdout" } else { "stderr" }.to_owned(),
                            cursor: format!("{stream}:{seq}").into_bytes(),
                            line: (0..len).map(|i| fill.wrapping_add(i as u8)).collect(),
                        };
                        let got = buffer.append(MODEL_KEYS[stream], &meta(), NewRecord {
                            time_unix_nanos: record.time_unix_nanos,
                            source: &record.source,
                            cursor: &record.cursor,
                            line: &record.line,
                        }).unwrap();
                        prop_assert_eq!(got, Some(seq));
                        entry.records.push(record);
                    }
                    Op::Ack { stream, permille } => {
                        if let Some(entry) = model.get_mut(&stream) {
                            let seq = entry.records.len() as u64 * permille / 1000;
                            buffer.ack(MODEL_KEYS[stream], seq).unwrap();
                            entry.acked = entry.acked.max(seq);
                        }
                    }
                    Op::Reopen => {
                        drop(buffer);
                        buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
                    }
                }
                check_against_model(&buffer, &model)?;
            }
            let on_disk: u64 = MODEL_KEYS
                .iter()
                .filter_map(|key| fs::read_dir(stream_dir(dir.path(), key)).ok())
                .flatten()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "seg"))
                .map(|p| fs::metadata(p).unwrap().len())
                .sum();
            prop_assert_eq!(buffer.total_bytes(), on_disk);
        }

        #[test]
        fn truncating_the_newest_segment_anywhere_keeps_a_prefix(
            count in 1u64..12,
            cut in 0u64..1000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let cfg = config(1 << 20, 5 * N_RECORD, FullPolicy::DropOldest);
            {
                let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
                append_n(&mut buffer, "s", 1, count);
            }
            let last = segment_files(dir.path(), "s").pop().unwrap();
            let len = fs::metadata(&last).unwrap().len();
            let keep = cut % (len + 1);
            OpenOptions::new().write(true).open(&last).unwrap().set_len(keep).unwrap();

            let mut buffer = LogBuffer::open(dir.path(), cfg.clone()).unwrap();
            let kept = seqs(&read_all(&buffer, "s", 0));
            let n = kept.len() as u64;
            prop_assert_eq!(&kept, &(1..=n).collect::<Vec<_>>());
            prop_assert!(n <= count && count - n <= 5);
            prop_assert_eq!(buffer.last_cursor("s"), (n > 0).then(|| cursor(n)));
            prop_assert_eq!(append_n(&mut buffer, "s", n + 1, n + 1), [Some(n + 1)]);
        }
    }
}
