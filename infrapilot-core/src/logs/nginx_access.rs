//! nginx access logs: the `combined` format and InfraPilot's JSON format.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cursor::Cursor;
use super::error::LogParseError;
use super::line::lossy;
use super::timestamp::{clock, days_from_civil, digits, parse_rfc3339};
use crate::ids::ProxyHostId;

/// The name InfraPilot gives its JSON access log format in `log_format`.
pub const NGINX_JSON_LOG_FORMAT_NAME: &str = "infrapilot_json";

/// The nginx variable each proxy host's `server` block sets to its [`ProxyHostId`]
/// (`set $infrapilot_proxy_host_id "<uuid>";`), so access log lines say which host they
/// belong to. A `server` without it logs an empty string.
pub const PROXY_HOST_ID_VARIABLE: &str = "infrapilot_proxy_host_id";

/// The body of InfraPilot's `log_format` directive, to be written as
/// `log_format infrapilot_json <this>;` in the `http` block and used with
/// `access_log /path infrapilot_json;`.
///
/// It makes nginx write one JSON object per line with `escape=json`, so every string is
/// valid JSON whatever the client sent. `status`, `body_bytes_sent` and `request_time` are
/// always numbers in nginx and are written as JSON numbers; `upstream_response_time` and
/// `upstream_addr` are strings because they may be empty or lists (`"0.004, 0.010"`).
/// [`parse_json_access`] reads exactly these keys.
pub const NGINX_JSON_LOG_FORMAT: &str = concat!(
    "escape=json '{",
    r#""time_iso8601":"$time_iso8601","#,
    r#""remote_addr":"$remote_addr","#,
    r#""host":"$host","#,
    r#""request_method":"$request_method","#,
    r#""uri":"$uri","#,
    r#""status":$status,"#,
    r#""body_bytes_sent":$body_bytes_sent,"#,
    r#""request_time":$request_time,"#,
    r#""upstream_response_time":"$upstream_response_time","#,
    r#""upstream_addr":"$upstream_addr","#,
    r#""http_referer":"$http_referer","#,
    r#""http_user_agent":"$http_user_agent","#,
    r#""proxy_host_id":"$infrapilot_proxy_host_id""#,
    "}'"
);

/// One request from an nginx access log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AccessLogEntry {
    /// When the request was logged, in unix milliseconds.
    pub unix_millis: Option<i64>,
    /// The client address.
    pub remote_addr: String,
    /// The basic-auth user, if any (combined format only).
    pub remote_user: Option<String>,
    /// The `Host` the request was for (JSON format only).
    pub host: Option<String>,
    /// The request method, when the request line could be read.
    pub method: Option<String>,
    /// The path (combined: as requested, with query; JSON: nginx's normalized `$uri`).
    pub path: Option<String>,
    /// The protocol (`HTTP/1.1`; combined format only).
    pub protocol: Option<String>,
    /// The response status.
    pub status: u16,
    /// Body bytes sent to the client.
    pub body_bytes_sent: u64,
    /// Time spent on the request, in milliseconds (JSON format only).
    pub request_time_millis: Option<u64>,
    /// Each upstream attempt's response time in milliseconds, `None` where nginx wrote `-`.
    /// Empty when no upstream was involved.
    pub upstream_response_millis: Vec<Option<u64>>,
    /// Each upstream attempt's address. Empty when no upstream was involved.
    pub upstream_addrs: Vec<String>,
    /// The `Referer` header.
    pub referer: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The proxy host that served the request (JSON format only).
    pub proxy_host_id: Option<ProxyHostId>,
}

impl AccessLogEntry {
    /// The total time spent waiting for upstreams, in milliseconds, over the attempts that
    /// reported a time; `None` if none did.
    pub fn upstream_millis(&self) -> Option<u64> {
        self.upstream_response_millis
            .iter()
            .flatten()
            .copied()
            .reduce(u64::saturating_add)
    }

    /// Whether the status is a 5xx.
    pub fn is_server_error(&self) -> bool {
        (500..600).contains(&self.status)
    }
}

/// Parses an access log line in either format: JSON if it starts with `{`, else combined.
/// Never panics.
pub fn parse_access_line(line: &[u8]) -> Result<AccessLogEntry, LogParseError> {
    if line.trim_ascii_start().starts_with(b"{") {
        parse_json_access(line)
    } else {
        parse_combined(line)
    }
}

/// Parses nginx's `combined` format:
/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent"`. Fields appended after the user agent are ignored;
/// a request line that is not `METHOD PATH PROTOCOL` (a TLS handshake sent to a plain port,
/// `-`) leaves method, path and protocol empty. Never panics.
pub fn parse_combined(line: &[u8]) -> Result<AccessLogEntry, LogParseError> {
    const FORMAT: &str = "nginx combined";
    let text = lossy(line);
    let text = text.trim();
    let bad = |reason| LogParseError::malformed(FORMAT, reason, text);
    let mut cur = Cursor::new(text);
    let remote_addr = cur.word().ok_or_else(|| bad("no client address"))?;
    let _ident = cur.word().ok_or_else(|| bad("no ident field"))?;
    let remote_user = cur.word().ok_or_else(|| bad("no user field"))?;
    let time = cur.delimited('[', ']').ok_or_else(|| bad("no [time]"))?;
    let unix_millis =
        Some(parse_time_local(time).ok_or_else(|| bad("time is not dd/Mon/yyyy:hh:mm:ss +zzzz"))?);
    let request = cur
        .delimited('"', '"')
        .ok_or_else(|| bad("no quoted request"))?;
    let status = cur
        .word()
        .and_then(parse_status)
        .ok_or_else(|| bad("no status"))?;
    let body_bytes_sent = match cur.word() {
        Some("-") | None => 0,
        Some(n) => n.parse().map_err(|_| bad("body size is not a number"))?,
    };
    let referer = cur.delimited('"', '"').and_then(dash_is_none);
    let user_agent = cur.delimited('"', '"').and_then(dash_is_none);
    let parts: Vec<&str> = request.split(' ').collect();
    let (method, path, protocol) = match parts.as_slice() {
        [m, p, v] if v.starts_with("HTTP/") => (Some(*m), Some(*p), Some(*v)),
        [m, p] => (Some(*m), Some(*p), None),
        _ => (None, None, None),
    };
    Ok(AccessLogEntry {
        unix_millis,
        remote_addr: remote_addr.to_owned(),
        remote_user: dash_is_none(remote_user),
        method: method.map(str::to_owned),
        path: path.map(str::to_owned),
        protocol: protocol.map(str::to_owned),
        status,
        body_bytes_sent,
        referer,
        user_agent,
        ..AccessLogEntry::default()
    })
}

/// Parses a line written with [`NGINX_JSON_LOG_FORMAT`]. `status` is required; other keys
/// may be missing, empty or `-`. Numbers are accepted as JSON numbers or strings. Never
/// panics.
pub fn parse_json_access(line: &[u8]) -> Result<AccessLogEntry, LogParseError> {
    const FORMAT: &str = "nginx JSON access";
    let text = lossy(line);
    let text = text.trim();
    let bad = |reason| LogParseError::malformed(FORMAT, reason, text);
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return Err(bad("not a JSON object"));
    };
    let str_of = |key: &str| match map.get(key) {
        Some(Value::String(s)) => dash_is_none(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let status = str_of("status")
        .as_deref()
        .and_then(parse_status)
        .ok_or_else(|| bad("no valid status"))?;
    // The renderer's own `log_format infrapilot` names a few keys more briefly than
    // NGINX_JSON_LOG_FORMAT; either spelling is read.
    let either = |long: &str, short: &str| str_of(long).or_else(|| str_of(short));
    let body_bytes_sent = either("body_bytes_sent", "bytes_sent")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let upstream_times = str_of("upstream_response_time").unwrap_or_default();
    Ok(AccessLogEntry {
        unix_millis: either("time_iso8601", "time")
            .as_deref()
            .and_then(parse_rfc3339),
        remote_addr: str_of("remote_addr").unwrap_or_default(),
        remote_user: None,
        host: str_of("host"),
        method: either("request_method", "method"),
        path: str_of("uri"),
        protocol: None,
        status,
        body_bytes_sent,
        request_time_millis: json_seconds(&map, "request_time"),
        upstream_response_millis: upstream_list(&upstream_times)
            .map(seconds_to_millis)
            .collect(),
        upstream_addrs: upstream_list(&str_of("upstream_addr").unwrap_or_default())
            .map(str::to_owned)
            .collect(),
        referer: str_of("http_referer"),
        user_agent: str_of("http_user_agent"),
        proxy_host_id: str_of("proxy_host_id").and_then(|s| s.parse().ok()),
    })
}

/// Splits nginx's upstream lists: attempts separated by `, `, internal redirects by ` : `.
fn upstream_list(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|part| !part.is_empty() && *part != ":")
}

fn json_seconds(map: &Map<String, Value>, key: &str) -> Option<u64> {
    match map.get(key)? {
        Value::String(s) => seconds_to_millis(s.trim()),
        Value::Number(n) => {
            let ms = (n.as_f64()? * 1000.0).round();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            (ms.is_finite() && (0.0..1e15).contains(&ms)).then_some(ms as u64)
        }
        _ => None,
    }
}

/// `"0.123"` → 123, `"2"` → 2000, `"-"` → `None`. Digits past milliseconds are dropped.
pub(super) fn seconds_to_millis(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || whole.len() > 12 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let millis = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |acc, d| acc * 10 + u64::from(d - b'0'));
    secs.checked_mul(1000)?.checked_add(millis)
}

fn parse_status(text: &str) -> Option<u16> {
    let status: u16 = text.parse().ok()?;
    (100..=999).contains(&status).then_some(status)
}

fn dash_is_none(text: &str) -> Option<String> {
    (!text.is_empty() && text != "-").then(|| text.to_owned())
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `22/Nov/2026:10:00:00 +0000` (nginx `$time_local`) → unix milliseconds.
fn parse_time_local(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let day = digits(b, 0, 2)?;
    let month_name = b.get(3..6)?;
    let month = MONTHS.iter().position(|m| m.as_slice() == month_name)?;
    let year = digits(b, 7, 4)?;
    if b.get(2) != Some(&b'/') || b.get(6) != Some(&b'/') || b.get(11) != Some(&b':') {
        return None;
    }
    let (h, m, s) = clock(b, 12)?;
    let sign = match b.get(21)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (digits(b, 22, 2)?, digits(b, 24, 2)?);
    if b.get(20) != Some(&b' ') || b.len() != 26 || oh > 23 || om > 59 {
        return None;
    }
    let month = i64::try_from(month).ok()? + 1;
    let days = days_from_civil(year, month, day)?;
    Some((days * 86_400 + h * 3600 + m * 60 + s - sign * (oh * 3600 + om * 60)) * 1000)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    const T: i64 = 1_795_341_600_000;

    #[test]
    fn combined_lines() {
        let check = |line: &str, want: Result<AccessLogEntry, &str>| {
            let got = parse_access_line(line.as_bytes());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{line}"),
                (Err(err), Err(reason)) => assert!(err.to_string().contains(reason), "{err}"),
                (got, want) => panic!("{line}: got {got:?}, want {want:?}"),
            }
        };
        check(
            r#"172.18.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET /api/v1/items?page=2 HTTP/1.1" 200 5120 "https://app.example/" "Mozilla/5.0 (X11; Linux x86_64)""#,
            Ok(AccessLogEntry {
                unix_millis: Some(T),
                remote_addr: "172.18.0.1".into(),
                method: Some("GET".into()),
                path: Some("/api/v1/items?page=2".into()),
                protocol: Some("HTTP/1.1".into()),
                status: 200,
                body_bytes_sent: 5120,
                referer: Some("https://app.example/".into()),
                user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
                ..Default::default()
            }),
        );
        check(
            r#"203.0.113.9 - alice [22/Nov/2026:11:00:00 +0100] "POST /login HTTP/2.0" 502 157 "-" "curl/8.5.0" "10.0.0.1""#,
            Ok(AccessLogEntry {
                unix_millis: Some(T),
                remote_addr: "203.0.113.9".into(),
                remote_user: Some("alice".into()),
                method: Some("POST".into()),
                path: Some("/login".into()),
                protocol: Some("HTTP/2.0".into()),
                status: 502,
                body_bytes_sent: 157,
                user_agent: Some("curl/8.5.0".into()),
                ..Default::default()
            }),
        );
        // A TLS handshake on a plain-HTTP port.
        check(
            r#"198.51.100.7 - - [22/Nov/2026:10:00:00 +0000] "\x16\x03\x01\x00\xF1\x01" 400 157 "-" "-""#,
            Ok(AccessLogEntry {
                unix_millis: Some(T),
                remote_addr: "198.51.100.7".into(),
                status: 400,
                body_bytes_sent: 157,
                ..Default::default()
            }),
        );
        check(
            r#"1.2.3.4 - - [22/Nov/2026:10:00:00] "GET / HTTP/1.1" 200 1"#,
            Err("time"),
        );
        check(
            r#"1.2.3.4 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 20x 1"#,
            Err("status"),
        );
        check("", Err("client address"));
        check("{not json", Err("JSON"));
    }

    #[test]
    fn json_lines() {
        let id = Uuid::from_u128(0xabc);
        let line = format!(
            r#"{{"time_iso8601":"2026-11-22T10:00:00+00:00","remote_addr":"172.18.0.1","host":"app.example","request_method":"GET","uri":"/health","status":503,"body_bytes_sent":0,"request_time":1.502,"upstream_response_time":"1.000, 0.500 : -","upstream_addr":"10.0.0.5:8080, 10.0.0.6:8080 : unix:/run/app.sock","http_referer":"","http_user_agent":"kube-probe/1.29","proxy_host_id":"{id}"}}"#
        );
        let got = parse_access_line(line.as_bytes()).unwrap();
        assert_eq!(
            got,
            AccessLogEntry {
                unix_millis: Some(T),
                remote_addr: "172.18.0.1".into(),
                host: Some("app.example".into()),
                method: Some("GET".into()),
                path: Some("/health".into()),
                status: 503,
                request_time_millis: Some(1502),
                upstream_response_millis: vec![Some(1000), Some(500), None],
                upstream_addrs: vec![
                    "10.0.0.5:8080".into(),
                    "10.0.0.6:8080".into(),
                    "unix:/run/app.sock".into()
                ],
                user_agent: Some("kube-probe/1.29".into()),
                proxy_host_id: Some(ProxyHostId::from_uuid(id)),
                ..Default::default()
            }
        );
        assert_eq!(got.upstream_millis(), Some(1500));
        assert!(got.is_server_error());
        // A request served without an upstream, numbers given as strings.
        let got = parse_json_access(br#"{"status":"304","request_time":"0.000","upstream_response_time":"","upstream_addr":"","proxy_host_id":""}"#).unwrap();
        assert_eq!(
            (got.status, got.request_time_millis, got.upstream_millis()),
            (304, Some(0), None)
        );
        assert!(got.upstream_addrs.is_empty() && got.proxy_host_id.is_none());
        assert!(parse_json_access(br#"{"status":"abc"}"#).is_err());
        assert!(parse_json_access(b"[1,2]").is_err());
    }

    /// Fills the format's variables the way nginx would, then parses the line back.
    #[test]
    fn the_configured_format_parses() {
        let body = NGINX_JSON_LOG_FORMAT
            .strip_prefix("escape=json '")
            .and_then(|b| b.strip_suffix('\''))
            .unwrap();
        let id = Uuid::from_u128(9);
        let values = [
            ("$time_iso8601", "2026-11-22T10:00:00+00:00".to_owned()),
            ("$remote_addr", "10.1.1.1".to_owned()),
            ("$host", "a.example".to_owned()),
            ("$request_method", "PUT".to_owned()),
            ("$uri", "/x".to_owned()),
            ("$status", "201".to_owned()),
            ("$body_bytes_sent", "12".to_owned()),
            ("$request_time", "0.010".to_owned()),
            ("$upstream_response_time", "0.009".to_owned()),
            ("$upstream_addr", "10.0.0.2:80".to_owned()),
            ("$http_referer", String::new()),
            ("$http_user_agent", "ua".to_owned()),
            ("$infrapilot_proxy_host_id", id.to_string()),
        ];
        let mut line = body.to_owned();
        // Longest names first, so `$host` does not eat into another variable's name.
        let mut sorted = values.clone();
        sorted.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        for (var, value) in &sorted {
            line = line.replace(var, value);
        }
        assert!(!line.contains('$'), "{line}");
        let got = parse_json_access(line.as_bytes()).unwrap();
        assert_eq!(got.status, 201);
        assert_eq!(got.body_bytes_sent, 12);
        assert_eq!(got.request_time_millis, Some(10));
        assert_eq!(got.upstream_response_millis, vec![Some(9)]);
        assert_eq!(got.proxy_host_id, Some(ProxyHostId::from_uuid(id)));
        assert_eq!(got.unix_millis, Some(T));
        assert!(NGINX_JSON_LOG_FORMAT.contains(&format!("${PROXY_HOST_ID_VARIABLE}")));
    }

    #[test]
    fn seconds() {
        let check = |s: &str, want: Option<u64>| assert_eq!(seconds_to_millis(s), want, "{s}");
        check("0.123", Some(123));
        check("2", Some(2000));
        check("1.5", Some(1500));
        check("0.0005", Some(0));
        check("-", None);
        check("", None);
        check(".5", None);
        check("1.x", None);
        check("99999999999999", None);
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_access_line(&bytes);
            let _ = parse_combined(&bytes);
            let _ = parse_json_access(&bytes);
        }

        #[test]
        fn never_panics_on_near_lines(cut in 0usize..200, junk in "\\PC{0,20}") {
            let line = r#"172.18.0.1 - bob [22/Nov/2026:10:00:00 +0000] "GET /x HTTP/1.1" 200 12 "-" "ua""#;
            let cut = (0..=cut.min(line.len())).rev().find(|i| line.is_char_boundary(*i)).unwrap_or(0);
            let mutated = format!("{}{junk}{}", &line[..cut], &line[cut..]);
            let _ = parse_access_line(mutated.as_bytes());
            let json = r#"{"status":200,"request_time":0.5,"upstream_response_time":"0.1, 0.2","upstream_addr":"a:1, b:2"}"#;
            let cut = cut.min(json.len());
            let _ = parse_access_line(format!("{}{junk}{}", &json[..cut], &json[cut..]).as_bytes());
        }

        #[test]
        fn combined_round_trips(
            addr in "[0-9a-f.:]{1,39}",
            status in 100u16..600,
            bytes in any::<u32>(),
            method in "[A-Z]{3,7}",
            path in "/[!-~&&[^\" ]]{0,40}",
            ua in "[ -~&&[^\"]]{1,60}",
            ms in 0i64..4_102_444_800_000,
        ) {
            let secs = ms / 1000;
            let date = super::super::timestamp::format_rfc3339_millis(secs * 1000);
            let (y, rest) = date.split_at(4);
            let month = MONTHS[rest[1..3].parse::<usize>().unwrap() - 1];
            let local = format!("{}/{}/{y}:{} +0000", &rest[4..6], std::str::from_utf8(month).unwrap(), &rest[7..15]);
            let line = format!(r#"{addr} - - [{local}] "{method} {path} HTTP/1.1" {status} {bytes} "-" "{ua}""#);
            let got = parse_combined(line.as_bytes()).unwrap();
            prop_assert_eq!(got.unix_millis, Some(secs * 1000));
            prop_assert_eq!(got.status, status);
            prop_assert_eq!(got.body_bytes_sent, u64::from(bytes));
            prop_assert_eq!(got.method.as_deref(), Some(method.as_str()));
            prop_assert_eq!(got.path.as_deref(), Some(path.as_str()));
            prop_assert_eq!(got.user_agent.as_deref(), if ua == "-" { None } else { Some(ua.as_str()) });
        }

        #[test]
        fn json_round_trips(status in 100u16..600, rt_ms in 0u64..100_000, uri in "\\PC{0,30}", ua in "\\PC{1,30}") {
            let line = serde_json::json!({
                "status": status,
                "request_time": format!("{}.{:03}", rt_ms / 1000, rt_ms % 1000),
                "uri": uri,
                "http_user_agent": ua,
            }).to_string();
            let got = parse_json_access(line.as_bytes()).unwrap();
            prop_assert_eq!(got.status, status);
            prop_assert_eq!(got.request_time_millis, Some(rt_ms));
            prop_assert_eq!(got.path, dash_is_none(&uri));
            prop_assert_eq!(got.user_agent, dash_is_none(&ua));
        }
    }
}
