//! One error type for the API, answered as `application/problem+json` (RFC 9457).
//!
//! Client errors say what to change; an upstream's own message (nginx, Docker, an IdP) is
//! passed through verbatim. Internal errors say only "internal error" plus the request id,
//! and are logged with that id.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use infrapilot_core::rbac::{Action, Resource};
use infrapilot_core::values::ValueError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::store::StoreError;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

/// The problem document every error response carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong here, and what to change.
    pub detail: String,
    /// The request id, to find the server's log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The fields that were refused, each with its reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying (throttling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The policies that refused the operation, each with its message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<PolicyNotice>,
    /// For errors of an agent or its Docker engine: the stable code (`not_found`, `conflict`,
    /// `invalid`, `unavailable`, …); `detail` then holds the upstream's own message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<String>,
}

/// A policy that fired for an operation: refusing it (`block`), or warning about it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyNotice {
    /// The recorded violation's id.
    pub violation_id: String,
    /// The policy's id.
    pub policy_id: String,
    /// The policy's name.
    pub policy: String,
    /// `block`, `warn` or `audit`.
    pub action: String,
    /// The policy's message for this resource.
    pub message: String,
}

/// One refused field.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The field, as a path (`domains[2]`, `labels.env`).
    pub field: String,
    /// Why it was refused.
    pub reason: String,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request body or a parameter is invalid.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<FieldError>),
    /// The body is not JSON of the expected shape.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// No valid credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// Credentials are valid but the role does not allow the action.
    #[error("forbidden: {action:?} on {resource:?}")]
    Forbidden {
        /// What was attempted.
        action: Action,
        /// On what.
        resource: Resource,
    },
    /// A rule of the product refuses the request (last owner, edition, …).
    #[error("refused: {0}")]
    Refused(String),
    /// The thing does not exist, or belongs to another organization.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// It already exists, or the state does not allow the change.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An organization limit was reached.
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// Too many attempts; retry later.
    #[error("too many attempts")]
    TooManyRequests {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Something the request needs is not available now (an offline agent, the database).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// An unexpected failure; details are in the log only.
    #[error("internal: {0}")]
    Internal(String),
    /// An agent (or its Docker engine) refused or failed; `message` is its own text.
    #[error("{code}: {message}")]
    Upstream {
        /// The stable code of the agent's reply (`not_found`, `conflict`, …).
        code: String,
        /// The upstream message, verbatim.
        message: String,
    },
    /// A policy blocked the operation.
    #[error("blocked by policy")]
    PolicyBlocked(Vec<PolicyNotice>),
    /// A part of the request is larger than the server accepts.
    #[error("too large: {detail}")]
    TooLarge {
        /// Which part.
        part: RequestPart,
        /// What the limit is.
        detail: String,
    },
}

/// A part of a request that has a size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPart {
    /// The target (path and query): 414.
    Uri,
    /// The header fields: 431.
    Headers,
    /// The body: 413.
    Body,
}

impl AppError {
    /// An invalid single field.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AppError::Invalid(vec![FieldError {
            field: field.into(),
            reason: reason.into(),
        }])
    }

    /// An internal error with its cause, for the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        AppError::Internal(cause.to_string())
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            AppError::Invalid(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid input",
            ),
            AppError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed", "Malformed request"),
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            AppError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            AppError::Refused(_) => (StatusCode::FORBIDDEN, "refused", "Refused"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            AppError::LimitReached(_) => (StatusCode::FORBIDDEN, "limit-reached", "Limit reached"),
            AppError::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            AppError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
            AppError::Upstream { code, .. } => match code.as_str() {
                "not_found" => (
                    StatusCode::NOT_FOUND,
                    "upstream-not-found",
                    "Not found on the agent",
                ),
                "conflict" => (
                    StatusCode::CONFLICT,
                    "upstream-conflict",
                    "Conflict on the agent",
                ),
                "invalid" => (
                    StatusCode::BAD_REQUEST,
                    "upstream-invalid",
                    "Refused by the agent",
                ),
                "unavailable" | "cancelled" => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream-unavailable",
                    "Unavailable on the agent",
                ),
                "deadline_exceeded" => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream-timeout",
                    "The agent did not finish in time",
                ),
                "unsupported" => (
                    StatusCode::NOT_IMPLEMENTED,
                    "upstream-unsupported",
                    "Not supported by the agent",
                ),
                _ => (
                    StatusCode::BAD_GATEWAY,
                    "upstream-error",
                    "The agent failed",
                ),
            },
            AppError::PolicyBlocked(_) => {
                (StatusCode::FORBIDDEN, "policy-blocked", "Blocked by policy")
            }
            AppError::TooLarge { part, .. } => match part {
                RequestPart::Uri => (StatusCode::URI_TOO_LONG, "uri-too-long", "URI too long"),
                RequestPart::Headers => (
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers-too-large",
                    "Request header fields too large",
                ),
                RequestPart::Body => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "Request body too large",
                ),
            },
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, kind, title) = self.parts();
        let request_id = REQUEST_ID.try_with(Clone::clone).ok();
        let detail = match self {
            AppError::Invalid(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.reason))
                .collect::<Vec<_>>()
                .join("; "),
            AppError::Malformed(m) | AppError::Refused(m) | AppError::Conflict(m) => m.clone(),
            AppError::TooLarge { detail, .. } => detail.clone(),
            AppError::LimitReached(m) | AppError::Unavailable(m) => m.clone(),
            AppError::Unauthorized(m) => (*m).to_owned(),
            AppError::Forbidden { action, resource } => format!(
                "your role does not allow {} on {}",
                action.as_str(),
                resource.as_str()
            ),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::TooManyRequests { retry_after } => {
                format!("too many attempts; try again in {retry_after} seconds")
            }
            AppError::Internal(_) => "internal error; the server log has the details under this \
                                      request id"
                .to_owned(),
            AppError::Upstream { message, .. } => message.clone(),
            AppError::PolicyBlocked(notices) => notices
                .iter()
                .filter(|n| n.action == "block")
                .map(|n| format!("policy {:?}: {}", n.policy, n.message))
                .collect::<Vec<_>>()
                .join("; "),
        };
        Problem {
            kind: format!("https://infrapilot.dev/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            request_id,
            errors: match self {
                AppError::Invalid(errors) => errors.clone(),
                _ => Vec::new(),
            },
            retry_after: match self {
                AppError::TooManyRequests { retry_after } => Some(*retry_after),
                _ => None,
            },
            violations: match self {
                AppError::PolicyBlocked(notices) => notices.clone(),
                _ => Vec::new(),
            },
            upstream_code: match self {
                AppError::Upstream { code, .. } => Some(code.clone()),
                _ => None,
            },
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let AppError::TooManyRequests { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<ValueError> for AppError {
    fn from(e: ValueError) -> Self {
        AppError::field(e.field(), format!("{} (got {:?})", e.reason(), e.value()))
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => AppError::NotFound(what),
            StoreError::Conflict { what } => AppError::Conflict(format!("{what} already exists")),
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                AppError::Unavailable("the database is not answering".to_owned())
            }
            other => AppError::internal(other),
        }
    }
}

/// A JSON body whose refusal names the offending field.
///
/// Unlike `axum::Json`, a shape error is reported as 422 problem+json with the path of the
/// field (`domains[1]`) and serde's reason, and a syntax error as 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        if !is_json {
            return Err(AppError::Malformed(
                "the body must be JSON with Content-Type: application/json".to_owned(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::TooLarge {
                        part: RequestPart::Body,
                        detail: format!("the request body is too large: {}", e.body_text()),
                    }
                } else {
                    AppError::Malformed(format!("could not read the body: {e}"))
                }
            })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Ok(value) => {
                de.end()
                    .map_err(|e| AppError::Malformed(format!("the body is not valid JSON: {e}")))?;
                Ok(ApiJson(value))
            }
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    Err(AppError::Malformed(format!(
                        "the body is not valid JSON: {inner}"
                    )))
                } else {
                    let message = strip_position(&inner.to_string());
                    // Parsed again only to say where an unknown field is.
                    let document: serde_json::Value =
                        serde_json::from_slice(&bytes).unwrap_or_default();
                    Err(AppError::field(
                        document_field(None, &document, &path, &message),
                        message,
                    ))
                }
            }
        }
    }
}

/// The field a deserialization error is about, as a dotted path under `prefix` (`host`,
/// `rule`; none for a whole request body): `path` is serde_path_to_error's path of the
/// object being read (`.` for the top), and an unknown field adds its own name to it, so the
/// error names the field to remove (`host.ssl.forse_https`) rather than its parent.
pub fn field_path(prefix: Option<&str>, path: &str, message: &str) -> String {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    let mut parts: Vec<&str> = Vec::new();
    parts.extend(prefix);
    if path != "." {
        parts.push(path);
    }
    // serde_path_to_error's path already ends with the unknown key; older versions stop at
    // the object, so the key is added only when it is not there.
    if let Some(name) = unknown
        && path.rsplit('.').next() != Some(name)
    {
        parts.push(name);
    }
    if parts.is_empty() {
        "body".to_owned()
    } else {
        parts.join(".")
    }
}

/// Where the unknown field `name` really is, as a dotted path (`ssl.hsts.name`), when serde
/// reported it at `path` (dotted, `.` for the top) of `document`. serde loses track of where
/// it is inside an internally tagged enum (it buffers the object), so the reported path can
/// stop at the enum; the field is then found by looking below it, shallowest first. `None`
/// when it is not found there (the reported path is then the best there is).
pub fn locate_unknown(document: &serde_json::Value, path: &str, name: &str) -> Option<String> {
    // The object at `path`, and the segments leading to it.
    let mut at = document;
    let mut segments: Vec<String> = Vec::new();
    if path != "." {
        for part in path.split('.') {
            let (key, indexes) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !key.is_empty() {
                at = at.get(key)?;
            }
            for index in indexes.split('[').filter(|p| !p.is_empty()) {
                at = at.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
            }
            segments.push(part.to_owned());
        }
    }
    // Breadth first below it.
    let mut queue = std::collections::VecDeque::from([(at, segments)]);
    while let Some((value, route)) = queue.pop_front() {
        match value {
            serde_json::Value::Object(map) => {
                if map.contains_key(name) {
                    let mut route = route;
                    route.push(name.to_owned());
                    return Some(route.join("."));
                }
                for (key, child) in map {
                    let mut next = route.clone();
                    next.push(key.clone());
                    queue.push_back((child, next));
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    let mut next = route.clone();
                    match next.last_mut() {
                        Some(last) => last.push_str(&format!("[{i}]")),
                        None => next.push(format!("[{i}]")),
                    }
                    queue.push_back((child, next));
                }
            }
            _ => {}
        }
    }
    None
}

/// The field a deserialization error of `document` is about (see [`field_path`]), found
/// where it really is when serde lost track ([`locate_unknown`]).
pub fn document_field(
    prefix: Option<&str>,
    document: &serde_json::Value,
    path: &str,
    message: &str,
) -> String {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    // serde_path_to_error's path may already end with the unknown key.
    let parent = match unknown {
        Some(name) if path.rsplit('.').next() == Some(name) => path
            .strip_suffix(name)
            .map(|p| p.trim_end_matches('.'))
            .filter(|p| !p.is_empty())
            .unwrap_or("."),
        _ => path,
    };
    match unknown.and_then(|name| locate_unknown(document, parent, name)) {
        Some(found) => field_path(prefix, &found, ""),
        None => field_path(prefix, path, message),
    }
}

/// serde_json appends " at line 1 column 17"; the field path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Turns axum's own JSON rejections into problems (for extractors we do not wrap).
impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        AppError::Malformed(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{document_field, locate_unknown};

    #[test]
    fn an_unknown_field_is_named_where_it_is() {
        let doc = json!({"ssl": {"mode": "custom", "hsts": {"preloa": true}},
                         "locations": [{"path": "/"}, {"extra": {"oops": 1}}]});
        // serde stopped at the tagged `ssl`; the field is one level further down.
        assert_eq!(
            locate_unknown(&doc, "ssl", "preloa").as_deref(),
            Some("ssl.hsts.preloa")
        );
        assert_eq!(
            locate_unknown(&doc, "locations[1]", "oops").as_deref(),
            Some("locations[1].extra.oops")
        );
        assert_eq!(locate_unknown(&doc, ".", "absent"), None);
        assert_eq!(locate_unknown(&doc, "nowhere", "preloa"), None);
        // The path may already end with the field; the prefix goes first.
        let message = "unknown field `preloa`, expected one of `max_age_seconds`";
        assert_eq!(
            document_field(Some("host"), &doc, "ssl.preloa", message),
            "host.ssl.hsts.preloa"
        );
        assert_eq!(
            document_field(Some("host"), &doc, "ssl", message),
            "host.ssl.hsts.preloa"
        );
        // Any other error keeps serde's path.
        assert_eq!(
            document_field(Some("host"), &doc, "ssl.mode", "unknown variant `x`"),
            "host.ssl.mode"
        );
    }
}
