//! nginx error log lines.

use serde::{Deserialize, Serialize};

use super::error::LogParseError;
use super::level::Level;
use super::line::lossy;
use super::timestamp::{clock, days_from_civil, digits};

/// One line of nginx's error log, e.g.
/// `2026/11/22 10:00:00 [error] 123#0: *4 connect() failed (111: Connection refused) while
/// connecting to upstream, client: 172.18.0.1, server: app.example, request: "GET / HTTP/1.1",
/// upstream: "http://172.18.0.5:80/", host: "app.example"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NginxErrorEntry {
    /// The time, in unix milliseconds. nginx writes local time without a zone; it is read
    /// as UTC, the usual clock of a container.
    pub unix_millis: i64,
    /// The normalized level (`notice` is info; `crit`, `alert` and `emerg` are fatal).
    pub level: Level,
    /// nginx's own level word (`notice`, `crit`, …).
    pub nginx_level: String,
    /// The worker process id.
    pub pid: u32,
    /// The thread id.
    pub tid: u64,
    /// The connection number (`*4`), when the message is about a connection.
    pub connection: Option<u64>,
    /// The message, without the trailing `client:`/`server:`/… fields.
    pub message: String,
    /// The client address.
    pub client: Option<String>,
    /// The `server_name` that handled the request.
    pub server: Option<String>,
    /// The request line.
    pub request: Option<String>,
    /// The upstream URL.
    pub upstream: Option<String>,
    /// The `Host` header.
    pub host: Option<String>,
    /// The `Referer` header.
    pub referrer: Option<String>,
}

/// The trailing fields nginx appends to a message, in the order it writes them.
const FIELDS: [&str; 7] = [
    "client",
    "server",
    "request",
    "subrequest",
    "upstream",
    "host",
    "referrer",
];

/// The same fields as they appear in a line, `, key: `.
const MARKERS: [&str; 7] = [
    ", client: ",
    ", server: ",
    ", request: ",
    ", subrequest: ",
    ", upstream: ",
    ", host: ",
    ", referrer: ",
];

/// Parses one nginx error log line. Never panics.
pub fn parse_error_line(line: &[u8]) -> Result<NginxErrorEntry, LogParseError> {
    const FORMAT: &str = "nginx error log";
    let text = lossy(line);
    let text = text.trim();
    let bad = |reason| LogParseError::malformed(FORMAT, reason, text);
    let b = text.as_bytes();
    let date_ok = b.get(4) == Some(&b'/') && b.get(7) == Some(&b'/') && b.get(10) == Some(&b' ');
    let (year, month, day) = (digits(b, 0, 4), digits(b, 5, 2), digits(b, 8, 2));
    let (Some(year), Some(month), Some(day), true) = (year, month, day, date_ok) else {
        return Err(bad("no yyyy/mm/dd date"));
    };
    let (h, m, s) = clock(b, 11).ok_or_else(|| bad("no hh:mm:ss time"))?;
    let days = days_from_civil(year, month, day).ok_or_else(|| bad("no such date"))?;
    let unix_millis = (days * 86_400 + h * 3600 + m * 60 + s) * 1000;

    let rest = text.get(19..).unwrap_or_default().trim_start();
    let rest = rest.strip_prefix('[').ok_or_else(|| bad("no [level]"))?;
    let (nginx_level, rest) = rest.split_once(']').ok_or_else(|| bad("no [level]"))?;
    let level = Level::from_name(nginx_level, false).ok_or_else(|| bad("unknown level"))?;
    let (ids, rest) = rest
        .trim_start()
        .split_once(": ")
        .ok_or_else(|| bad("no pid#tid"))?;
    let (pid, tid) = ids.split_once('#').ok_or_else(|| bad("no pid#tid"))?;
    let (pid, tid) = match (pid.parse(), tid.parse()) {
        (Ok(pid), Ok(tid)) => (pid, tid),
        _ => return Err(bad("pid#tid are not numbers")),
    };
    let (connection, rest) = match rest.strip_prefix('*').and_then(|r| r.split_once(' ')) {
        Some((n, after)) if n.parse::<u64>().is_ok() => (n.parse().ok(), after),
        _ => (None, rest),
    };

    let mut entry = NginxErrorEntry {
        unix_millis,
        level,
        nginx_level: nginx_level.to_owned(),
        pid,
        tid,
        connection,
        ..NginxErrorEntry::default()
    };
    let fields_at = first_marker(rest);
    entry.message = rest.get(..fields_at).unwrap_or(rest).to_owned();
    let mut tail = rest.get(fields_at..).unwrap_or_default();
    while let Some((key, value, after)) = next_field(tail) {
        let value = Some(value.to_owned());
        match key {
            "client" => entry.client = value,
            "server" => entry.server = value,
            "request" => entry.request = value,
            "upstream" => entry.upstream = value,
            "host" => entry.host = value,
            "referrer" => entry.referrer = value,
            _ => {}
        }
        tail = after;
    }
    Ok(entry)
}

/// Reads `, key: value` (the value quoted or not) off the front of `tail`. A value runs to
/// the next `, <known key>: ` or the end, so a quote or comma inside it does no harm.
fn next_field(tail: &str) -> Option<(&str, &str, &str)> {
    let after_comma = tail.strip_prefix(", ")?;
    let (key, rest) = after_comma.split_once(": ")?;
    if !FIELDS.contains(&key) {
        return None;
    }
    let end = first_marker(rest);
    let (raw, after) = rest.split_at_checked(end)?;
    let value = raw
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(raw);
    Some((key, value, after))
}

/// Where the first trailing field starts, or the end.
fn first_marker(text: &str) -> usize {
    MARKERS
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .unwrap_or(text.len())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T: i64 = 1_795_341_600_000;

    #[test]
    fn error_lines() {
        let got = parse_error_line(
            br#"2026/11/22 10:00:00 [error] 123#0: *4 connect() failed (111: Connection refused) while connecting to upstream, client: 172.18.0.1, server: app.example, request: "GET /api HTTP/1.1", upstream: "http://172.18.0.5:80/api", host: "app.example", referrer: "https://app.example/""#,
        )
        .unwrap();
        assert_eq!(
            got,
            NginxErrorEntry {
                unix_millis: T,
                level: Level::Error,
                nginx_level: "error".into(),
                pid: 123,
                tid: 0,
                connection: Some(4),
                message: "connect() failed (111: Connection refused) while connecting to upstream"
                    .into(),
                client: Some("172.18.0.1".into()),
                server: Some("app.example".into()),
                request: Some("GET /api HTTP/1.1".into()),
                upstream: Some("http://172.18.0.5:80/api".into()),
                host: Some("app.example".into()),
                referrer: Some("https://app.example/".into()),
            }
        );

        let got = parse_error_line(b"2026/11/22 10:00:00 [notice] 1#1: start worker processes\n")
            .unwrap();
        assert_eq!(
            (got.level, got.pid, got.connection, got.message.as_str()),
            (Level::Info, 1, None, "start worker processes")
        );

        let got = parse_error_line(br#"2026/11/22 10:00:00 [warn] 22#22: *9 an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream, client: 10.0.0.1, server: _, request: "GET /big HTTP/1.1", upstream: "http://10.0.0.2:3000/big", host: "x.example""#).unwrap();
        assert_eq!(
            (got.level, got.server.as_deref(), got.host.as_deref()),
            (Level::Warn, Some("_"), Some("x.example"))
        );

        let got = parse_error_line(br#"2026/11/22 10:00:00 [crit] 7#7: *1 SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) while SSL handshaking, client: 192.0.2.1, server: 0.0.0.0:443"#).unwrap();
        assert_eq!(
            (got.level, got.client.as_deref(), got.server.as_deref()),
            (Level::Fatal, Some("192.0.2.1"), Some("0.0.0.0:443"))
        );

        // A request line holding a quote and a comma.
        let got = parse_error_line(br#"2026/11/22 10:00:00 [error] 5#5: *2 open() "/usr/share/nginx/html/a" failed (2: No such file or directory), client: 1.1.1.1, server: localhost, request: "GET /a",b" HTTP/1.1", host: "localhost""#).unwrap();
        assert_eq!(
            got.message,
            r#"open() "/usr/share/nginx/html/a" failed (2: No such file or directory)"#
        );
        assert_eq!(got.request.as_deref(), Some(r#"GET /a",b" HTTP/1.1"#));
        assert_eq!(got.host.as_deref(), Some("localhost"));

        for (line, reason) in [
            ("nginx: [emerg] unknown directive \"foo\"", "date"),
            ("2026/02/30 10:00:00 [error] 1#1: x", "no such date"),
            ("2026/11/22 10:00:00 [loud] 1#1: x", "level"),
            ("2026/11/22 10:00:00 [error] x: y", "pid#tid"),
        ] {
            let err = parse_error_line(line.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(reason), "{line}: {err}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_error_line(&bytes);
        }

        #[test]
        fn never_panics_on_near_lines(tail in "\\PC{0,80}", fields in prop::collection::vec((prop::sample::select(FIELDS.to_vec()), "\\PC{0,12}"), 0..4)) {
            let mut line = format!("2026/11/22 10:00:00 [error] 1#0: *3 {tail}");
            for (k, v) in fields {
                line.push_str(&format!(", {k}: {v}"));
            }
            let got = parse_error_line(line.as_bytes());
            prop_assert!(got.is_ok(), "{line}: {got:?}");
        }
    }
}
