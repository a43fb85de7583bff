//! Level and timestamp detection for one application log line.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::level::Level;
use super::timestamp::{leading_timestamp, parse_rfc3339};

/// What could be told about one log line.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct LineInfo {
    /// The line's level, [`Level::Unknown`] if none was found.
    pub level: Level,
    /// The line's own timestamp in unix milliseconds, when it starts with one (or carries one
    /// in a JSON time field).
    pub unix_millis: Option<i64>,
}

/// Looks at one log line (arbitrary bytes, read as lossy UTF-8) and tells its level and
/// timestamp. Never panics.
///
/// Understood shapes, tried in this order:
/// - JSON objects: the level from `level`, `lvl`, `severity`, `levelname`, `log.level` (flat
///   or nested) — names, single letters (`"E"`) or bunyan/pino numbers (10–60); the time from
///   `time`, `timestamp`, `ts`, `@timestamp` (RFC 3339, or epoch seconds or milliseconds).
///   Without a level field, the `msg`/`message`/`log` text is examined as below.
/// - An optional leading RFC 3339 timestamp (also inside `[…]`), then: a syslog `<N>`
///   prefix, glog (`W1122 10:00:00.123 …`), logfmt (`level=warn`), a bracketed level
///   (`[ERROR]`, `[2026-… INFO app]`), logrus text (`WARN[0000]`), or a level word: the first
///   word in any case (`error: …`, `INFO msg`), or a later upper-case word among the first
///   few (`… - app - ERROR - …`, postgres `… [1] FATAL:  …`, python `WARNING:root:…`).
pub fn analyze_line(line: &[u8]) -> LineInfo {
    let text = String::from_utf8_lossy(line);
    analyze_text(text.trim(), 0)
}

/// The level alone; see [`analyze_line`].
pub fn detect_level(line: &[u8]) -> Level {
    analyze_line(line).level
}

/// Words examined for an upper-case level after the first one.
const WORDS_LOOKED_AT: usize = 6;
/// How far into a line a bracketed level is looked for, in bytes.
const BRACKET_REACH: usize = 160;
/// How deep JSON-in-JSON (a message field holding a JSON line) is followed.
const MAX_DEPTH: u8 = 2;

fn analyze_text(text: &str, depth: u8) -> LineInfo {
    if text.starts_with('{')
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text)
    {
        return analyze_json(&map, depth);
    }
    let (unix_millis, rest) = match leading_time(text) {
        Some((ms, rest)) => (Some(ms), rest),
        None => (None, text),
    };
    let level = level_in_text(text, rest).unwrap_or_default();
    LineInfo { level, unix_millis }
}

/// A timestamp at the start, bare or in brackets, and the text after it.
fn leading_time(text: &str) -> Option<(i64, &str)> {
    if let Some((ms, len)) = leading_timestamp(text) {
        return Some((ms, text.get(len..)?.trim_start()));
    }
    let inner = text.strip_prefix('[')?;
    let (ms, len) = leading_timestamp(inner)?;
    let after = inner.get(len..)?;
    // `[2026-… INFO app] msg`: keep the rest of the bracket, it may hold the level.
    let after = after.strip_prefix(']').unwrap_or(after);
    Some((ms, after.trim_start()))
}

fn level_in_text(whole: &str, rest: &str) -> Option<Level> {
    syslog_prefix(rest)
        .or_else(|| glog(whole))
        .or_else(|| logfmt(rest))
        .or_else(|| bracketed(rest))
        .or_else(|| level_word(rest))
}

/// `<3>message`.
fn syslog_prefix(text: &str) -> Option<Level> {
    let b = text.as_bytes();
    match (b.first(), b.get(1), b.get(2)) {
        (Some(b'<'), Some(d @ b'0'..=b'7'), Some(b'>')) => Level::from_syslog(d - b'0'),
        _ => None,
    }
}

/// `I1122 10:00:00.123456    1 main.go:42] message`.
fn glog(text: &str) -> Option<Level> {
    let b = text.as_bytes();
    let level = match b.first()? {
        b'I' => Level::Info,
        b'W' => Level::Warn,
        b'E' => Level::Error,
        b'F' => Level::Fatal,
        _ => return None,
    };
    let shape = b.get(1..5)?.iter().all(u8::is_ascii_digit)
        && b.get(5) == Some(&b' ')
        && super::timestamp::clock(b, 6).is_some();
    shape.then_some(level)
}

/// `level=warn`, `lvl="error"`, `severity=info` as a logfmt key at a word start.
fn logfmt(text: &str) -> Option<Level> {
    for key in ["level=", "lvl=", "severity=", "loglevel="] {
        let mut from = 0;
        while let Some(found) = text.get(from..).and_then(|t| t.find(key)) {
            let at = from + found;
            from = at + key.len();
            let boundary = at == 0 || text.get(..at).is_some_and(|p| p.ends_with([' ', '\t']));
            if !boundary {
                continue;
            }
            let value = text.get(from..).unwrap_or_default();
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or_default(),
                None => value.split([' ', '\t']).next().unwrap_or_default(),
            };
            if let Some(level) = Level::from_name(value, true) {
                return Some(level);
            }
        }
    }
    None
}

/// `[ERROR]`, `[warn]`, `[Note]`, `[2026-… INFO  app]`: a level word inside brackets near the
/// start.
fn bracketed(text: &str) -> Option<Level> {
    let reach = floor_char_boundary(text, BRACKET_REACH);
    let mut rest = text.get(..reach)?;
    while let Some(open) = rest.find('[') {
        let after = rest.get(open + 1..)?;
        let close = after.find(']')?;
        let inside = after.get(..close)?;
        for word in inside.split([' ', '\t', '|', ':']) {
            if let Some(level) = Level::from_name(word, false) {
                return Some(level);
            }
        }
        rest = after.get(close + 1..)?;
    }
    None
}

/// A level word: the first word in any case, or an upper-case word among the next few.
fn level_word(text: &str) -> Option<Level> {
    for (i, word) in text
        .split_whitespace()
        .take(WORDS_LOOKED_AT + 1)
        .enumerate()
    {
        // logrus `WARN[0000]`, python `ERROR:root:msg`, `error:`, `- ERROR -`.
        let word = word.split(['[', ':', '|']).next().unwrap_or_default();
        let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        let upper = word.len() >= 3 && word.bytes().all(|b| b.is_ascii_uppercase());
        if i > 0 && !upper {
            continue;
        }
        // `log`/`note` are too common as ordinary first words in lower case.
        if !upper && matches!(word.to_ascii_lowercase().as_str(), "log" | "note" | "alert") {
            continue;
        }
        if let Some(level) = Level::from_name(word, false) {
            return Some(level);
        }
    }
    None
}

fn analyze_json(map: &Map<String, Value>, depth: u8) -> LineInfo {
    let unix_millis = ["time", "timestamp", "ts", "@timestamp"]
        .iter()
        .find_map(|k| map.get(*k).and_then(json_time));
    let nested = map.get("log").and_then(|l| l.get("level"));
    let level = [
        "level",
        "lvl",
        "severity",
        "levelname",
        "log.level",
        "loglevel",
    ]
    .iter()
    .filter_map(|k| map.get(*k))
    .chain(nested)
    .find_map(json_level);
    let level = level.or_else(|| {
        if depth >= MAX_DEPTH {
            return None;
        }
        ["msg", "message", "log"]
            .iter()
            .find_map(|k| match map.get(*k) {
                Some(Value::String(s)) => {
                    let level = analyze_text(s.trim(), depth + 1).level;
                    (level != Level::Unknown).then_some(level)
                }
                _ => None,
            })
    });
    LineInfo {
        level: level.unwrap_or_default(),
        unix_millis,
    }
}

fn json_level(value: &Value) -> Option<Level> {
    match value {
        Value::String(s) => Level::from_name(s, true)
            .or_else(|| s.trim().parse::<f64>().ok().and_then(Level::from_number)),
        Value::Number(n) => n.as_f64().and_then(Level::from_number),
        _ => None,
    }
}

/// Epoch numbers above this are milliseconds, below it seconds (1e11 s is in the year 5138).
const MILLIS_THRESHOLD: f64 = 1e11;
/// The latest time accepted from a number, in milliseconds (the year 9999).
const MAX_MILLIS: f64 = 253_402_300_799_999.0;

fn json_time(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => parse_rfc3339(s.trim()),
        Value::Number(n) => {
            let n = n.as_f64()?;
            let ms = if n.abs() >= MILLIS_THRESHOLD {
                n
            } else {
                n * 1000.0
            };
            #[allow(clippy::cast_possible_truncation)]
            (ms.is_finite() && ms.abs() <= MAX_MILLIS).then(|| ms.floor() as i64)
        }
        _ => None,
    }
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

/// Lossy UTF-8 of a byte line, without the trailing newline.
pub(super) fn lossy(line: &[u8]) -> Cow<'_, str> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T: i64 = 1_795_341_600_000;

    fn check(line: &str, level: Level, millis: Option<i64>) {
        let got = analyze_line(line.as_bytes());
        assert_eq!(
            got,
            LineInfo {
                level,
                unix_millis: millis
            },
            "{line}"
        );
    }

    #[test]
    fn json_lines() {
        // pino / bunyan
        check(
            r#"{"level":30,"time":1795341600000,"pid":1,"hostname":"api","msg":"listening"}"#,
            Level::Info,
            Some(T),
        );
        check(
            r#"{"level":50,"time":1795341600123,"msg":"request failed","err":{"type":"Error"}}"#,
            Level::Error,
            Some(T + 123),
        );
        // Go zap production JSON: ts in float seconds.
        check(
            r#"{"level":"warn","ts":1795341600.5,"caller":"main.go:12","msg":"slow query"}"#,
            Level::Warn,
            Some(T + 500),
        );
        // logrus JSON, ECS, GCP-style severity, single letters, python-json-logger.
        check(
            r#"{"level":"error","msg":"boom","time":"2026-11-22T10:00:00Z"}"#,
            Level::Error,
            Some(T),
        );
        check(
            r#"{"@timestamp":"2026-11-22T10:00:00.000Z","log.level":"WARNING","message":"disk"}"#,
            Level::Warn,
            Some(T),
        );
        check(
            r#"{"log":{"level":"debug"},"message":"x"}"#,
            Level::Debug,
            None,
        );
        check(
            r#"{"severity":"CRITICAL","message":"x"}"#,
            Level::Fatal,
            None,
        );
        check(r#"{"lvl":"E","msg":"x"}"#, Level::Error, None);
        check(
            r#"{"levelname":"INFO","asctime":"2026-11-22 10:00:00,000","message":"x"}"#,
            Level::Info,
            None,
        );
        // Docker json-file wrapper: look inside the log text.
        check(
            r#"{"log":"2026-11-22T10:00:00Z ERROR db down\n","stream":"stderr","time":"2026-11-22T10:00:01Z"}"#,
            Level::Error,
            Some(T + 1000),
        );
        check(r#"{"msg":"no level here"}"#, Level::Unknown, None);
        // Not JSON after all: falls back to text.
        check(r#"{broken ERROR"#, Level::Error, None);
    }

    #[test]
    fn text_lines() {
        check("2026-11-22T10:00:00Z INFO msg", Level::Info, Some(T));
        check(
            "2026-11-22T10:00:00.123456789Z WARN [main] cache miss",
            Level::Warn,
            Some(T + 123),
        );
        check(
            "time=\"2026-11-22T10:00:00Z\" level=warning msg=\"disk almost full\"",
            Level::Warn,
            None,
        );
        check(
            "ts=2026-11-22T10:00:00Z lvl=error caller=x.go:1 msg=failed",
            Level::Error,
            None,
        );
        check("[ERROR] something broke", Level::Error, None);
        check(
            "2026-11-22T10:00:00Z [warn] something",
            Level::Warn,
            Some(T),
        );
        check(
            "[2026-11-22T10:00:00Z INFO  my_app] started",
            Level::Info,
            Some(T),
        );
        check(
            "W1122 10:00:00.123456       1 reflector.go:42] watch closed",
            Level::Warn,
            None,
        );
        check(
            "E1122 10:00:00.123456       1 main.go:1] failed",
            Level::Error,
            None,
        );
        check(
            "ERROR: relation \"users\" does not exist",
            Level::Error,
            None,
        );
        check("error: cannot open file", Level::Error, None);
        check("WARNING:root:low disk", Level::Warn, None);
        check(
            "2026-11-22 10:00:00,123 - app.db - ERROR - connection lost",
            Level::Error,
            Some(T + 123),
        );
        check(
            "INFO:     127.0.0.1:5000 - \"GET / HTTP/1.1\" 200 OK",
            Level::Info,
            None,
        );
        check(
            "time=\"2026-11-22T10:00:00Z\" level=info msg=\"ok\"",
            Level::Info,
            None,
        );
        check("WARN[0000] deprecated flag", Level::Warn, None);
        check("<3>kernel: oops", Level::Error, None);
        // postgres
        check(
            "2026-11-22 10:00:00.123 UTC [1] LOG:  database system is ready to accept connections",
            Level::Info,
            Some(T + 123),
        );
        check(
            "2026-11-22 10:00:00.123 UTC [42] FATAL:  password authentication failed for user \"app\"",
            Level::Fatal,
            Some(T + 123),
        );
        check(
            "2026-11-22 10:00:00.123 UTC [42] ERROR:  duplicate key value violates unique constraint",
            Level::Error,
            Some(T + 123),
        );
        // mysql
        check(
            "2026-11-22T10:00:00.000000Z 0 [Warning] [MY-011070] [Server] 'Disabling symbolic links' is deprecated",
            Level::Warn,
            Some(T),
        );
        // nginx error log and docker entrypoint
        check(
            "2026/11/22 10:00:00 [error] 29#29: *1 open() failed",
            Level::Error,
            None,
        );
        check(
            "/docker-entrypoint.sh: Configuration complete; ready for start up",
            Level::Unknown,
            None,
        );
        // Words that only look like levels.
        check("GET /info 200", Level::Unknown, None);
        check("the error rate is fine", Level::Unknown, None);
        check("log rotation started", Level::Unknown, None);
        check("", Level::Unknown, None);
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = analyze_line(&bytes);
        }

        #[test]
        fn never_panics_on_near_lines(
            prefix in prop::sample::select(vec!["{\"level\":", "[", "2026-11-22T10:00:00Z ", "level=", "W1122 10:00:00", "<3>", "{\"msg\":\"{\\\"level\\\":", ""]),
            rest in "\\PC{0,60}",
        ) {
            let line = format!("{prefix}{rest}");
            let _ = analyze_line(line.as_bytes());
        }

        #[test]
        fn json_level_fields_are_found(level in prop::sample::select(vec![Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error, Level::Fatal]), key in prop::sample::select(vec!["level", "lvl", "severity", "log.level"]), msg in "\\PC{0,30}") {
            let line = serde_json::json!({ key: level.as_str(), "msg": msg }).to_string();
            prop_assert_eq!(analyze_line(line.as_bytes()).level, level);
        }
    }
}
