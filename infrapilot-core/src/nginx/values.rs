//! Validated values that only the nginx renderer needs.
//!
//! Every type here either holds text that cannot change the structure of a config file (it
//! carries no `;`, `{`, `}`, `#`, quote, backslash, `$`, whitespace it was not allowed, or
//! control character) or never reaches a config file at all (error page HTML and password
//! hashes live in files of their own).

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::values::{ValueError, string_value_serde};

/// Checks text written inside a double-quoted nginx string as a response header value.
///
/// Visible ASCII and spaces only, 1–2048 characters (nginx reads at most 4096 bytes per
/// token), no leading or trailing space, and none of `"`, `\` and `$` (nginx would read a `$`
/// as a variable, and has no way to escape one).
fn check_header_value(field: &str, input: &str) -> Result<(), ValueError> {
    let err = |reason: String| ValueError::new(field, input, reason);
    if input.is_empty() || input.len() > 2048 {
        return Err(err("must be 1 to 2048 characters long".into()));
    }
    if let Some(bad) = input.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(err(format!(
            "contains {bad:?}; only visible ASCII characters and spaces are allowed"
        )));
    }
    if let Some(bad) = input.chars().find(|c| "\"\\$".contains(*c)) {
        return Err(err(format!("must not contain {bad:?}")));
    }
    if input.starts_with(' ') || input.ends_with(' ') {
        return Err(err("must not start or end with a space".into()));
    }
    Ok(())
}

/// A Content-Security-Policy header value, written inside a double-quoted nginx string.
///
/// Visible ASCII and spaces only, 1–2048 characters (nginx reads at most 4096 bytes per
/// token), no leading or trailing space, and none of `"`, `\` and `$` (nginx would read a `$`
/// as a variable, and has no way to escape one). Its `;` and `'` are harmless inside the quotes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentSecurityPolicy(String);

impl ContentSecurityPolicy {
    /// Validates a policy such as `default-src 'self'; img-src *`; errors name the field
    /// `content_security_policy`.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        check_header_value("content_security_policy", input)?;
        Ok(Self(input.to_owned()))
    }

    /// The policy as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContentSecurityPolicy {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    ContentSecurityPolicy,
    "ContentSecurityPolicy",
    "A Content-Security-Policy value: visible ASCII and spaces, no '\"', '\\' or '$'"
);

/// The `Referrer-Policy` header values defined by the W3C Referrer Policy spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReferrerPolicy {
    /// `no-referrer`.
    NoReferrer,
    /// `no-referrer-when-downgrade`.
    NoReferrerWhenDowngrade,
    /// `origin`.
    Origin,
    /// `origin-when-cross-origin`.
    OriginWhenCrossOrigin,
    /// `same-origin`.
    SameOrigin,
    /// `strict-origin`.
    StrictOrigin,
    /// `strict-origin-when-cross-origin` (the browsers' default).
    StrictOriginWhenCrossOrigin,
    /// `unsafe-url`.
    UnsafeUrl,
}

impl ReferrerPolicy {
    /// Every policy, in spec order.
    pub const ALL: [ReferrerPolicy; 8] = [
        ReferrerPolicy::NoReferrer,
        ReferrerPolicy::NoReferrerWhenDowngrade,
        ReferrerPolicy::Origin,
        ReferrerPolicy::OriginWhenCrossOrigin,
        ReferrerPolicy::SameOrigin,
        ReferrerPolicy::StrictOrigin,
        ReferrerPolicy::StrictOriginWhenCrossOrigin,
        ReferrerPolicy::UnsafeUrl,
    ];

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReferrerPolicy::NoReferrer => "no-referrer",
            ReferrerPolicy::NoReferrerWhenDowngrade => "no-referrer-when-downgrade",
            ReferrerPolicy::Origin => "origin",
            ReferrerPolicy::OriginWhenCrossOrigin => "origin-when-cross-origin",
            ReferrerPolicy::SameOrigin => "same-origin",
            ReferrerPolicy::StrictOrigin => "strict-origin",
            ReferrerPolicy::StrictOriginWhenCrossOrigin => "strict-origin-when-cross-origin",
            ReferrerPolicy::UnsafeUrl => "unsafe-url",
        }
    }
}

impl FromStr for ReferrerPolicy {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                ValueError::new(
                    "referrer_policy",
                    s,
                    "is not a Referrer-Policy value such as no-referrer",
                )
            })
    }
}

/// The `X-Frame-Options` header values browsers still honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FrameOptions {
    /// `DENY`: the page may not be framed at all.
    Deny,
    /// `SAMEORIGIN`: only pages of the same origin may frame it.
    SameOrigin,
}

impl FrameOptions {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            FrameOptions::Deny => "DENY",
            FrameOptions::SameOrigin => "SAMEORIGIN",
        }
    }
}

/// A basic-auth user name: 1–255 characters, no `:`, no control characters, no leading or
/// trailing whitespace and not starting with `#` (nginx reads such a line as a comment).
///
/// User names only ever reach the htpasswd file, never the nginx config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// Validates a user name; errors name the field `username`.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("username", input, reason);
        if input.is_empty() || input.chars().count() > 255 {
            return Err(err("must be 1 to 255 characters long"));
        }
        if input.contains(':') {
            return Err(err("must not contain ':'"));
        }
        if input.chars().any(char::is_control) {
            return Err(err("must not contain control characters"));
        }
        if input.starts_with(char::is_whitespace) || input.ends_with(char::is_whitespace) {
            return Err(err("must not start or end with whitespace"));
        }
        if input.starts_with('#') {
            return Err(err("must not start with '#'"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Username {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    Username,
    "Username",
    "A basic-auth user name: no ':' and no control characters"
);

/// A password hash in a format nginx's `auth_basic_user_file` understands.
///
/// Accepted: crypt(3) hashes (`$1$`, `$5$`, `$6$`, `$2a$`/`$2b$`/`$2y$` bcrypt, `$y$` yescrypt),
/// Apache `$apr1$` MD5, and `{SHA}` / `{SSHA}` base64 digests. Plain-text `{PLAIN}` passwords are
/// refused. Only letters, digits and `./$=+{}-` may appear, so a hash can never end its line.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PasswordHash(String);

const HASH_PREFIXES: [&str; 9] = [
    "$apr1$", "$1$", "$5$", "$6$", "$2a$", "$2b$", "$2y$", "$y$", "{SHA}",
];

impl PasswordHash {
    /// Validates a hash; errors name the field `password_hash`.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("password_hash", input, reason);
        if input.len() > 512 {
            return Err(err("must be at most 512 characters long"));
        }
        if !(HASH_PREFIXES.iter().any(|p| input.starts_with(p)) || input.starts_with("{SSHA}")) {
            return Err(err(
                "must be a crypt(3), $apr1$, {SHA} or {SSHA} hash (plain passwords are refused)",
            ));
        }
        if input
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || "./$=+{}-".contains(c)))
        {
            return Err(err("may only contain letters, digits and './$=+{}-'"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The hash as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a secret in the strict sense, but logs need not carry it.
        f.write_str("PasswordHash(..)")
    }
}

impl FromStr for PasswordHash {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    PasswordHash,
    "PasswordHash",
    "A crypt(3), $apr1$, {SHA} or {SSHA} password hash"
);

/// The HTML of a custom error page, 1 byte to 64 KiB, without NUL characters.
///
/// The renderer writes it into a file of its own that nginx serves as-is, so its content never
/// reaches the nginx config and needs no escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorPageHtml(String);

impl ErrorPageHtml {
    /// Validates a page; errors name the field `error_page`.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("error_page", input, reason);
        if input.is_empty() || input.len() > 64 * 1024 {
            return Err(err("must be 1 byte to 64 KiB long"));
        }
        if input.contains('\0') {
            return Err(err("must not contain NUL characters"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The HTML as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ErrorPageHtml {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    ErrorPageHtml,
    "ErrorPageHtml",
    "The HTML of a custom error page (at most 64 KiB)"
);

/// The URL prefix a custom location answers to (`/api/`), written unquoted after `location`.
///
/// Starts with `/`, at most 1024 characters of letters, digits, `-._~/+=:@,!` and `%XX` escapes.
/// `/` itself (the host's own location), `/.well-known/acme-challenge…` (always served from the
/// ACME webroot) and `/.infrapilot-errors…` (the error pages) are reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocationPath(String);

/// Path prefixes the renderer uses itself.
pub(crate) const ACME_PREFIX: &str = "/.well-known/acme-challenge/";
pub(crate) const ERRORS_PREFIX: &str = "/.infrapilot-errors/";

impl LocationPath {
    /// Validates a location path; errors name the field `location path`.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("location path", input, reason);
        let path = crate::values::UpstreamPath::parse(input)
            .map_err(|e| ValueError::new("location path", input, e.reason()))?;
        if input == "/" {
            return Err(err(
                "'/' is the host's own location; give the host's upstream instead",
            ));
        }
        let lower = input.to_ascii_lowercase();
        for reserved in [ACME_PREFIX, ERRORS_PREFIX] {
            if lower.starts_with(reserved.trim_end_matches('/')) {
                return Err(err(&format!("paths under {reserved} are reserved")));
            }
        }
        Ok(Self(path.as_str().to_owned()))
    }

    /// The path as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LocationPath {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    LocationPath,
    "LocationPath",
    "A URL prefix starting with '/', e.g. /api/"
);

/// An absolute file-system path written unquoted into the nginx config.
///
/// Starts with `/`, at most 1024 characters of letters, digits and `/._-+@,=`, no `..` segment,
/// and no trailing `/` (except for `/` itself, which is refused as useless).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfPath(String);

impl ConfPath {
    /// Validates a path; errors name the field `path` (callers rename it with
    /// [`ValueError::at`]).
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = |reason: &str| ValueError::new("path", input, reason);
        if !input.starts_with('/') || input.len() < 2 {
            return Err(err("must be an absolute path below '/'"));
        }
        if input.len() > 1024 {
            return Err(err("must be at most 1024 characters long"));
        }
        if let Some(bad) = input
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/._-+@,=".contains(*c)))
        {
            return Err(err(&format!(
                "contains {bad:?}; only letters, digits and '/._-+@,=' are allowed"
            )));
        }
        if input.ends_with('/') {
            return Err(err("must not end with '/'"));
        }
        if input.split('/').any(|seg| seg == "..") {
            return Err(err("must not contain a '..' segment"));
        }
        Ok(Self(input.to_owned()))
    }

    /// The path as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/name`; `name` must be a plain file name the renderer made itself.
    pub(crate) fn join(&self, name: &str) -> String {
        format!("{}/{name}", self.0)
    }
}

impl FromStr for ConfPath {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

string_value_serde!(
    ConfPath,
    "ConfPath",
    "An absolute file-system path of letters, digits and '/._-+@,='"
);

/// A DNS resolver nginx asks at request time: an IP address and an optional port.
///
/// Written as `127.0.0.11`, `127.0.0.11:5353`, `[fd00::1]` or `[fd00::1]:53`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resolver {
    /// The resolver's address.
    pub addr: IpAddr,
    /// The port, when it is not 53.
    pub port: Option<u16>,
}

impl Resolver {
    /// Parses `ADDR`, `ADDR:PORT`, `[V6]` or `[V6]:PORT`; errors name the field `resolver`.
    pub fn parse(input: &str) -> Result<Self, ValueError> {
        let err = || {
            ValueError::new(
                "resolver",
                input,
                "must be an IP address with an optional :PORT, e.g. 127.0.0.11",
            )
        };
        if let Ok(addr) = input.parse::<IpAddr>() {
            return Ok(Self { addr, port: None });
        }
        let (host, port) = if let Some(rest) = input.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(err)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(err)?)),
            }
        } else {
            let (host, port) = input.rsplit_once(':').ok_or_else(err)?;
            (host, Some(port))
        };
        let addr: IpAddr = host.parse().map_err(|_| err())?;
        if input.starts_with('[') != addr.is_ipv6() {
            return Err(err());
        }
        let port = match port {
            None => None,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(err()),
            },
            Some(_) => return Err(err()),
        };
        Ok(Self { addr, port })
    }
}

impl fmt::Display for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.addr, self.port) {
            (IpAddr::V4(a), None) => write!(f, "{a}"),
            (IpAddr::V4(a), Some(p)) => write!(f, "{a}:{p}"),
            (IpAddr::V6(a), None) => write!(f, "[{a}]"),
            (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
        }
    }
}

impl FromStr for Resolver {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Resolver {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Resolver {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Resolver {
    fn schema_name() -> String {
        "Resolver".to_owned()
    }

    fn json_schema(generator: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        let mut schema = String::json_schema(generator).into_object();
        schema.metadata().description =
            Some("A DNS resolver: IP address with an optional :PORT".to_owned());
        schema.into()
    }
}

/// A proxy timeout in whole seconds, from 1 to 86400 (one day).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(try_from = "u32", into = "u32")]
pub struct Seconds(#[schemars(range(min = 1, max = 86400))] u32);

impl Seconds {
    /// The longest timeout accepted.
    pub const MAX: u32 = 86_400;

    /// Validates a number of seconds; errors name the field `timeout`.
    pub fn new(secs: u32) -> Result<Self, ValueError> {
        if (1..=Self::MAX).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(ValueError::new(
                "timeout",
                &secs.to_string(),
                "must be from 1 to 86400 seconds",
            ))
        }
    }

    /// The number of seconds.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Seconds {
    /// Sixty seconds, nginx's default for every proxy timeout.
    fn default() -> Self {
        Self(60)
    }
}

impl TryFrom<u32> for Seconds {
    type Error = ValueError;

    fn try_from(secs: u32) -> Result<Self, Self::Error> {
        Self::new(secs)
    }
}

impl From<Seconds> for u32 {
    fn from(s: Seconds) -> Self {
        s.0
    }
}

/// The largest request body a location accepts (`client_max_body_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodySize {
    /// No limit (`0`).
    Unlimited,
    /// At most this many mebibytes.
    Megabytes(NonZeroU32),
}

impl BodySize {
    /// The nginx size argument (`0` or `Nm`).
    pub fn as_nginx(self) -> String {
        match self {
            BodySize::Unlimited => "0".to_owned(),
            BodySize::Megabytes(n) => format!("{n}m"),
        }
    }
}

/// A per-host request rate limit keyed by client address (`limit_req_zone` + `limit_req`).
///
/// Both numbers are bounded (1–100000 requests per second, burst up to 100000) so nginx's own
/// arithmetic cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "RateLimitSpec", into = "RateLimitSpec")]
pub struct RateLimit {
    requests_per_second: u32,
    burst: u32,
    nodelay: bool,
}

/// The serialized shape of a [`RateLimit`], checked by [`RateLimit::new`] on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Sustained requests per second per client address (1–100000).
    pub requests_per_second: u32,
    /// Requests allowed above the rate before nginx answers 429 (0–100000). With 0 (nginx's
    /// own default) every request above the rate is refused at once: the `burst` parameter
    /// is then left out of `limit_req`, since nginx refuses `burst=0`.
    pub burst: u32,
    /// Whether burst requests are served at once instead of being spaced out.
    #[serde(default)]
    pub nodelay: bool,
}

impl RateLimit {
    /// The largest rate and burst accepted.
    pub const MAX: u32 = 100_000;

    /// Validates a limit; errors name the field `rate_limit.requests_per_second` or
    /// `rate_limit.burst`.
    pub fn new(requests_per_second: u32, burst: u32, nodelay: bool) -> Result<Self, ValueError> {
        if !(1..=Self::MAX).contains(&requests_per_second) {
            return Err(ValueError::new(
                "rate_limit.requests_per_second",
                &requests_per_second.to_string(),
                "must be from 1 to 100000",
            ));
        }
        if burst > Self::MAX {
            return Err(ValueError::new(
                "rate_limit.burst",
                &burst.to_string(),
                "must be from 0 to 100000",
            ));
        }
        Ok(Self {
            requests_per_second,
            burst,
            nodelay,
        })
    }

    /// Sustained requests per second per client address.
    pub fn requests_per_second(&self) -> u32 {
        self.requests_per_second
    }

    /// Requests allowed above the rate.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Whether burst requests are served without delay.
    pub fn nodelay(&self) -> bool {
        self.nodelay
    }
}

impl TryFrom<RateLimitSpec> for RateLimit {
    type Error = ValueError;

    fn try_from(s: RateLimitSpec) -> Result<Self, Self::Error> {
        Self::new(s.requests_per_second, s.burst, s.nodelay)
    }
}

impl From<RateLimit> for RateLimitSpec {
    fn from(r: RateLimit) -> Self {
        Self {
            requests_per_second: r.requests_per_second,
            burst: r.burst,
            nodelay: r.nodelay,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check<T: fmt::Debug>(parsed: Result<T, ValueError>, expected: Result<(), (&str, &str)>) {
        match (parsed, expected) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err((field, reason))) => {
                assert_eq!(e.field(), field, "{e}");
                assert!(e.reason().contains(reason), "{e}");
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn content_security_policies() {
        let f = "content_security_policy";
        check(
            ContentSecurityPolicy::parse("default-src 'self'; img-src *"),
            Ok(()),
        );
        check(ContentSecurityPolicy::parse(""), Err((f, "1 to 2048")));
        check(
            ContentSecurityPolicy::parse(&"a".repeat(2049)),
            Err((f, "1 to 2048")),
        );
        check(ContentSecurityPolicy::parse("a\"b"), Err((f, "'\"'")));
        check(ContentSecurityPolicy::parse("a$b"), Err((f, "'$'")));
        check(ContentSecurityPolicy::parse("a\\b"), Err((f, "'\\\\'")));
        check(
            ContentSecurityPolicy::parse("a\nb"),
            Err((f, "visible ASCII")),
        );
        check(
            ContentSecurityPolicy::parse("a\u{FF1B}b"),
            Err((f, "visible ASCII")),
        );
        check(ContentSecurityPolicy::parse(" a"), Err((f, "space")));
    }

    #[test]
    fn usernames_and_hashes() {
        check(Username::parse("bob smith"), Ok(()));
        check(Username::parse("jürgen"), Ok(()));
        check(Username::parse("a:b"), Err(("username", "':'")));
        check(Username::parse("a\nb"), Err(("username", "control")));
        check(Username::parse("#a"), Err(("username", "'#'")));
        check(Username::parse(""), Err(("username", "1 to 255")));
        check(PasswordHash::parse("$2y$10$abcdefghijklmnopqrstuv"), Ok(()));
        check(PasswordHash::parse("{SSHA}abc+/="), Ok(()));
        check(
            PasswordHash::parse("{PLAIN}secret"),
            Err(("password_hash", "plain")),
        );
        check(
            PasswordHash::parse("$6$a:b"),
            Err(("password_hash", "letters")),
        );
        check(
            PasswordHash::parse("$6$a\nb"),
            Err(("password_hash", "letters")),
        );
    }

    #[test]
    fn paths() {
        check(LocationPath::parse("/api/v1/"), Ok(()));
        check(
            LocationPath::parse("/"),
            Err(("location path", "own location")),
        );
        check(
            LocationPath::parse("/.well-known/acme-challenge/x"),
            Err(("location path", "reserved")),
        );
        check(
            LocationPath::parse("/.infrapilot-errors"),
            Err(("location path", "reserved")),
        );
        check(LocationPath::parse("api"), Err(("location path", "'/'")));
        check(LocationPath::parse("/a;b"), Err(("location path", "';'")));
        check(ConfPath::parse("/etc/infrapilot/nginx"), Ok(()));
        check(ConfPath::parse("relative"), Err(("path", "absolute")));
        check(ConfPath::parse("/a/"), Err(("path", "end with")));
        check(ConfPath::parse("/a/../b"), Err(("path", "'..'")));
        check(ConfPath::parse("/a b"), Err(("path", "' '")));
    }

    #[test]
    fn resolvers_round_trip() {
        for text in ["127.0.0.11", "127.0.0.11:5353", "[fd00::1]", "[fd00::1]:53"] {
            assert_eq!(Resolver::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Resolver::parse("fd00::1").unwrap().to_string(), "[fd00::1]");
        for bad in [
            "",
            "dns.google",
            "1.2.3.4:0",
            "1.2.3.4:+53",
            "[1.2.3.4]",
            "fd00::1:53x",
        ] {
            check(Resolver::parse(bad), Err(("resolver", "IP address")));
        }
    }

    #[test]
    fn numbers_are_bounded() {
        check(Seconds::new(0), Err(("timeout", "1 to 86400")));
        check(Seconds::new(86_401), Err(("timeout", "1 to 86400")));
        check(
            RateLimit::new(0, 0, false),
            Err(("rate_limit.requests_per_second", "1 to")),
        );
        check(
            RateLimit::new(1, 100_001, false),
            Err(("rate_limit.burst", "0 to")),
        );
        assert!(serde_json::from_str::<Seconds>("0").is_err());
        assert!(
            serde_json::from_str::<RateLimit>(r#"{"requests_per_second":0,"burst":1}"#).is_err()
        );
        let limit: RateLimit =
            serde_json::from_str(r#"{"requests_per_second":5,"burst":1}"#).unwrap();
        assert_eq!(
            (limit.requests_per_second(), limit.burst(), limit.nodelay()),
            (5, 1, false)
        );
    }

    #[test]
    fn referrer_policies_parse_their_own_names() {
        for policy in ReferrerPolicy::ALL {
            assert_eq!(policy.as_str().parse::<ReferrerPolicy>().unwrap(), policy);
            let json = serde_json::to_string(&policy).unwrap();
            assert_eq!(json, format!("\"{}\"", policy.as_str()));
        }
        check(
            "No-Referrer".parse::<ReferrerPolicy>(),
            Err(("referrer_policy", "Referrer-Policy")),
        );
    }

    proptest! {
        #[test]
        fn accepted_header_values_cannot_leave_their_quotes(input in "\\PC{0,40}") {
            if let Ok(csp) = ContentSecurityPolicy::parse(&input) {
                prop_assert!(!csp.as_str().chars().any(|c| "\"\\$\n\r".contains(c) || !c.is_ascii()));
            }
        }

        #[test]
        fn accepted_conf_paths_are_single_tokens(input in "\\PC{0,40}") {
            if let Ok(p) = ConfPath::parse(&input) {
                let bad = |c: char| ";{}#$'\"\\ \t\n\r".contains(c);
                prop_assert!(!p.as_str().chars().any(bad), "{}", p);
            }
        }
    }
}
