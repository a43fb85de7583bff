//! What the renderer renders: proxy hosts, redirection hosts and the default server.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::values::{
    BodySize, ContentSecurityPolicy, ErrorPageHtml, FrameOptions, LocationPath, PasswordHash,
    RateLimit, ReferrerPolicy, Seconds, Username,
};
use crate::ids::{AccessListId, CertificateId, ProxyHostId};
use crate::values::{Cidr, Domain, Upstream, ValueError};

/// A site that forwards requests for its domains to an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyHost {
    /// The host's id; file, zone and log names derive from it.
    pub id: ProxyHostId,
    /// The names the host answers to.
    pub domains: DomainList,
    /// Where requests for `/` (and every path no custom location claims) go.
    pub upstream: Upstream,
    /// TLS: none (the default), Let's Encrypt or an uploaded certificate.
    #[serde(default)]
    pub ssl: SslMode,
    /// Security headers added to every response.
    #[serde(default)]
    pub headers: SecurityHeaders,
    /// Proxy behaviour of the host's own location.
    #[serde(default)]
    pub proxy: ProxyOptions,
    /// A request rate limit per client address, for the whole host.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Paths forwarded to upstreams of their own.
    #[serde(default)]
    pub locations: Locations,
    /// Who may reach the host: addresses and/or basic-auth users.
    #[serde(default)]
    pub access_list: Option<AccessList>,
    /// A shared access list the host uses instead of its own: the server puts that list's
    /// rules into `access_list` before the host is rendered. Rendered while still unresolved,
    /// the host denies everyone (a missing list must never open a host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_list_id: Option<AccessListId>,
}

/// A site that answers every request for its domains with a redirect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectionHost {
    /// The host's id; file and log names derive from it.
    pub id: ProxyHostId,
    /// The names the host answers to.
    pub domains: DomainList,
    /// The name redirected to.
    pub target: Domain,
    /// The scheme of the redirect target.
    pub target_scheme: TargetScheme,
    /// 301 or 302.
    pub status: RedirectStatus,
    /// Whether the request's path and query are appended to the target.
    pub preserve_path: bool,
    /// TLS for the host's own domains (none by default).
    #[serde(default)]
    pub ssl: SslMode,
}

/// The server that answers requests no host claims, and the error pages every host shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultServer {
    /// The page for 404 Not Found; nginx's own page when `None`.
    pub not_found_page: Option<ErrorPageHtml>,
    /// The page for 502 Bad Gateway and 504 Gateway Timeout; nginx's own page when `None`.
    pub bad_gateway_page: Option<ErrorPageHtml>,
    /// What a plain-HTTP request for a name no host claims gets (HTTPS handshakes for such
    /// names are always refused: there is no certificate to show).
    #[serde(default)]
    pub unclaimed: Unclaimed,
}

/// The answer to a request for a name no host claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(from = "UnclaimedWire", into = "UnclaimedWire")]
pub enum Unclaimed {
    /// 404 Not Found, with the custom page when there is one.
    #[default]
    NotFound,
    /// Close the connection without an answer (nginx's 444), as scanners deserve.
    Drop,
    /// Redirect to another site.
    Redirect {
        /// The name redirected to.
        target: Domain,
        /// The scheme of the target.
        target_scheme: TargetScheme,
        /// 301 or 302.
        status: RedirectStatus,
        /// Whether the request's path and query are appended.
        #[serde(default)]
        preserve_path: bool,
    },
}

/// The JSON shape of [`Unclaimed`]. serde ignores extra keys beside the tag of a unit variant
/// even with `deny_unknown_fields`, so the unit variants are written as empty structs here,
/// where unknown keys are refused.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum UnclaimedWire {
    /// 404 Not Found, with the custom page when there is one.
    NotFound {},
    /// Close the connection without an answer (nginx's 444).
    Drop {},
    /// Redirect to another site.
    Redirect {
        /// The name redirected to.
        target: Domain,
        /// The scheme of the target.
        target_scheme: TargetScheme,
        /// 301 or 302.
        status: RedirectStatus,
        /// Whether the request's path and query are appended.
        #[serde(default)]
        preserve_path: bool,
    },
}

impl From<UnclaimedWire> for Unclaimed {
    fn from(wire: UnclaimedWire) -> Self {
        match wire {
            UnclaimedWire::NotFound {} => Unclaimed::NotFound,
            UnclaimedWire::Drop {} => Unclaimed::Drop,
            UnclaimedWire::Redirect {
                target,
                target_scheme,
                status,
                preserve_path,
            } => Unclaimed::Redirect {
                target,
                target_scheme,
                status,
                preserve_path,
            },
        }
    }
}

impl From<Unclaimed> for UnclaimedWire {
    fn from(unclaimed: Unclaimed) -> Self {
        match unclaimed {
            Unclaimed::NotFound => UnclaimedWire::NotFound {},
            Unclaimed::Drop => UnclaimedWire::Drop {},
            Unclaimed::Redirect {
                target,
                target_scheme,
                status,
                preserve_path,
            } => UnclaimedWire::Redirect {
                target,
                target_scheme,
                status,
                preserve_path,
            },
        }
    }
}

/// One to 100 distinct domains; the first is the host's primary name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "Vec<Domain>", into = "Vec<Domain>")]
pub struct DomainList(Vec<Domain>);

impl DomainList {
    /// The most domains one host may have.
    pub const MAX: usize = 100;

    /// Checks that there is at least one domain, at most [`Self::MAX`], and no repeats; errors
    /// name the field `domains`.
    pub fn new(domains: Vec<Domain>) -> Result<Self, ValueError> {
        let listed = || {
            domains
                .iter()
                .map(Domain::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        if domains.is_empty() {
            return Err(ValueError::new(
                "domains",
                "",
                "must name at least one domain",
            ));
        }
        if domains.len() > Self::MAX {
            return Err(ValueError::new(
                "domains",
                &listed(),
                "must name at most 100 domains",
            ));
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = domains.iter().find(|d| !seen.insert(*d)) {
            return Err(ValueError::new("domains", dup.as_str(), "is listed twice"));
        }
        Ok(Self(domains))
    }

    /// The domains, primary first.
    pub fn as_slice(&self) -> &[Domain] {
        &self.0
    }
}

impl TryFrom<Vec<Domain>> for DomainList {
    type Error = ValueError;

    fn try_from(domains: Vec<Domain>) -> Result<Self, Self::Error> {
        Self::new(domains)
    }
}

impl From<DomainList> for Vec<Domain> {
    fn from(list: DomainList) -> Self {
        list.0
    }
}

/// TLS for a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(from = "SslModeWire", into = "SslModeWire")]
pub enum SslMode {
    /// Plain HTTP on port 80 only.
    #[default]
    None,
    /// A certificate the agent obtains from Let's Encrypt (HTTP-01 through the ACME webroot).
    LetsEncrypt(Tls),
    /// A certificate the user uploaded.
    Custom(Tls),
}

impl SslMode {
    /// The TLS settings, unless the host is plain HTTP.
    pub fn tls(&self) -> Option<&Tls> {
        match self {
            SslMode::None => None,
            SslMode::LetsEncrypt(tls) | SslMode::Custom(tls) => Some(tls),
        }
    }
}

/// The JSON shape of [`SslMode`]: `none` as an empty struct, so a key beside it is refused
/// (serde ignores extra keys beside the tag of a unit variant); the TLS variants refuse
/// unknown keys through [`Tls`].
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
enum SslModeWire {
    /// Plain HTTP on port 80 only.
    None {},
    /// A certificate the agent obtains from Let's Encrypt.
    LetsEncrypt(Tls),
    /// A certificate the user uploaded.
    Custom(Tls),
}

impl From<SslModeWire> for SslMode {
    fn from(wire: SslModeWire) -> Self {
        match wire {
            SslModeWire::None {} => SslMode::None,
            SslModeWire::LetsEncrypt(tls) => SslMode::LetsEncrypt(tls),
            SslModeWire::Custom(tls) => SslMode::Custom(tls),
        }
    }
}

impl From<SslMode> for SslModeWire {
    fn from(mode: SslMode) -> Self {
        match mode {
            SslMode::None => SslModeWire::None {},
            SslMode::LetsEncrypt(tls) => SslModeWire::LetsEncrypt(tls),
            SslMode::Custom(tls) => SslModeWire::Custom(tls),
        }
    }
}

/// TLS settings shared by both certificate sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The certificate; its files are `<cert_dir>/<id>/fullchain.pem` and `privkey.pem`.
    pub certificate: CertificateId,
    /// Whether plain HTTP requests (other than ACME challenges) are redirected to HTTPS
    /// (default: no).
    #[serde(default)]
    pub force_https: bool,
    /// Whether HTTP/2 is offered (default: no). nginx enables it per listening port, so one
    /// host asking for it turns it on for every host on port 443.
    #[serde(default)]
    pub http2: bool,
    /// HTTP Strict Transport Security, sent on HTTPS responses (default: none).
    #[serde(default)]
    pub hsts: Option<Hsts>,
}

/// The `Strict-Transport-Security` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hsts {
    /// How long browsers remember to use HTTPS, in seconds.
    pub max_age_seconds: u32,
    /// Whether the rule covers subdomains too.
    pub include_subdomains: bool,
    /// Whether the host asks to be put on browsers' preload lists.
    pub preload: bool,
}

/// Security headers added to every response of a host (with `always`, so error responses
/// carry them too). Every field may be left out (none is sent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityHeaders {
    /// `X-Frame-Options`.
    pub frame_options: Option<FrameOptions>,
    /// `X-Content-Type-Options: nosniff`.
    pub content_type_nosniff: bool,
    /// `Referrer-Policy`.
    pub referrer_policy: Option<ReferrerPolicy>,
    /// `Content-Security-Policy`.
    pub content_security_policy: Option<ContentSecurityPolicy>,
}

/// How a location forwards requests; by default no WebSocket, nginx's body limit, 60 s timeouts.
/// Every field may be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyOptions {
    /// Whether WebSocket upgrades are passed through.
    pub websocket: bool,
    /// The largest request body accepted; nginx's default (1 MiB) when `None`.
    pub client_max_body_size: Option<BodySize>,
    /// Connect, read and send timeouts.
    pub timeouts: ProxyTimeouts,
}

/// Proxy timeouts; each defaults to 60 seconds, as in nginx.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyTimeouts {
    /// `proxy_connect_timeout`.
    pub connect: Seconds,
    /// `proxy_read_timeout`.
    pub read: Seconds,
    /// `proxy_send_timeout`.
    pub send: Seconds,
}

/// A custom location: requests whose path starts with `path` go to `upstream`.
///
/// When the upstream has a path, it is put in front of the full request URI
/// (`/api/x` to `http://svc/v1` reaches the service as `/v1/api/x`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// The URL prefix.
    pub path: LocationPath,
    /// Where matching requests go.
    pub upstream: Upstream,
    /// How they are forwarded.
    #[serde(default)]
    pub options: ProxyOptions,
}

/// Up to 100 custom locations with distinct paths, rendered in the given order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "Vec<Location>", into = "Vec<Location>")]
pub struct Locations(Vec<Location>);

impl Locations {
    /// The most custom locations one host may have.
    pub const MAX: usize = 100;

    /// Checks the count and that no path repeats; errors name the field `locations`.
    pub fn new(locations: Vec<Location>) -> Result<Self, ValueError> {
        if locations.len() > Self::MAX {
            return Err(ValueError::new(
                "locations",
                &locations.len().to_string(),
                "must be at most 100 locations",
            ));
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = locations.iter().find(|l| !seen.insert(&l.path)) {
            return Err(ValueError::new(
                "locations",
                dup.path.as_str(),
                "path is listed twice",
            ));
        }
        Ok(Self(locations))
    }

    /// The locations in order.
    pub fn as_slice(&self) -> &[Location] {
        &self.0
    }

    /// The locations' upstreams, to rewrite (paths, and so the invariants, stay).
    pub(crate) fn upstreams_mut(&mut self) -> impl Iterator<Item = &mut Upstream> {
        self.0.iter_mut().map(|l| &mut l.upstream)
    }
}

impl TryFrom<Vec<Location>> for Locations {
    type Error = ValueError;

    fn try_from(locations: Vec<Location>) -> Result<Self, Self::Error> {
        Self::new(locations)
    }
}

impl From<Locations> for Vec<Location> {
    fn from(list: Locations) -> Self {
        list.0
    }
}

/// Who may reach a host.
///
/// Address rules are checked in order, first match wins. When any rule allows, every address
/// no rule matches is denied (an allow-list); with only deny rules, everyone else is allowed.
/// With users, a password is asked for; `satisfy` says whether an allowed address *or* a
/// password suffices ([`Satisfy::Any`]) or both are needed ([`Satisfy::All`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessList {
    /// Address rules, first match wins.
    pub rules: Vec<AccessRule>,
    /// Basic-auth users; their hashes go into the host's htpasswd file.
    pub users: Vec<BasicAuthUser>,
    /// How address rules and passwords combine.
    pub satisfy: Satisfy,
}

/// One address rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Allow or deny.
    pub action: AccessAction,
    /// The addresses the rule matches.
    pub cidr: Cidr,
}

/// What an address rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessAction {
    /// Let matching addresses in.
    Allow,
    /// Keep matching addresses out.
    Deny,
}

/// A basic-auth user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthUser {
    /// The user name.
    pub username: Username,
    /// The password hash (never the password).
    pub password_hash: PasswordHash,
}

/// How address rules and passwords combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Satisfy {
    /// An allowed address or a valid password suffices.
    Any,
    /// Both are needed.
    All,
}

/// The scheme of a redirect target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetScheme {
    /// The scheme the request came in with.
    Keep,
    /// `http://`.
    Http,
    /// `https://`.
    Https,
}

/// The status of a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedirectStatus {
    /// 301 Moved Permanently.
    MovedPermanently,
    /// 302 Found.
    Found,
}

impl RedirectStatus {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            RedirectStatus::MovedPermanently => 301,
            RedirectStatus::Found => 302,
        }
    }
}

/// Everything one nginx instance serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// The default server and the shared error pages.
    #[serde(default)]
    pub default_server: DefaultServer,
    /// Proxy hosts.
    #[serde(default)]
    pub proxy_hosts: Vec<ProxyHost>,
    /// Redirection hosts.
    #[serde(default)]
    pub redirection_hosts: Vec<RedirectionHost>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(s: &str) -> Domain {
        Domain::parse(s).unwrap()
    }

    #[test]
    fn domain_lists_are_non_empty_and_distinct() {
        assert_eq!(DomainList::new(vec![]).unwrap_err().field(), "domains");
        let dup = DomainList::new(vec![domain("a.com"), domain("A.com")]).unwrap_err();
        assert_eq!((dup.field(), dup.value()), ("domains", "a.com"));
        assert!(DomainList::new((0..101).map(|i| domain(&format!("d{i}.com"))).collect()).is_err());
        assert!(serde_json::from_str::<DomainList>("[]").is_err());
        let list: DomainList = serde_json::from_str(r#"["b.com","a.com"]"#).unwrap();
        assert_eq!(list.as_slice()[0].as_str(), "b.com");
    }

    #[test]
    fn location_paths_are_distinct() {
        let loc = |p: &str| Location {
            path: LocationPath::parse(p).unwrap(),
            upstream: Upstream::parse("http://a:1").unwrap(),
            options: ProxyOptions::default(),
        };
        let err = Locations::new(vec![loc("/a"), loc("/b"), loc("/a")]).unwrap_err();
        assert_eq!((err.field(), err.value()), ("locations", "/a"));
        assert!(Locations::new(vec![loc("/a"), loc("/a/")]).is_ok());
    }

    #[test]
    fn a_site_round_trips_through_json_and_has_a_schema() {
        let json = r#"{
            "proxy_hosts": [{
                "id": "00000000-0000-0000-0000-000000000001",
                "domains": ["app.example.com"],
                "upstream": "container:web:80",
                "ssl": {"mode": "lets_encrypt", "certificate": "00000000-0000-0000-0000-000000000002",
                        "force_https": true, "http2": true, "hsts": null},
                "rate_limit": {"requests_per_second": 5, "burst": 10},
                "locations": [{"path": "/api/", "upstream": "http://api:9000"}]
            }]
        }"#;
        let site: Site = serde_json::from_str(json).unwrap();
        let again: Site = serde_json::from_str(&serde_json::to_string(&site).unwrap()).unwrap();
        assert_eq!(again, site);
        assert!(serde_json::from_str::<Site>(&json.replace("/api/", "/a{b")).is_err());
        // Only the certificate is needed: HTTPS without redirect, HTTP/2 or HSTS.
        let minimal = r#"{"proxy_hosts": [{
            "id": "00000000-0000-0000-0000-000000000001", "domains": ["app.example.com"],
            "upstream": "http://app:80",
            "ssl": {"mode": "custom", "certificate": "00000000-0000-0000-0000-000000000002"}
        }]}"#;
        let site: Site = serde_json::from_str(minimal).unwrap();
        let tls = site.proxy_hosts[0].ssl.tls().unwrap();
        assert!(!tls.force_https && !tls.http2 && tls.hsts.is_none());
        let schema = serde_json::to_string(&schemars::schema_for!(Site)).unwrap();
        assert!(schema.contains("ProxyHost"));
    }
}
