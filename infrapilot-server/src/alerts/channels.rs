//! Alert notification channels: the validated configuration of a channel, and the code that
//! sends one notification through it.
//!
//! A channel arrives from the API as a [`ChannelInput`] (JSON tagged by `"type"`) and becomes a
//! [`ChannelConfig`] through [`ChannelConfig::validate`], which names every refused field at
//! once ([`FieldProblem`]). Three kinds exist:
//!
//! - **`smtp`** — an e-mail through an SMTP relay (`starttls`, implicit `tls`, or `none` for a
//!   local relay), with an optional login.
//! - **`slack`** — a Slack incoming webhook (or anything speaking its format).
//! - **`webhook`** — a JSON `POST` to any URL, with custom headers and an optional signature.
//!
//! # Secrets
//!
//! The SMTP `password`, the Slack `webhook_url` (whoever has it can post to the channel) and the
//! webhook `secret` and header values are secrets: [`ChannelConfig::redacted`] shows only
//! whether each is set, and an update that leaves one out (absent or an empty string; a header
//! value `null`) keeps the stored one. The stored
//! SMTP password is kept only while the host and username stay the same, so that nobody can
//! send it to a server of their choosing without knowing it; a stored header value likewise
//! only while the webhook's URL stays the same. The serde form of a
//! [`ChannelConfig`] carries the secrets in clear — it is meant to be sealed before storage —
//! while its `Debug` form is redacted.
//!
//! # Delivery
//!
//! [`deliver`] sends one [`Notification`] through the server's one outbound client
//! ([`crate::outbound::Outbound`]): internal addresses are refused at connect time unless the
//! allow-list opens them, and redirects are not followed. When the remote refuses, the
//! [`DeliveryError`] says its HTTP status and the status's standard reason, or the SMTP reply
//! code and whether it is permanent — never the remote's own text, so a test send cannot be
//! used to read an internal service. HTTP requests time out after 10 seconds, SMTP commands
//! after 15.
//!
//! # Webhook signatures
//!
//! Every webhook request carries `X-InfraPilot-Timestamp: <unix seconds>`. When the channel has a
//! secret it also carries `X-InfraPilot-Signature: sha256=<hex>`, the lower-case hex HMAC-SHA256
//! keyed with the secret over the ASCII timestamp, a `.`, and the exact body bytes:
//!
//! ```text
//! signature = "sha256=" + hex(hmac_sha256(secret, timestamp + "." + body))
//! ```
//!
//! A receiver recomputes the HMAC over the body it received, compares in constant time, and
//! refuses timestamps too far from its own clock so that a captured request cannot be replayed
//! later; [`verify`] does all three.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use infrapilot_core::alerts::Severity;
use infrapilot_core::values::{Domain, Email};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::outbound::Outbound;

/// The most recipients an SMTP channel may have.
pub const MAX_RECIPIENTS: usize = 20;

/// The most custom headers a webhook channel may have.
pub const MAX_HEADERS: usize = 20;

/// The shortest webhook secret accepted, in characters.
pub const MIN_SECRET_CHARS: usize = 16;

/// The longest webhook secret accepted, in characters.
pub const MAX_SECRET_CHARS: usize = 256;

/// The longest URL accepted, in characters.
pub const MAX_URL_CHARS: usize = 2048;

/// How long the SMTP client waits for the server at each step (connect, each command).
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// The header carrying the unix time a webhook request was signed at.
pub const TIMESTAMP_HEADER: &str = "X-InfraPilot-Timestamp";

/// The header carrying a webhook request's signature (see the module docs for the scheme).
pub const SIGNATURE_HEADER: &str = "X-InfraPilot-Signature";

/// How a channel's configuration arrives from the API (JSON, tagged by `"type"`).
///
/// Secrets (`password`, `webhook_url`, `secret`) may be left out or sent as empty strings on an
/// update to keep the stored ones; see [`ChannelConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelInput {
    /// E-mail through an SMTP relay.
    Smtp {
        /// The relay's host name or IP address, without scheme or port.
        host: String,
        /// The relay's port (commonly 587 for `starttls`, 465 for `tls`, 25 for `none`).
        port: u16,
        /// How the connection is protected.
        #[serde(default)]
        security: SmtpSecurity,
        /// The login name, when the relay wants one.
        username: Option<String>,
        /// The login password; required with a username unless it is already stored.
        password: Option<String>,
        /// The sender address.
        from: String,
        /// The recipient addresses (1 to [`MAX_RECIPIENTS`]).
        to: Vec<String>,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The webhook URL. It is a credential: anyone holding it can post to the channel.
        webhook_url: String,
    },
    /// A JSON `POST` to any HTTP(S) endpoint.
    Webhook {
        /// The endpoint.
        url: String,
        /// Extra request headers (at most [`MAX_HEADERS`]), e.g. an `Authorization`. Their
        /// values are secrets; on a change, a value `null` keeps the stored one (while the
        /// `url` stays the same).
        #[serde(default)]
        headers: BTreeMap<String, Option<String>>,
        /// The key requests are signed with (16 to 256 characters), when signing is wanted.
        secret: Option<String>,
    },
}

/// How an SMTP channel protects its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with `STARTTLS`, which the server must offer.
    #[default]
    Starttls,
    /// TLS from the first byte ("implicit TLS", "SMTPS").
    Tls,
    /// No encryption at all: only for a relay on the same host or a trusted network.
    None,
}

impl SmtpSecurity {
    /// The name used in JSON: `starttls`, `tls` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starttls => "starttls",
            Self::Tls => "tls",
            Self::None => "none",
        }
    }
}

/// One refused field of a [`ChannelInput`]: where, and why, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldProblem {
    /// The field's path, such as `host`, `to[1]` or `headers.X-Foo`.
    pub field: String,
    /// Why it was refused. Never contains a secret's value.
    pub reason: String,
}

/// A validated channel configuration, secrets included.
///
/// Built only by [`ChannelConfig::validate`] (or by deserializing, which validates again).
/// Serializes to the [`ChannelInput`] form with every secret in clear, for sealed storage; use
/// [`ChannelConfig::redacted`] for anything a user sees. `Debug` shows the redacted form.
#[derive(Clone, PartialEq)]
pub struct ChannelConfig {
    channel: Channel,
}

/// One alert notification, as [`deliver`] sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The name of the rule that fired.
    pub rule_name: String,
    /// How loud the rule is.
    pub severity: Severity,
    /// Whether the alert fired, resolved, or this is a test from the channel's settings.
    pub status: NotificationStatus,
    /// What the alert is about, e.g. `container web on agent prod-1`.
    pub subject: String,
    /// One or a few sentences saying what happened.
    pub summary: String,
    /// When it happened, in unix seconds.
    pub at_unix: i64,
    /// The alert's id, for finding it in the UI and for deduplication by receivers.
    pub alert_id: String,
    /// The organization's name.
    pub organization: String,
    /// A link to the alert in the UI, when the server knows its public URL.
    pub link: Option<String>,
}

/// Why a notification is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// The alert started.
    Firing,
    /// The alert is over.
    Resolved,
    /// A test sent from the channel's settings; no alert exists.
    Test,
}

impl NotificationStatus {
    /// The name used in JSON payloads: `firing`, `resolved` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::Test => "test",
        }
    }
}

/// Why a notification could not be delivered. Remote answers are carried verbatim.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The receiver answered with a non-2xx HTTP status (a redirect too: none is followed).
    #[error("the receiver answered HTTP {status} {reason}")]
    Rejected {
        /// The HTTP status code.
        status: u16,
        /// The status's standard reason phrase (not the receiver's body).
        reason: &'static str,
    },
    /// The destination is an internal address the outbound policy refuses.
    #[error("refused to call the receiver: {message}")]
    Refused {
        /// Why (the address and what kind it is).
        message: String,
    },
    /// The receiver could not be reached, or did not answer in time.
    #[error("could not reach the receiver: {message}")]
    Transport {
        /// The HTTP client's error with its causes, joined by `: ` (never the URL).
        message: String,
    },
    /// The SMTP server could not be reached, refused the login, or refused the message.
    #[error("the SMTP server did not take the message: {message}")]
    Smtp {
        /// The SMTP client's error: the reply code and its class when the server answered
        /// (not the server's text), else what failed on this side.
        message: String,
    },
    /// The notification could not be turned into a request or a mail.
    #[error("could not prepare the notification: {message}")]
    Build {
        /// What went wrong.
        message: String,
    },
}

impl ChannelConfig {
    /// Validates `input` into a channel, reporting every refused field at once.
    ///
    /// `previous` is the channel's stored configuration when this is an update: a secret the
    /// input leaves out (absent, or an empty string) is taken from it when it is of the same
    /// kind. The SMTP password is only taken over while the host and username are unchanged.
    pub fn validate(
        input: ChannelInput,
        previous: Option<&ChannelConfig>,
    ) -> Result<Self, Vec<FieldProblem>> {
        let mut problems = Problems::default();
        let previous = previous.map(|p| &p.channel);
        let channel = match input {
            ChannelInput::Smtp {
                host,
                port,
                security,
                username,
                password,
                from,
                to,
            } => {
                let previous = match previous {
                    Some(Channel::Smtp(p)) => Some(p),
                    _ => None,
                };
                SmtpChannel::validate(
                    SmtpFields {
                        host,
                        port,
                        security,
                        username,
                        password,
                        from,
                        to,
                    },
                    previous,
                    &mut problems,
                )
                .map(Channel::Smtp)
            }
            ChannelInput::Slack { webhook_url } => {
                let previous = match previous {
                    Some(Channel::Slack(p)) => Some(p),
                    _ => None,
                };
                SlackChannel::validate(&webhook_url, previous, &mut problems).map(Channel::Slack)
            }
            ChannelInput::Webhook {
                url,
                headers,
                secret,
            } => {
                let previous = match previous {
                    Some(Channel::Webhook(p)) => Some(p),
                    _ => None,
                };
                WebhookChannel::validate(&url, headers, secret, previous, &mut problems)
                    .map(Channel::Webhook)
            }
        };
        match channel {
            Some(channel) if problems.0.is_empty() => Ok(Self { channel }),
            _ => Err(problems.0),
        }
    }

    /// The channel's kind: `smtp`, `slack` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match &self.channel {
            Channel::Smtp(_) => "smtp",
            Channel::Slack(_) => "slack",
            Channel::Webhook(_) => "webhook",
        }
    }

    /// The configuration for API responses: the non-secret fields verbatim, and every secret
    /// replaced by `{"set": true}` or `{"set": false}`.
    pub fn redacted(&self) -> Value {
        fn set(is_set: bool) -> Value {
            json!({ "set": is_set })
        }
        match &self.channel {
            Channel::Smtp(smtp) => json!({
                "type": "smtp",
                "host": smtp.host,
                "port": smtp.port,
                "security": smtp.security,
                "username": smtp.login.as_ref().map(|l| &l.username),
                "password": set(smtp.login.is_some()),
                "from": smtp.from,
                "to": smtp.to,
            }),
            Channel::Slack(_) => json!({
                "type": "slack",
                "webhook_url": set(true),
            }),
            Channel::Webhook(webhook) => json!({
                "type": "webhook",
                "url": webhook.url.as_str(),
                "headers": webhook
                    .headers
                    .keys()
                    .map(|name| (name.clone(), set(true)))
                    .collect::<serde_json::Map<_, _>>(),
                "secret": set(webhook.secret.is_some()),
            }),
        }
    }

    /// The configuration in input form, secrets included; validating it again gives `self`.
    fn to_input(&self) -> ChannelInput {
        match &self.channel {
            Channel::Smtp(smtp) => ChannelInput::Smtp {
                host: smtp.host.clone(),
                port: smtp.port,
                security: smtp.security,
                username: smtp.login.as_ref().map(|l| l.username.clone()),
                password: smtp.login.as_ref().map(|l| l.password.clone()),
                from: smtp.from.as_str().to_owned(),
                to: smtp.to.iter().map(|e| e.as_str().to_owned()).collect(),
            },
            Channel::Slack(slack) => ChannelInput::Slack {
                webhook_url: slack.webhook_url.as_str().to_owned(),
            },
            Channel::Webhook(webhook) => ChannelInput::Webhook {
                url: webhook.url.as_str().to_owned(),
                headers: webhook
                    .headers
                    .iter()
                    .map(|(name, value)| (name.clone(), Some(value.clone())))
                    .collect(),
                secret: webhook.secret.clone(),
            },
        }
    }
}

impl fmt::Debug for ChannelConfig {
    // Redacted on purpose: a config that ends up in a log line must not leak its secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelConfig({})", self.redacted())
    }
}

impl Serialize for ChannelConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_input().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ChannelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Validating again keeps the invariants even for stored data, and costs nothing
        // compared with the delivery that follows a load.
        let input = ChannelInput::deserialize(deserializer)?;
        Self::validate(input, None).map_err(|problems| {
            let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
            serde::de::Error::custom(format!("invalid stored channel: {}", listed.join("; ")))
        })
    }
}

/// Signs a webhook body: `sha256=` and the hex HMAC-SHA256 of `"<timestamp>.<body>"` keyed
/// with `secret`, the value of the [`SIGNATURE_HEADER`].
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let hex = keyed_mac(secret, timestamp, body)
        .map(|mac| hex::encode(mac.finalize().into_bytes()))
        .unwrap_or_default();
    format!("sha256={hex}")
}

/// Checks a received webhook request: whether `signature_header` is the signature of `body`
/// at `timestamp_header` under `secret`, and the timestamp is at most `tolerance_secs` away
/// from `now_unix` in either direction (so a captured request cannot be replayed later).
///
/// The comparison is constant-time. An empty secret never verifies.
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: u64,
) -> bool {
    if secret.is_empty() {
        return false;
    }
    let timestamp_header = timestamp_header.trim();
    if timestamp_header.is_empty() || !timestamp_header.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(timestamp) = timestamp_header.parse::<i64>() else {
        return false;
    };
    if timestamp.abs_diff(now_unix) > tolerance_secs {
        return false;
    }
    let Some(given) = signature_header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(given) else {
        return false;
    };
    keyed_mac(secret, timestamp, body).is_some_and(|mac| mac.verify_slice(&given).is_ok())
}

/// Sends `notification` through the channel `config`.
///
/// Slack and webhooks go through `outbound`'s HTTP client; SMTP connects to the address
/// `outbound` resolves. `now_unix` is the webhook signature's timestamp.
pub async fn deliver(
    config: &ChannelConfig,
    notification: &Notification,
    outbound: &Outbound,
    now_unix: i64,
) -> Result<(), DeliveryError> {
    match &config.channel {
        Channel::Smtp(smtp) => send_mail(outbound, smtp, notification).await,
        Channel::Slack(slack) => {
            let body = to_json_bytes(&slack_payload(notification))?;
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            post(outbound, &slack.webhook_url, headers, body).await
        }
        Channel::Webhook(webhook) => {
            let body = to_json_bytes(&webhook_payload(notification))?;
            let headers = webhook_headers(webhook, now_unix, &body)?;
            post(outbound, &webhook.url, headers, body).await
        }
    }
}

#[derive(Clone, PartialEq)]
enum Channel {
    Smtp(SmtpChannel),
    Slack(SlackChannel),
    Webhook(WebhookChannel),
}

#[derive(Clone, PartialEq)]
struct SmtpChannel {
    /// A lower-case DNS name or an IP address.
    host: String,
    /// Never 0.
    port: u16,
    security: SmtpSecurity,
    login: Option<SmtpLogin>,
    from: Email,
    /// 1 to [`MAX_RECIPIENTS`] distinct addresses.
    to: Vec<Email>,
}

#[derive(Clone, PartialEq)]
struct SmtpLogin {
    username: String,
    password: String,
}

#[derive(Clone, PartialEq)]
struct SlackChannel {
    /// https, or http to a loopback host.
    webhook_url: Url,
}

#[derive(Clone, PartialEq)]
struct WebhookChannel {
    /// Absolute http(s) without credentials.
    url: Url,
    /// Token names outside [`DENIED_HEADERS`], values that make valid header values.
    headers: BTreeMap<String, String>,
    /// [`MIN_SECRET_CHARS`] to [`MAX_SECRET_CHARS`] characters.
    secret: Option<String>,
}

/// The SMTP variant's fields, unpacked from [`ChannelInput::Smtp`].
struct SmtpFields {
    host: String,
    port: u16,
    security: SmtpSecurity,
    username: Option<String>,
    password: Option<String>,
    from: String,
    to: Vec<String>,
}

/// Headers a webhook channel may not set: those the HTTP client owns (framing, connection
/// management) or that would make the body mean something else, and our own.
const DENIED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

// `HeaderName::from_static` wants lower case; the public names keep the documented spelling.
const TIMESTAMP_HEADER_NAME: HeaderName = HeaderName::from_static("x-infrapilot-timestamp");
const SIGNATURE_HEADER_NAME: HeaderName = HeaderName::from_static("x-infrapilot-signature");

/// The prefix of the headers InfraPilot sets itself; a channel may not set any of them.
const OWN_HEADER_PREFIX: &str = "x-infrapilot-";

const MAX_HOST_CHARS: usize = 253;
const MAX_USERNAME_CHARS: usize = 256;
const MAX_PASSWORD_CHARS: usize = 1024;
const MAX_HEADER_NAME_CHARS: usize = 256;
const MAX_HEADER_VALUE_BYTES: usize = 4096;

/// Slack's attachment colors: red, amber, green.
const COLOR_CRITICAL: &str = "#d50200";
const COLOR_WARNING: &str = "#de9e31";
const COLOR_OK: &str = "#2eb67d";

/// Slack Block Kit's length limits (header text, section field, section text).
const SLACK_HEADER_CHARS: usize = 150;
const SLACK_FIELD_CHARS: usize = 2000;
const SLACK_TEXT_CHARS: usize = 3000;

/// The longest e-mail subject produced, in characters.
const MAX_SUBJECT_CHARS: usize = 200;

/// A cap on the whole SMTP exchange, since [`SMTP_TIMEOUT`] applies to each step on its own.
const SMTP_TOTAL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Problems(Vec<FieldProblem>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldProblem {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// Records `result`'s reason under `field` when it failed.
    fn check<T>(&mut self, field: impl Into<String>, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(reason) => {
                self.push(field, reason);
                None
            }
        }
    }
}

impl SmtpChannel {
    fn validate(
        input: SmtpFields,
        previous: Option<&SmtpChannel>,
        problems: &mut Problems,
    ) -> Option<Self> {
        let host = problems.check("host", parse_host(&input.host));
        let port = problems.check(
            "port",
            if input.port == 0 {
                Err("must be between 1 and 65535".to_owned())
            } else {
                Ok(input.port)
            },
        );
        let from = problems.check("from", parse_email(&input.from));
        let to = parse_recipients(&input.to, problems);
        // Forms send empty strings for untouched fields: an empty username is no username, an
        // empty password is "keep the stored one".
        let username = input.username.filter(|u| !u.is_empty());
        let password = input.password.filter(|p| !p.is_empty());
        let login = match (username, password) {
            (None, None) => Some(None),
            (None, Some(_)) => {
                problems.push("username", "must be set when a password is given");
                None
            }
            (Some(username), password) => {
                let username = problems.check("username", check_username(&username))?;
                match password {
                    Some(password) => problems
                        .check("password", check_password(&password))
                        .map(|password| Some(SmtpLogin { username, password })),
                    None => keep_password(previous, host.as_deref(), username, problems),
                }
            }
        };
        Some(Self {
            host: host?,
            port: port?,
            security: input.security,
            login: login?,
            from: from?,
            to: to?,
        })
    }
}

/// The stored password for `username` at `host`, when the update left the password out.
fn keep_password(
    previous: Option<&SmtpChannel>,
    host: Option<&str>,
    username: String,
    problems: &mut Problems,
) -> Option<Option<SmtpLogin>> {
    let stored = previous.and_then(|p| p.login.as_ref().map(|login| (p, login)));
    match stored {
        None => {
            problems.push("password", "is required when username is set");
            None
        }
        Some((previous, login)) => {
            // The host being invalid is reported already; saying more about it would be noise.
            let host = host?;
            if previous.host == host && login.username == username {
                Some(Some(SmtpLogin {
                    username,
                    password: login.password.clone(),
                }))
            } else {
                problems.push(
                    "password",
                    "must be entered again because the host or username changed: the stored \
                     password is only ever sent to the server and login it was entered for",
                );
                None
            }
        }
    }
}

impl SlackChannel {
    fn validate(
        webhook_url: &str,
        previous: Option<&SlackChannel>,
        problems: &mut Problems,
    ) -> Option<Self> {
        if webhook_url.is_empty() {
            return match previous {
                Some(previous) => Some(previous.clone()),
                None => {
                    problems.push("webhook_url", "is required");
                    None
                }
            };
        }
        let url = problems.check("webhook_url", parse_slack_url(webhook_url))?;
        Some(Self { webhook_url: url })
    }
}

impl WebhookChannel {
    fn validate(
        url: &str,
        headers: BTreeMap<String, Option<String>>,
        secret: Option<String>,
        previous: Option<&WebhookChannel>,
        problems: &mut Problems,
    ) -> Option<Self> {
        let url = problems.check("url", parse_http_url(url));
        // A stored header value goes only where it went before: to the same URL.
        let same_url = match (&url, previous) {
            (Some(url), Some(previous)) => *url == previous.url,
            _ => false,
        };
        let headers = keep_header_values(
            headers,
            previous.filter(|_| same_url).map(|p| &p.headers),
            problems,
        )
        .and_then(|headers| check_headers(headers, problems));
        let secret = match secret.filter(|s| !s.is_empty()) {
            None => Some(previous.and_then(|p| p.secret.clone())),
            Some(secret) => {
                let chars = secret.chars().count();
                if (MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&chars) {
                    Some(Some(secret))
                } else {
                    problems.push(
                        "secret",
                        format!(
                            "must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters long \
                             (it has {chars})"
                        ),
                    );
                    None
                }
            }
        };
        Some(Self {
            url: url?,
            headers: headers?,
            secret: secret?,
        })
    }
}

/// A host name or an IP address, as a relay is named: no scheme, no port, no spaces.
fn parse_host(input: &str) -> Result<String, String> {
    if input.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if input.chars().count() > MAX_HOST_CHARS {
        return Err(format!("must be at most {MAX_HOST_CHARS} characters long"));
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "'{}' must not contain spaces or control characters",
            input.escape_default()
        ));
    }
    if input.contains("://") {
        return Err(format!(
            "'{input}' must be a host name or IP address without a scheme such as smtp://"
        ));
    }
    if let Ok(ip) = input.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if input.starts_with('[') {
        return Err(format!(
            "'{input}': write an IPv6 address without brackets, as in ::1"
        ));
    }
    if input.contains(':') || input.contains('/') {
        return Err(format!(
            "'{input}' must be only a host name or IP address; put the port in port"
        ));
    }
    let domain = Domain::parse(input)
        .map_err(|e| format!("'{input}' is not a valid host name: {}", e.reason()))?;
    if domain.is_wildcard() {
        return Err(format!("'{input}' must not be a wildcard"));
    }
    Ok(domain.as_str().to_owned())
}

fn parse_email(input: &str) -> Result<Email, String> {
    Email::parse(input).map_err(|e| {
        format!(
            "'{}' is not a valid e-mail address: {}",
            e.value(),
            e.reason()
        )
    })
}

fn parse_recipients(to: &[String], problems: &mut Problems) -> Option<Vec<Email>> {
    if to.is_empty() {
        problems.push("to", "needs at least one recipient");
        return None;
    }
    if to.len() > MAX_RECIPIENTS {
        problems.push(
            "to",
            format!(
                "has {} recipients; at most {MAX_RECIPIENTS} are allowed",
                to.len()
            ),
        );
        return None;
    }
    let mut parsed: Vec<Email> = Vec::with_capacity(to.len());
    let mut all_valid = true;
    for (index, raw) in to.iter().enumerate() {
        let field = format!("to[{index}]");
        let Some(email) = problems.check(&field, parse_email(raw)) else {
            all_valid = false;
            continue;
        };
        if parsed.contains(&email) {
            problems.push(field, format!("'{email}' is already listed"));
            all_valid = false;
            continue;
        }
        parsed.push(email);
    }
    all_valid.then_some(parsed)
}

fn check_username(username: &str) -> Result<String, String> {
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(format!(
            "must be at most {MAX_USERNAME_CHARS} characters long"
        ));
    }
    if username.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(username.to_owned())
}

fn check_password(password: &str) -> Result<String, String> {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(format!(
            "must be at most {MAX_PASSWORD_CHARS} characters long"
        ));
    }
    // CR or LF could end an SMTP command line early if a mechanism ever sent it unencoded.
    if password.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
        return Err("must not contain CR, LF or NUL".to_owned());
    }
    Ok(password.to_owned())
}

/// An absolute http(s) URL with a host and without credentials. Reasons never echo the URL,
/// since a Slack URL is a secret.
fn parse_http_url(input: &str) -> Result<Url, String> {
    if input.is_empty() {
        return Err("is required".to_owned());
    }
    if input.chars().count() > MAX_URL_CHARS {
        return Err(format!("must be at most {MAX_URL_CHARS} characters long"));
    }
    let url = Url::parse(input).map_err(|e| format!("is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must start with https:// or http://, not {}://",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("must name a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not carry credentials (user:password@); send them in a header instead".to_owned(),
        );
    }
    Ok(url)
}

/// A Slack webhook URL: https, or http only to this machine so that a test receiver works.
fn parse_slack_url(input: &str) -> Result<Url, String> {
    let url = parse_http_url(input)?;
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(
            "must use https:// (http:// is allowed only for localhost, 127.0.0.1 and ::1)"
                .to_owned(),
        );
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // `host_str` writes IPv6 addresses in brackets, as they appear in the URL.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The headers with every `null` value replaced by the stored value of the same header
/// (`stored`: the previous headers, when they may be kept); a `null` with nothing to keep is
/// a problem.
fn keep_header_values(
    headers: BTreeMap<String, Option<String>>,
    stored: Option<&BTreeMap<String, String>>,
    problems: &mut Problems,
) -> Option<BTreeMap<String, String>> {
    let before = problems.0.len();
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let value = match value {
            Some(value) => value,
            None => {
                let kept = stored.and_then(|stored| {
                    stored
                        .iter()
                        .find(|(stored_name, _)| stored_name.eq_ignore_ascii_case(&name))
                        .map(|(_, value)| value.clone())
                });
                match kept {
                    Some(value) => value,
                    None => {
                        let reason = if stored.is_some() {
                            "is null but no value of this header is stored; give its value"
                        } else {
                            "is null: give its value (a stored value is kept only while the url \
                             stays the same)"
                        };
                        problems.push(format!("headers.{name}"), reason);
                        continue;
                    }
                }
            }
        };
        out.insert(name, value);
    }
    (problems.0.len() == before).then_some(out)
}

fn check_headers(
    headers: BTreeMap<String, String>,
    problems: &mut Problems,
) -> Option<BTreeMap<String, String>> {
    if headers.len() > MAX_HEADERS {
        problems.push(
            "headers",
            format!(
                "has {} headers; at most {MAX_HEADERS} are allowed",
                headers.len()
            ),
        );
        return None;
    }
    let before = problems.0.len();
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (name, value) in &headers {
        let field = format!("headers.{name}");
        if let Err(reason) = check_header_name(name) {
            problems.push(&field, reason);
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if let Some(first) = seen.get(&lower) {
            problems.push(
                &field,
                format!("repeats the header {first} (names are case-insensitive)"),
            );
            continue;
        }
        seen.insert(lower, name);
        if let Err(reason) = check_header_value(value) {
            problems.push(&field, reason);
        }
    }
    (problems.0.len() == before).then_some(headers)
}

fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a header name must not be empty".to_owned());
    }
    if name.len() > MAX_HEADER_NAME_CHARS {
        return Err(format!(
            "a header name must be at most {MAX_HEADER_NAME_CHARS} characters long"
        ));
    }
    // RFC 7230 token characters.
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if let Some(bad) = name.chars().find(|c| !u8::try_from(*c).is_ok_and(is_tchar)) {
        return Err(format!(
            "a header name may contain only letters, digits and !#$%&'*+-.^_`|~, not {bad:?}"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if DENIED_HEADERS.contains(&lower.as_str()) {
        return Err(format!(
            "{name} is set by InfraPilot's HTTP client and cannot be overridden"
        ));
    }
    if lower.starts_with(OWN_HEADER_PREFIX) {
        return Err("headers starting with X-InfraPilot- are reserved for InfraPilot".to_owned());
    }
    Ok(())
}

fn check_header_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Err(format!(
            "the value must be at most {MAX_HEADER_VALUE_BYTES} bytes long"
        ));
    }
    if value.chars().any(|c| matches!(c, '\r' | '\n' | '\0')) {
        return Err("the value must not contain CR, LF or NUL".to_owned());
    }
    // Whatever else the HTTP client would refuse at delivery time is refused now.
    HeaderValue::from_bytes(value.as_bytes())
        .map(drop)
        .map_err(|_| "the value must not contain control characters".to_owned())
}

fn keyed_mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    // HMAC takes keys of any length, so this never fails; `None` only satisfies the types.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The bracketed tag that starts a mail subject and a Slack title.
fn tag(n: &Notification) -> &'static str {
    match (n.status, n.severity) {
        (NotificationStatus::Resolved, _) => "[RESOLVED]",
        (NotificationStatus::Test, _) => "[TEST]",
        (NotificationStatus::Firing, Severity::Critical) => "[CRITICAL]",
        (NotificationStatus::Firing, Severity::Warning) => "[WARNING]",
        (NotificationStatus::Firing, Severity::Info) => "[INFO]",
    }
}

/// `at_unix` as RFC 3339 (UTC), or the bare number when it is out of range.
fn rfc3339(at_unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at_unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at_unix.to_string())
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` on one line: every control character (CR and LF included) becomes a space.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Escapes the three characters Slack's mrkdwn treats as control characters, so that user
/// text cannot form links or mentions such as `<!channel>`.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_payload(n: &Notification) -> Value {
    let color = match (n.status, n.severity) {
        (NotificationStatus::Resolved, _) | (_, Severity::Info) => COLOR_OK,
        (_, Severity::Critical) => COLOR_CRITICAL,
        (_, Severity::Warning) => COLOR_WARNING,
    };
    let emoji = match (n.status, n.severity) {
        (NotificationStatus::Resolved, _) => ":white_check_mark:",
        (NotificationStatus::Test, _) => ":test_tube:",
        (NotificationStatus::Firing, Severity::Critical) => ":red_circle:",
        (NotificationStatus::Firing, Severity::Warning) => ":warning:",
        (NotificationStatus::Firing, Severity::Info) => ":information_source:",
    };
    let tag = tag(n);
    let rule = one_line(&n.rule_name);
    let subject = one_line(&n.subject);
    // The header is plain_text, which Slack never parses for links or mentions.
    let header = truncate(&format!("{emoji} {tag} {rule}"), SLACK_HEADER_CHARS);
    let fallback = slack_escape(&format!("{tag} {rule}: {subject}"));
    let field = |name: &str, value: &str| {
        let value = if value.is_empty() { "—" } else { value };
        json!({
            "type": "mrkdwn",
            "text": truncate(&format!("*{name}*\n{}", slack_escape(value)), SLACK_FIELD_CHARS),
        })
    };
    let summary = if n.summary.trim().is_empty() {
        "(no summary)".to_owned()
    } else {
        truncate(&slack_escape(&n.summary), SLACK_TEXT_CHARS)
    };
    let mut context = format!(
        "Alert `{}` · {}",
        slack_escape(&one_line(&n.alert_id)),
        slack_escape(&one_line(&n.organization))
    );
    if let Some(link) = n.link.as_deref().filter(|l| is_web_link(l)) {
        // Inside <url|label> a `|` would end the URL early.
        let link = slack_escape(&link.replace('|', "%7C"));
        context.push_str(&format!(" · <{link}|Open in InfraPilot>"));
    }
    json!({
        "text": fallback,
        "attachments": [{
            "color": color,
            "blocks": [
                {
                    "type": "header",
                    "text": { "type": "plain_text", "text": header, "emoji": true },
                },
                {
                    "type": "section",
                    "fields": [
                        field("Severity", n.severity.as_str()),
                        field("Status", n.status.as_str()),
                        field("Subject", &subject),
                        field("Time", &rfc3339(n.at_unix)),
                    ],
                },
                {
                    "type": "section",
                    "text": { "type": "mrkdwn", "text": summary },
                },
                {
                    "type": "context",
                    "elements": [
                        { "type": "mrkdwn", "text": truncate(&context, SLACK_FIELD_CHARS) },
                    ],
                },
            ],
        }],
    })
}

fn is_web_link(link: &str) -> bool {
    Url::parse(link).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

fn webhook_payload(n: &Notification) -> Value {
    json!({
        "alert_id": n.alert_id,
        "status": n.status.as_str(),
        "severity": n.severity.as_str(),
        "rule": n.rule_name,
        "subject": n.subject,
        "summary": n.summary,
        "at": rfc3339(n.at_unix),
        "organization": n.organization,
        "link": n.link,
    })
}

fn webhook_headers(
    webhook: &WebhookChannel,
    now_unix: i64,
    body: &[u8],
) -> Result<HeaderMap, DeliveryError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &webhook.headers {
        // Validation refused anything these would refuse; a failure means a bug, not bad input.
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| DeliveryError::Build {
            message: format!("header name {name}: {e}"),
        })?;
        let value =
            HeaderValue::from_bytes(value.as_bytes()).map_err(|e| DeliveryError::Build {
                message: format!("value of header {name}: {e}"),
            })?;
        headers.append(name, value);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(TIMESTAMP_HEADER_NAME, HeaderValue::from(now_unix));
    if let Some(secret) = &webhook.secret {
        let signature = sign(secret.as_bytes(), now_unix, body);
        let value = HeaderValue::from_str(&signature).map_err(|e| DeliveryError::Build {
            message: format!("signature header: {e}"),
        })?;
        headers.insert(SIGNATURE_HEADER_NAME, value);
    }
    Ok(headers)
}

fn to_json_bytes(value: &Value) -> Result<Vec<u8>, DeliveryError> {
    serde_json::to_vec(value).map_err(|e| DeliveryError::Build {
        message: format!("encoding the JSON body: {e}"),
    })
}

async fn post(
    outbound: &Outbound,
    url: &Url,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<(), DeliveryError> {
    outbound
        .check_url(url)
        .map_err(|e| DeliveryError::Refused {
            message: e.to_string(),
        })?;
    let response = outbound
        .http()
        .post(url.clone())
        .headers(headers)
        .body(body)
        .send()
        .await
        // Without the URL: for Slack it is the credential.
        .map_err(|e| match crate::outbound::refusal_in(&e) {
            Some(refusal) => DeliveryError::Refused {
                message: refusal.to_string(),
            },
            None => DeliveryError::Transport {
                message: error_chain(&e.without_url()),
            },
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // The body is not read: what an arbitrary remote says is not echoed back.
    Err(DeliveryError::Rejected {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("(no standard reason)"),
    })
}

fn mail_subject(n: &Notification) -> String {
    // lettre encodes headers safely anyway; one line keeps the subject readable everywhere.
    truncate(
        &one_line(&format!("{} {}: {}", tag(n), n.rule_name, n.subject)),
        MAX_SUBJECT_CHARS,
    )
}

fn mail_body(n: &Notification) -> String {
    let mut body = String::new();
    body.push_str(if n.summary.trim().is_empty() {
        "(no summary)"
    } else {
        &n.summary
    });
    body.push_str("\n\n");
    let mut line = |label: &str, value: &str| {
        body.push_str(&format!("{label:<14}{value}\n"));
    };
    // One line each, so that no value can pass for a line of its own.
    line("Rule:", &one_line(&n.rule_name));
    line("Severity:", n.severity.as_str());
    line("Status:", n.status.as_str());
    line("Subject:", &one_line(&n.subject));
    line("Time:", &rfc3339(n.at_unix));
    line("Alert ID:", &one_line(&n.alert_id));
    line("Organization:", &one_line(&n.organization));
    if let Some(link) = &n.link {
        line("Link:", &one_line(link));
    }
    body.push_str("\n-- \nSent by InfraPilot.\n");
    body
}

fn mailbox(email: &Email) -> Result<Mailbox, DeliveryError> {
    let address = email
        .as_str()
        .parse::<lettre::Address>()
        .map_err(|e| DeliveryError::Build {
            message: format!("address {email}: {e}"),
        })?;
    Ok(Mailbox::new(None, address))
}

async fn send_mail(
    outbound: &Outbound,
    smtp: &SmtpChannel,
    n: &Notification,
) -> Result<(), DeliveryError> {
    let mut message = Message::builder()
        .from(mailbox(&smtp.from)?)
        .subject(mail_subject(n))
        .header(ContentType::TEXT_PLAIN);
    for to in &smtp.to {
        message = message.to(mailbox(to)?);
    }
    let message = message
        .body(mail_body(n))
        .map_err(|e| DeliveryError::Build {
            message: error_chain(&e),
        })?;
    // Connect to the address the outbound policy resolved (and allowed); TLS still verifies
    // the certificate against the host name.
    let address = outbound
        .resolve(&smtp.host, smtp.port)
        .await
        .map_err(|e| match e {
            crate::outbound::OutboundError::Refused(refusal) => DeliveryError::Refused {
                message: refusal.to_string(),
            },
            other => DeliveryError::Smtp {
                message: other.to_string(),
            },
        })?;
    let tls = match smtp.security {
        SmtpSecurity::None => Tls::None,
        SmtpSecurity::Starttls | SmtpSecurity::Tls => {
            let parameters =
                TlsParameters::new(smtp.host.clone()).map_err(|e| DeliveryError::Build {
                    message: format!("TLS settings for {}: {}", smtp.host, error_chain(&e)),
                })?;
            if smtp.security == SmtpSecurity::Tls {
                Tls::Wrapper(parameters)
            } else {
                Tls::Required(parameters)
            }
        }
    };
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string())
            .port(address.port())
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
    if let Some(login) = &smtp.login {
        builder = builder.credentials(Credentials::new(
            login.username.clone(),
            login.password.clone(),
        ));
    }
    let transport = builder.build();
    match tokio::time::timeout(SMTP_TOTAL_TIMEOUT, transport.send(message)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(DeliveryError::Smtp {
            message: smtp_reason(&e),
        }),
        Err(_) => Err(DeliveryError::Smtp {
            message: format!(
                "{}:{} did not finish the exchange within {} seconds",
                smtp.host,
                smtp.port,
                SMTP_TOTAL_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// What an SMTP failure says without the server's own text: the reply code and its class
/// when the server answered, else what failed on this side (connect, TLS, timeout).
fn smtp_reason(error: &lettre::transport::smtp::Error) -> String {
    match error.status() {
        Some(code) => {
            let class = if error.is_permanent() {
                "permanent"
            } else {
                "transient"
            };
            format!("the server answered {code} ({class} error)")
        }
        None if error.is_timeout() => "the server did not answer in time".to_owned(),
        None if error.is_response() => "the server's answer could not be read".to_owned(),
        None => error_chain(error),
    }
}

/// `error` and its causes, joined by `: `. A cause whose text the message already contains
/// (some errors print their source themselves) is not repeated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- validation -------------------------------------------------------------------

    const PASSWORD: &str = "correct-horse-battery-staple";
    const SLACK_URL: &str = "https://hooks.slack.com/services/T000/B000/SlackSecretToken123";
    const SECRET: &str = "webhook-signing-secret-0123456789";

    fn smtp_input() -> ChannelInput {
        ChannelInput::Smtp {
            host: "mail.example.com".into(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: Some("alerts".into()),
            password: Some(PASSWORD.into()),
            from: "alerts@example.com".into(),
            to: vec!["ops@example.com".into(), "oncall@example.org".into()],
        }
    }

    fn slack_input(url: &str) -> ChannelInput {
        ChannelInput::Slack {
            webhook_url: url.into(),
        }
    }

    fn webhook_input() -> ChannelInput {
        ChannelInput::Webhook {
            url: "https://hooks.example.com/infrapilot".into(),
            headers: BTreeMap::from([("Authorization".into(), Some("Bearer abc".into()))]),
            secret: Some(SECRET.into()),
        }
    }

    fn valid(input: ChannelInput) -> ChannelConfig {
        match ChannelConfig::validate(input.clone(), None) {
            Ok(config) => config,
            Err(problems) => panic!("{input:?} was refused: {problems:?}"),
        }
    }

    /// Asserts that `input` is refused with a problem on exactly the field `field`.
    fn check_refused(input: ChannelInput, previous: Option<&ChannelConfig>, field: &str) {
        match ChannelConfig::validate(input.clone(), previous) {
            Ok(_) => panic!("{input:?} was accepted; expected a problem on {field}"),
            Err(problems) => {
                let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
                assert_eq!(fields, [field], "{input:?}: {problems:?}");
                assert!(
                    problems.iter().all(|p| !p.reason.is_empty()),
                    "{problems:?}"
                );
            }
        }
    }

    fn with_smtp(edit: impl FnOnce(&mut ChannelInput)) -> ChannelInput {
        let mut input = smtp_input();
        edit(&mut input);
        input
    }

    fn smtp_host(host: &str) -> ChannelInput {
        with_smtp(|i| {
            if let ChannelInput::Smtp { host: h, .. } = i {
                *h = host.into();
            }
        })
    }

    fn webhook(url: &str, headers: &[(&str, &str)], secret: Option<&str>) -> ChannelInput {
        ChannelInput::Webhook {
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
                .collect(),
            secret: secret.map(str::to_owned),
        }
    }

    #[test]
    fn valid_channels_are_accepted_with_their_kind() {
        assert_eq!(valid(smtp_input()).kind(), "smtp");
        assert_eq!(valid(slack_input(SLACK_URL)).kind(), "slack");
        assert_eq!(valid(webhook_input()).kind(), "webhook");
        for host in [
            "127.0.0.1",
            "::1",
            "localhost",
            "smtp-relay.internal",
            "MAIL.Example.com",
        ] {
            valid(smtp_host(host));
        }
        for url in [
            "http://localhost:8080/hook",
            "http://127.0.0.1:9/x",
            "http://[::1]:9/x",
        ] {
            valid(slack_input(url));
        }
        valid(webhook("http://10.0.0.5:8080/in", &[], None));
    }

    #[test]
    fn smtp_host_must_be_a_bare_name_or_address() {
        for host in [
            "",
            "mail example.com",
            "smtp://mail.example.com",
            "mail.example.com:25",
            "[::1]",
            "mail.example.com/x",
            "*.example.com",
            "bad_label!.example.com",
            "1.2.3.999",
        ] {
            check_refused(smtp_host(host), None, "host");
        }
        let long = format!("{}.com", "a.".repeat(126));
        assert!(long.len() > 253);
        check_refused(smtp_host(&long), None, "host");
    }

    #[test]
    fn smtp_fields_are_checked_each_under_its_name() {
        let edit = |f: fn(&mut ChannelInput)| with_smtp(f);
        check_refused(
            edit(|i| {
                if let ChannelInput::Smtp { port, .. } = i {
                    *port = 0;
                }
            }),
            None,
            "port",
        );
        check_refused(
            edit(|i| {
                if let ChannelInput::Smtp { from, .. } = i {
                    *from = "not an address".into();
                }
            }),
            None,
            "from",
        );
        check_refused(
            edit(|i| {
                if let ChannelInput::Smtp { to, .. } = i {
                    to.clear();
                }
            }),
            None,
            "to",
        );
        check_refused(
            edit(|i| {
                if let ChannelInput::Smtp { to, .. } = i {
                    *to = (0..21).map(|n| format!("u{n}@example.com")).collect();
                }
            }),
            None,
            "to",
        );
        check_refused(
            edit(|i| {
                if let ChannelInput::Smtp { to, .. } = i {
                    to.push("nobody@localhost".into());
                }
            }),
            None,
            "to[2]",
        );
        check_refused(
            edit(|i| {
                if let ChannelInput::Smtp { to, .. } = i {
                    to.push("OPS@EXAMPLE.com".into());
                    to.push("ops@Example.COM".into());
                }
            }),
            None,
            "to[3]",
        );
        check_refused(
            edit(|i| {
                if let ChannelInput::Smtp { username, .. } = i {
                    *username = None;
                }
            }),
            None,
            "username",
        );
        check_refused(
            edit(|i| {
                if let ChannelInput::Smtp { password, .. } = i {
                    *password = None;
                }
            }),
            None,
            "password",
        );
        check_refused(
            edit(|i| {
                if let ChannelInput::Smtp { password, .. } = i {
                    *password = Some("a\r\nRSET".into());
                }
            }),
            None,
            "password",
        );
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let input = ChannelInput::Smtp {
            host: "smtp://x".into(),
            port: 0,
            security: SmtpSecurity::None,
            username: None,
            password: None,
            from: "x".into(),
            to: vec!["ok@example.com".into(), "bad".into()],
        };
        let Err(problems) = ChannelConfig::validate(input, None) else {
            panic!("accepted");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["host", "port", "from", "to[1]"]);
        assert!(problems[3].reason.contains("'bad'"), "{problems:?}");
    }

    #[test]
    fn slack_urls_must_be_https_except_to_this_machine() {
        for url in [
            "http://hooks.slack.com/services/T/B/X",
            "http://10.0.0.1/hook",
            "ftp://hooks.slack.com/x",
            "hooks.slack.com/services/T/B/X",
            "https://user:pw@hooks.slack.com/x",
            "not a url",
        ] {
            check_refused(slack_input(url), None, "webhook_url");
        }
        // An empty URL means "keep the stored one", and there is none.
        check_refused(slack_input(""), None, "webhook_url");
    }

    #[test]
    fn slack_url_problems_never_echo_the_url() {
        let secret_url = "http://hooks.slack.com/services/T/B/TopSecretPath";
        let Err(problems) = ChannelConfig::validate(slack_input(secret_url), None) else {
            panic!("accepted");
        };
        let text = format!("{problems:?}");
        assert!(!text.contains("TopSecretPath"), "{text}");
    }

    #[test]
    fn webhook_fields_are_checked_each_under_its_name() {
        let url = "https://hooks.example.com/in";
        check_refused(
            webhook("ftp://hooks.example.com/in", &[], None),
            None,
            "url",
        );
        check_refused(webhook("/relative/path", &[], None), None, "url");
        check_refused(
            webhook("https://user:pass@hooks.example.com/in", &[], None),
            None,
            "url",
        );
        check_refused(
            webhook("https://tok@hooks.example.com/", &[], None),
            None,
            "url",
        );
        check_refused(webhook("", &[], None), None, "url");
        for name in [
            "Bad Name",
            "Bad:Name",
            "",
            "Host",
            "content-length",
            "Content-Type",
            "Transfer-Encoding",
            "CONNECTION",
            "X-InfraPilot-Signature",
            "x-infrapilot-anything",
        ] {
            check_refused(
                webhook(url, &[(name, "v")], None),
                None,
                &format!("headers.{name}"),
            );
        }
        for value in ["a\r\nInjected: yes", "a\nb", "nul\0", "bell\u{7}"] {
            check_refused(
                webhook(url, &[("X-Foo", value)], None),
                None,
                "headers.X-Foo",
            );
        }
        check_refused(
            webhook(url, &[("X-Foo", "1"), ("x-foo", "2")], None),
            None,
            "headers.x-foo",
        );
        let many: Vec<(String, String)> = (0..21)
            .map(|n| (format!("X-H{n}"), "v".to_owned()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        check_refused(webhook(url, &many, None), None, "headers");
        valid(webhook(url, &many[..20], None));
        check_refused(webhook(url, &[], Some("too-short")), None, "secret");
        check_refused(webhook(url, &[], Some(&"s".repeat(257))), None, "secret");
        valid(webhook(url, &[], Some(&"s".repeat(16))));
        valid(webhook(url, &[], Some(&"s".repeat(256))));
    }

    #[test]
    fn omitted_secrets_are_kept_from_the_previous_config() {
        // SMTP: the password stays while host and username stay.
        let stored = valid(smtp_input());
        let update = with_smtp(|i| {
            if let ChannelInput::Smtp { password, port, .. } = i {
                *password = None;
                *port = 2525;
            }
        });
        let updated = ChannelConfig::validate(update.clone(), Some(&stored)).unwrap();
        match updated.to_input() {
            ChannelInput::Smtp { password, port, .. } => {
                assert_eq!(password.as_deref(), Some(PASSWORD));
                assert_eq!(port, 2525);
            }
            other => panic!("{other:?}"),
        }
        let empty = with_smtp(|i| {
            if let ChannelInput::Smtp { password, .. } = i {
                *password = Some(String::new());
            }
        });
        assert_eq!(
            ChannelConfig::validate(empty, Some(&stored)).unwrap(),
            stored
        );

        // ... but is not sent to another host or for another login.
        let moved = with_smtp(|i| {
            if let ChannelInput::Smtp { password, host, .. } = i {
                *password = None;
                *host = "evil.example.net".into();
            }
        });
        check_refused(moved, Some(&stored), "password");
        let renamed = with_smtp(|i| {
            if let ChannelInput::Smtp {
                password, username, ..
            } = i
            {
                *password = None;
                *username = Some("someone-else".into());
            }
        });
        check_refused(renamed, Some(&stored), "password");

        // Slack: an empty URL keeps the stored one.
        let stored = valid(slack_input(SLACK_URL));
        let kept = ChannelConfig::validate(slack_input(""), Some(&stored)).unwrap();
        assert_eq!(kept, stored);

        // Webhook: an absent secret keeps the stored one, other fields change.
        let stored = valid(webhook_input());
        let updated = ChannelConfig::validate(
            webhook("https://other.example.com/x", &[], None),
            Some(&stored),
        )
        .unwrap();
        match updated.to_input() {
            ChannelInput::Webhook {
                url,
                headers,
                secret,
            } => {
                assert_eq!(url, "https://other.example.com/x");
                assert!(headers.is_empty());
                assert_eq!(secret.as_deref(), Some(SECRET));
            }
            other => panic!("{other:?}"),
        }

        // A header value null keeps the stored one (names match case-insensitively), while
        // the URL stays the same; a new value replaces it.
        let with_null = |url: &str, name: &str| ChannelInput::Webhook {
            url: url.into(),
            headers: BTreeMap::from([
                (name.to_owned(), None),
                ("X-Team".to_owned(), Some("ops".to_owned())),
            ]),
            secret: None,
        };
        let same_url = "https://hooks.example.com/infrapilot";
        let kept =
            ChannelConfig::validate(with_null(same_url, "authorization"), Some(&stored)).unwrap();
        match kept.to_input() {
            ChannelInput::Webhook { headers, .. } => assert_eq!(
                headers,
                BTreeMap::from([
                    ("X-Team".to_owned(), Some("ops".to_owned())),
                    ("authorization".to_owned(), Some("Bearer abc".to_owned())),
                ])
            ),
            other => panic!("{other:?}"),
        }
        // Elsewhere the stored value would go to a URL of the editor's choosing: refused.
        check_refused(
            with_null("https://evil.example.com/", "Authorization"),
            Some(&stored),
            "headers.Authorization",
        );
        // A header never stored has nothing to keep; nor has a new channel.
        check_refused(
            with_null(same_url, "X-Other"),
            Some(&stored),
            "headers.X-Other",
        );
        check_refused(
            with_null(same_url, "Authorization"),
            None,
            "headers.Authorization",
        );

        // A previous config of another kind has nothing to keep.
        check_refused(slack_input(""), Some(&stored), "webhook_url");
        let unsigned = ChannelConfig::validate(
            webhook("https://x.example.com/", &[], None),
            Some(&valid(slack_input(SLACK_URL))),
        )
        .unwrap();
        assert_eq!(unsigned.redacted()["secret"], json!({ "set": false }));
    }

    #[test]
    fn redacted_shows_fields_but_never_secrets() {
        let smtp = valid(smtp_input());
        assert_eq!(
            smtp.redacted(),
            json!({
                "type": "smtp",
                "host": "mail.example.com",
                "port": 587,
                "security": "starttls",
                "username": "alerts",
                "password": { "set": true },
                "from": "alerts@example.com",
                "to": ["ops@example.com", "oncall@example.org"],
            })
        );
        let slack = valid(slack_input(SLACK_URL));
        assert_eq!(
            slack.redacted(),
            json!({ "type": "slack", "webhook_url": { "set": true } })
        );
        let hook = valid(webhook_input());
        assert_eq!(
            hook.redacted(),
            json!({
                "type": "webhook",
                "url": "https://hooks.example.com/infrapilot",
                "headers": { "Authorization": { "set": true } },
                "secret": { "set": true },
            })
        );
        for (config, secret) in [
            (&smtp, PASSWORD),
            (&slack, "SlackSecretToken123"),
            (&hook, SECRET),
            (&hook, "Bearer abc"),
        ] {
            let shown = serde_json::to_string(&config.redacted()).unwrap();
            assert!(!shown.contains(secret), "{shown}");
            let debug = format!("{config:?}");
            assert!(!debug.contains(secret), "{debug}");
        }
        let open = valid(webhook("https://x.example.com/", &[], None));
        assert_eq!(open.redacted()["secret"], json!({ "set": false }));
        let anonymous = valid(with_smtp(|i| {
            if let ChannelInput::Smtp {
                username, password, ..
            } = i
            {
                *username = None;
                *password = None;
            }
        }));
        assert_eq!(anonymous.redacted()["password"], json!({ "set": false }));
        assert_eq!(anonymous.redacted()["username"], Value::Null);
    }

    #[test]
    fn storage_form_round_trips_with_secrets() {
        for config in [
            valid(smtp_input()),
            valid(smtp_host("MAIL.Example.COM")),
            valid(slack_input(SLACK_URL)),
            valid(webhook_input()),
        ] {
            let stored = serde_json::to_string(&config).unwrap();
            let loaded: ChannelConfig = serde_json::from_str(&stored).unwrap();
            assert_eq!(loaded, config, "{stored}");
        }
        let stored = serde_json::to_string(&valid(smtp_input())).unwrap();
        assert!(stored.contains(PASSWORD));
        // Loading validates again.
        let bad = r#"{"type":"slack","webhook_url":"http://hooks.slack.com/x"}"#;
        let err = serde_json::from_str::<ChannelConfig>(bad).unwrap_err();
        assert!(err.to_string().contains("webhook_url"), "{err}");
    }

    #[test]
    fn input_json_is_strict_and_defaults_to_starttls() {
        let input: ChannelInput = serde_json::from_value(json!({
            "type": "smtp", "host": "mail.example.com", "port": 587,
            "from": "a@example.com", "to": ["b@example.com"],
        }))
        .unwrap();
        let ChannelInput::Smtp { security, .. } = input else {
            panic!("{input:?}");
        };
        assert_eq!(security, SmtpSecurity::Starttls);
        let unknown = serde_json::from_value::<ChannelInput>(json!({
            "type": "slack", "webhook_url": SLACK_URL, "channel": "#ops",
        }));
        assert!(unknown.is_err());
        let hook: ChannelInput = serde_json::from_value(json!({
            "type": "webhook", "url": "https://x.example.com/",
        }))
        .unwrap();
        assert_eq!(hook, webhook("https://x.example.com/", &[], None));
    }

    // ---- signatures ---------------------------------------------------------------------

    #[test]
    fn signatures_verify_only_unchanged_and_fresh() {
        let body = br#"{"alert_id":"a1"}"#;
        let now = 1_700_000_000;
        let signature = sign(b"k3y-k3y-k3y-k3y!", now, body);
        assert!(signature.starts_with("sha256="));
        assert_eq!(signature.len(), "sha256=".len() + 64);
        let ts = now.to_string();
        assert!(verify(b"k3y-k3y-k3y-k3y!", &ts, &signature, body, now, 300));
        assert!(verify(
            b"k3y-k3y-k3y-k3y!",
            &ts,
            &signature,
            body,
            now + 300,
            300
        ));
        assert!(!verify(
            b"k3y-k3y-k3y-k3y!",
            &ts,
            &signature,
            body,
            now + 301,
            300
        ));
        assert!(!verify(
            b"k3y-k3y-k3y-k3y!",
            &ts,
            &signature,
            body,
            now - 301,
            300
        ));
        assert!(!verify(
            b"another-key-here",
            &ts,
            &signature,
            body,
            now,
            300
        ));
        assert!(!verify(
            b"k3y-k3y-k3y-k3y!",
            &ts,
            &signature,
            b"{}",
            now,
            300
        ));
        assert!(!verify(
            b"k3y-k3y-k3y-k3y!",
            "1700000001",
            &signature,
            body,
            now,
            300
        ));
        assert!(!verify(
            b"k3y-k3y-k3y-k3y!",
            &ts,
            &signature[7..],
            body,
            now,
            300
        ));
        assert!(!verify(
            b"k3y-k3y-k3y-k3y!",
            "-5",
            &signature,
            body,
            now,
            u64::MAX
        ));
        assert!(!verify(b"", &ts, &sign(b"", now, body), body, now, 300));
        // Known answer, so that receivers in other languages can check their implementation.
        assert_eq!(
            sign(b"key", 0, b""),
            format!("sha256={}", {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"key").unwrap();
                mac.update(b"0.");
                hex::encode(mac.finalize().into_bytes())
            })
        );
    }

    // ---- HTTP delivery ------------------------------------------------------------------

    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::StatusCode;
    use infrapilot_core::outbound::OutboundPolicy;

    #[derive(Clone, Debug)]
    struct Captured {
        path: String,
        headers: HeaderMap,
        body: Bytes,
    }

    type Inbox = Arc<Mutex<Vec<Captured>>>;

    /// Starts an HTTP receiver on 127.0.0.1 that records every request and answers `status`
    /// with `reply`; returns its base URL and what it received.
    async fn receiver(status: StatusCode, reply: String) -> (String, Inbox) {
        let inbox: Inbox = Arc::default();
        let app = axum::Router::new()
            .fallback(
                move |State(inbox): State<Inbox>,
                      uri: axum::http::Uri,
                      headers: HeaderMap,
                      body: Bytes| {
                    inbox.lock().unwrap().push(Captured {
                        path: uri.path().to_owned(),
                        headers,
                        body,
                    });
                    let reply = reply.clone();
                    async move { (status, reply) }
                },
            )
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}"), inbox)
    }

    /// The outbound client with loopback opened: the receivers here run on this machine.
    fn client() -> Outbound {
        Outbound::new(OutboundPolicy::parse("allow", "127.0.0.0/8, ::1/128").unwrap()).unwrap()
    }

    fn notification(severity: Severity, status: NotificationStatus) -> Notification {
        Notification {
            rule_name: "disk-full".into(),
            severity,
            status,
            subject: "container web on agent prod-1".into(),
            summary: "Disk usage is 97% on /var/lib/docker.".into(),
            at_unix: 1_700_000_000,
            alert_id: "alert-0193".into(),
            organization: "Acme".into(),
            link: Some("https://infrapilot.example.com/alerts/alert-0193".into()),
        }
    }

    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn webhook_delivers_signed_json_with_custom_headers() {
        let (base, inbox) = receiver(StatusCode::NO_CONTENT, String::new()).await;
        let config = valid(webhook(
            &format!("{base}/hooks/in"),
            &[("X-Team", "ops"), ("Authorization", "Bearer t0ken")],
            Some(SECRET),
        ));
        let now = 1_700_000_123;
        let n = notification(Severity::Critical, NotificationStatus::Firing);
        deliver(&config, &n, &client(), now).await.unwrap();

        let got = inbox.lock().unwrap().pop().unwrap();
        assert_eq!(got.path, "/hooks/in");
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(
            body,
            json!({
                "alert_id": "alert-0193",
                "status": "firing",
                "severity": "critical",
                "rule": "disk-full",
                "subject": "container web on agent prod-1",
                "summary": "Disk usage is 97% on /var/lib/docker.",
                "at": "2023-11-14T22:13:20Z",
                "organization": "Acme",
                "link": "https://infrapilot.example.com/alerts/alert-0193",
            })
        );
        let header = |name: &str| got.headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("x-team"), "ops");
        assert_eq!(header("authorization"), "Bearer t0ken");
        assert_eq!(header("content-type"), "application/json");
        let timestamp = header("x-infrapilot-timestamp");
        let signature = header("x-infrapilot-signature");
        assert_eq!(timestamp, "1700000123");

        let secret = SECRET.as_bytes();
        assert!(verify(
            secret,
            &timestamp,
            &signature,
            &got.body,
            now + 5,
            300
        ));
        assert!(!verify(
            b"not-the-secret-at-all",
            &timestamp,
            &signature,
            &got.body,
            now,
            300
        ));
        let mut tampered = got.body.to_vec();
        tampered.extend_from_slice(b" ");
        assert!(!verify(secret, &timestamp, &signature, &tampered, now, 300));
        assert!(!verify(
            secret,
            &timestamp,
            &signature,
            &got.body,
            now + 301,
            300
        ));
        assert!(!verify(
            secret,
            &timestamp,
            &signature,
            &got.body,
            now - 301,
            300
        ));

        // Without a secret there is a timestamp but no signature.
        let open = valid(webhook(&format!("{base}/open"), &[], None));
        let n = notification(Severity::Info, NotificationStatus::Test);
        deliver(&open, &n, &client(), now).await.unwrap();
        let got = inbox.lock().unwrap().pop().unwrap();
        assert!(got.headers.get(SIGNATURE_HEADER).is_none());
        assert!(got.headers.get(TIMESTAMP_HEADER).is_some());
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(body["status"], "test");
        assert_eq!(body["severity"], "info");
    }

    #[tokio::test]
    async fn slack_gets_colored_blocks_with_user_text_escaped() {
        let (base, inbox) = receiver(StatusCode::OK, "ok".into()).await;
        let config = valid(slack_input(&format!("{base}/services/T/B/X")));
        let cases = [
            (
                Severity::Critical,
                NotificationStatus::Firing,
                COLOR_CRITICAL,
            ),
            (Severity::Warning, NotificationStatus::Firing, COLOR_WARNING),
            (Severity::Info, NotificationStatus::Firing, COLOR_OK),
            (Severity::Critical, NotificationStatus::Resolved, COLOR_OK),
            (Severity::Warning, NotificationStatus::Test, COLOR_WARNING),
        ];
        for (severity, status, color) in cases {
            let mut n = notification(severity, status);
            n.summary = "<script>alert(1)</script> & <!channel>".into();
            deliver(&config, &n, &client(), 0).await.unwrap();
            let got = inbox.lock().unwrap().pop().unwrap();
            assert_eq!(got.path, "/services/T/B/X");
            let text = String::from_utf8(got.body.to_vec()).unwrap();
            assert!(!text.contains("<script>"), "{text}");
            assert!(!text.contains("<!channel>"), "{text}");
            let body: Value = serde_json::from_str(&text).unwrap();
            let attachment = &body["attachments"][0];
            assert_eq!(attachment["color"], color, "{severity:?} {status:?}");
            let blocks = attachment["blocks"].as_array().unwrap();
            assert_eq!(blocks[0]["type"], "header");
            assert!(
                blocks[0]["text"]["text"]
                    .as_str()
                    .unwrap()
                    .contains("disk-full")
            );
            let fields = blocks[1]["fields"].as_array().unwrap();
            assert_eq!(fields.len(), 4);
            assert_eq!(
                fields[0]["text"],
                format!("*Severity*\n{}", severity.as_str())
            );
            assert_eq!(fields[1]["text"], format!("*Status*\n{}", status.as_str()));
            assert_eq!(fields[3]["text"], "*Time*\n2023-11-14T22:13:20Z");
            assert_eq!(
                blocks[2]["text"]["text"],
                "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!channel&gt;"
            );
            assert!(body["text"].as_str().unwrap().contains("disk-full"));
        }
    }

    #[tokio::test]
    async fn a_refusing_receiver_is_reported_by_its_status_never_its_body() {
        let n = notification(Severity::Warning, NotificationStatus::Firing);
        for (status, reason) in [
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            (StatusCode::FORBIDDEN, "Forbidden"),
        ] {
            let (base, _) = receiver(status, "secret internal answer".into()).await;
            let config = valid(webhook(&format!("{base}/x"), &[], None));
            let err = deliver(&config, &n, &client(), 0).await.unwrap_err();
            match &err {
                DeliveryError::Rejected {
                    status: s,
                    reason: r,
                } => {
                    assert_eq!((*s, *r), (status.as_u16(), reason));
                }
                other => panic!("{other:?}"),
            }
            let text = err.to_string();
            assert!(
                text.contains(&format!("HTTP {}", status.as_u16())),
                "{text}"
            );
            assert!(!text.contains("secret internal answer"), "{text}");
        }
    }

    /// A redirect is reported as the receiver's answer and never followed.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (target, inbox) = receiver(StatusCode::OK, String::new()).await;
        let location = format!("{target}/followed");
        let app = axum::Router::new().fallback(move || {
            let location = location.clone();
            async move {
                (
                    StatusCode::FOUND,
                    [(axum::http::header::LOCATION, location)],
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let n = notification(Severity::Info, NotificationStatus::Test);
        for config in [
            valid(webhook(&format!("http://{address}/hook"), &[], None)),
            valid(slack_input(&format!("http://{address}/services/T/B/x"))),
        ] {
            let err = deliver(&config, &n, &client(), 0).await.unwrap_err();
            assert!(
                matches!(err, DeliveryError::Rejected { status: 302, .. }),
                "{err:?}"
            );
        }
        assert!(
            inbox.lock().unwrap().is_empty(),
            "the redirect was followed"
        );
    }

    /// Every spelling of this machine, of a private network and of cloud metadata is refused
    /// by the default policy before anything is sent, for webhooks, Slack and SMTP alike; a
    /// receiver listening here is never reached. The allow-list opens loopback and nothing else.
    #[tokio::test]
    async fn internal_destinations_are_refused_in_every_spelling() {
        let (base, inbox) = receiver(StatusCode::OK, String::new()).await;
        let port = base.rsplit(':').next().unwrap().to_owned();
        let v6 = tokio::net::TcpListener::bind("[::1]:0").await.ok();
        let v6_port = v6.as_ref().map(|l| l.local_addr().unwrap().port());
        let refusing = Outbound::new(OutboundPolicy::default()).unwrap();
        let n = notification(Severity::Info, NotificationStatus::Test);
        let mut hosts: Vec<String> = [
            "127.0.0.1",
            "127.1",
            "0x7f000001",
            "2130706433",
            "0177.0.0.1",
            "[::ffff:127.0.0.1]",
            "0.0.0.0",
            "localhost",
        ]
        .iter()
        .map(|h| format!("{h}:{port}"))
        .collect();
        if let Some(p) = v6_port {
            hosts.push(format!("[::1]:{p}"));
        }
        for host in [
            "169.254.169.254",
            "[fd00:ec2::254]",
            "metadata.google.internal",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.0.1",
            "100.64.0.1",
            "[fe80::1]",
            "[fc00::1]",
        ] {
            hosts.push(format!("{host}:80"));
        }
        let mut cases = 0;
        for host in &hosts {
            for config in [
                valid(webhook(&format!("http://{host}/hook"), &[], None)),
                valid(slack_input(&format!("https://{host}/services/T/B/x"))),
            ] {
                let err = deliver(&config, &n, &refusing, 0).await.unwrap_err();
                assert!(
                    matches!(&err, DeliveryError::Refused { .. }),
                    "{host}: {err:?}"
                );
                cases += 1;
            }
        }
        for host in [
            "127.0.0.1",
            "localhost",
            "::1",
            "169.254.169.254",
            "10.0.0.1",
        ] {
            let config = valid(ChannelInput::Smtp {
                host: host.into(),
                port: 25,
                security: SmtpSecurity::None,
                username: None,
                password: None,
                from: "infrapilot@example.com".into(),
                to: vec!["ops@example.com".into()],
            });
            let err = deliver(&config, &n, &refusing, 0).await.unwrap_err();
            assert!(
                matches!(&err, DeliveryError::Refused { .. }),
                "smtp {host}: {err:?}"
            );
            cases += 1;
        }
        assert!(
            inbox.lock().unwrap().is_empty(),
            "a refused call got through"
        );
        assert_eq!(cases, hosts.len() * 2 + 5, "every case ran");
        // The allow-list opens loopback in each of its spellings.
        let config = valid(webhook(&format!("http://127.1:{port}/hook"), &[], None));
        deliver(&config, &n, &client(), 0).await.unwrap();
        assert_eq!(inbox.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_a_transport_error_without_the_url() {
        let port = closed_port();
        let config = valid(slack_input(&format!(
            "http://127.0.0.1:{port}/services/T/B/SlackSecretToken123"
        )));
        let n = notification(Severity::Critical, NotificationStatus::Firing);
        let err = deliver(&config, &n, &client(), 0).await.unwrap_err();
        let DeliveryError::Transport { message } = &err else {
            panic!("{err:?}");
        };
        assert!(!message.is_empty());
        assert!(
            message.to_ascii_lowercase().contains("connect"),
            "the cause should be in the message: {message}"
        );
        assert!(!message.contains("SlackSecretToken123"), "{message}");

        let hook = valid(webhook(&format!("http://127.0.0.1:{port}/x"), &[], None));
        let err = deliver(&hook, &n, &client(), 0).await.unwrap_err();
        assert!(matches!(err, DeliveryError::Transport { .. }), "{err:?}");
    }

    // ---- SMTP against a real server (aiosmtpd) ---------------------------------------------

    use std::path::PathBuf;
    use std::process::Stdio;

    use tokio::io::{AsyncBufReadExt, BufReader};

    /// An aiosmtpd server that appends each message (envelope first) to `mailbox`.
    const SMTP_SERVER: &str = r#"
import sys, time
try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
except ImportError as error:
    print("MISSING " + str(error), flush=True)
    sys.exit(3)

mailbox, port, login = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(mailbox, "ab") as out:
            out.write(("MAIL FROM: %s\nRCPT TO: %s\n" % (
                envelope.mail_from, " ".join(envelope.rcpt_tos))).encode())
            out.write(envelope.original_content or envelope.content)
            out.write(b"\n.\n")
        return "250 Message accepted for delivery"

def authenticator(server, session, envelope, mechanism, auth_data):
    given = auth_data.login.decode() + ":" + auth_data.password.decode()
    # handled=False makes aiosmtpd answer the failure itself (535).
    return AuthResult(success=given == login, handled=False)

options = {}
if login:
    options = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
controller = Controller(Handler(), hostname="127.0.0.1", port=port, **options)
controller.start()
print("READY", flush=True)
while True:
    time.sleep(3600)
"#;

    struct SmtpServer {
        child: tokio::process::Child,
        port: u16,
        mailbox: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl SmtpServer {
        /// Starts the server; `login` is `user:password` to require that login, or empty.
        async fn start(login: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mailbox = dir.path().join("mailbox");
            let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
            let port = closed_port();
            let mut child = tokio::process::Command::new("python3")
                .arg("-c")
                .arg(SMTP_SERVER)
                .arg(&mailbox)
                .arg(port.to_string())
                .arg(login)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "the SMTP tests need python3 with aiosmtpd, but python3 did not start: {e}"
                    )
                });
            let stdout = child.stdout.take().unwrap();
            let mut lines = BufReader::new(stdout).lines();
            let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("the aiosmtpd server did not start within 30 s"))
                .unwrap()
                .unwrap_or_default();
            if first != "READY" {
                let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
                if first.starts_with("MISSING") {
                    panic!(
                        "the SMTP tests need the Python package aiosmtpd ({first}); install it \
                         with `python3 -m pip install aiosmtpd`"
                    );
                }
                panic!("the aiosmtpd server did not start: {first}\n{stderr}");
            }
            Self {
                child,
                port,
                mailbox,
                _dir: dir,
            }
        }

        fn channel(&self, security: SmtpSecurity, login: Option<(&str, &str)>) -> ChannelConfig {
            valid(ChannelInput::Smtp {
                host: "127.0.0.1".into(),
                port: self.port,
                security,
                username: login.map(|(u, _)| u.to_owned()),
                password: login.map(|(_, p)| p.to_owned()),
                from: "infrapilot@example.com".into(),
                to: vec!["ops@example.com".into(), "oncall@example.org".into()],
            })
        }

        /// The mailbox's content once it contains `needle`, waiting up to 10 s for it.
        async fn wait_for(&self, needle: &str) -> String {
            let mut content = String::new();
            for _ in 0..100 {
                content = std::fs::read_to_string(&self.mailbox).unwrap_or_default();
                if content.contains(needle) {
                    return content;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{needle:?} did not arrive; the mailbox holds:\n{content}");
        }

        async fn stop(mut self) {
            self.child.kill().await.unwrap();
        }
    }

    #[tokio::test]
    async fn smtp_delivers_a_plain_text_mail_to_every_recipient() {
        let server = SmtpServer::start("").await;
        let config = server.channel(SmtpSecurity::None, None);
        let n = notification(Severity::Critical, NotificationStatus::Firing);
        deliver(&config, &n, &client(), 0).await.unwrap();

        let mail = server
            .wait_for("Subject: [CRITICAL] disk-full: container web on agent prod-1")
            .await;
        assert!(mail.contains("MAIL FROM: infrapilot@example.com"), "{mail}");
        assert!(
            mail.contains("RCPT TO: ops@example.com oncall@example.org"),
            "{mail}"
        );
        assert!(mail.contains("From: infrapilot@example.com"), "{mail}");
        assert!(
            mail.contains("Disk usage is 97% on /var/lib/docker."),
            "{mail}"
        );
        assert!(mail.contains("2023-11-14T22:13:20Z"), "{mail}");
        assert!(mail.contains("alert-0193"), "{mail}");
        assert!(mail.contains("Content-Type: text/plain"), "{mail}");

        // A resolution, with a subject that tries to smuggle in a header.
        let mut n = notification(Severity::Critical, NotificationStatus::Resolved);
        n.subject = "web\r\nBcc: attacker@example.net".into();
        deliver(&config, &n, &client(), 0).await.unwrap();
        let mail = server
            .wait_for("Subject: [RESOLVED] disk-full: web  Bcc: attacker@example.net")
            .await;
        assert!(!mail.contains("\nBcc:"), "{mail}");
        server.stop().await;
    }

    #[tokio::test]
    async fn smtp_logs_in_and_reports_the_refusal_code_not_its_text() {
        let server = SmtpServer::start("alerts:s3cret-pass").await;
        let n = notification(Severity::Warning, NotificationStatus::Test);
        let good = server.channel(SmtpSecurity::None, Some(("alerts", "s3cret-pass")));
        deliver(&good, &n, &client(), 0).await.unwrap();
        server.wait_for("Subject: [TEST] disk-full").await;

        let wrong = server.channel(SmtpSecurity::None, Some(("alerts", "wrong-pass")));
        let err = deliver(&wrong, &n, &client(), 0).await.unwrap_err();
        let DeliveryError::Smtp { message } = &err else {
            panic!("{err:?}");
        };
        assert!(
            message.contains("535") && message.contains("permanent"),
            "the server's code should be reported: {message}"
        );
        assert!(
            !message.contains("Authentication credentials invalid"),
            "the server's text is not echoed: {message}"
        );

        // Without a login the server refuses the sender.
        let anonymous = server.channel(SmtpSecurity::None, None);
        let err = deliver(&anonymous, &n, &client(), 0).await.unwrap_err();
        assert!(matches!(err, DeliveryError::Smtp { .. }), "{err:?}");
        assert!(err.to_string().contains("530"), "{err}");
        server.stop().await;
    }

    #[tokio::test]
    async fn starttls_to_a_server_without_it_says_so() {
        let server = SmtpServer::start("").await;
        let config = server.channel(SmtpSecurity::Starttls, None);
        let n = notification(Severity::Info, NotificationStatus::Firing);
        let err = deliver(&config, &n, &client(), 0).await.unwrap_err();
        let DeliveryError::Smtp { message } = &err else {
            panic!("{err:?}");
        };
        assert!(message.contains("STARTTLS"), "{message}");
        server.stop().await;
    }

    #[tokio::test]
    async fn an_unreachable_smtp_server_is_an_smtp_error() {
        let config = valid(ChannelInput::Smtp {
            host: "127.0.0.1".into(),
            port: closed_port(),
            security: SmtpSecurity::None,
            username: None,
            password: None,
            from: "infrapilot@example.com".into(),
            to: vec!["ops@example.com".into()],
        });
        let n = notification(Severity::Info, NotificationStatus::Firing);
        let err = deliver(&config, &n, &client(), 0).await.unwrap_err();
        let DeliveryError::Smtp { message } = &err else {
            panic!("{err:?}");
        };
        assert!(
            message.to_ascii_lowercase().contains("refused"),
            "{message}"
        );
    }
}
