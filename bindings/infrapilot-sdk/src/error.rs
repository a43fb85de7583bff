//! The one error type every SDK function returns.

use serde::Serialize;

use crate::policy::Diagnostic;

/// Why an SDK call failed.
///
/// Every variant carries plain strings and numbers, never a type of `infrapilot-core`, so the
/// SDK can change its core without changing this contract, and bindings can turn an error into
/// JSON ([`SdkError::to_json`]) or pick an exception class by [`SdkError::kind`]. The enum is
/// `#[non_exhaustive]`: new failure kinds may be added in minor versions.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SdkError {
    /// A string argument that must be JSON is not.
    #[error("invalid JSON: {message}")]
    InvalidJson {
        /// The parser's message, with line and column.
        message: String,
    },
    /// An argument was refused; `field` names the part (a dot path such as `domains[1]` or
    /// `context.agent_labels`) and `message` says what to change.
    #[error("{field}: {message}")]
    InvalidInput {
        /// The refused field, as a path into the argument.
        field: String,
        /// What is wrong and what to change.
        message: String,
    },
    /// A policy set did not compile. `diagnostics` locates every problem by a JSON pointer
    /// into the policy set as it was given.
    #[error("the policy set is invalid: {message}")]
    InvalidPolicy {
        /// The first problem, for a human.
        message: String,
        /// Every problem, with its pointer.
        diagnostics: Vec<Diagnostic>,
    },
    /// A docker-compose file could not be read.
    #[error("invalid compose file: {message}")]
    InvalidCompose {
        /// What is wrong.
        message: String,
        /// The offending part (`services.web.mem_limit`), when known.
        field: Option<String>,
        /// The 1-based line of a YAML syntax error, when known.
        line: Option<usize>,
        /// The 1-based column of a YAML syntax error, when known.
        column: Option<usize>,
    },
    /// An enrollment token string was refused. The message never repeats the token's secret.
    #[error("{message}")]
    InvalidEnrollmentToken {
        /// What is wrong with the token.
        message: String,
    },
    /// A public key is not 64 hex digits encoding an Ed25519 key.
    #[error("invalid public key: {message}")]
    InvalidKey {
        /// What is wrong with the key.
        message: String,
    },
    /// The API answered with a problem document (RFC 9457). Boxed: it is the largest
    /// variant, and every `Result` of the SDK would otherwise carry its size.
    #[error("{} ({}): {}", .0.title, .0.status, .0.detail)]
    Api(Box<ApiProblem>),
    /// The API could not be reached, or the connection failed.
    #[error("could not reach the API: {message}")]
    Transport {
        /// The transport's message.
        message: String,
    },
    /// The API answered something the SDK does not understand (a non-problem error body, or a
    /// body that does not match the documented schema).
    #[error("unexpected answer from the API (HTTP {status}): {message}")]
    UnexpectedResponse {
        /// The HTTP status.
        status: u16,
        /// What was unexpected.
        message: String,
    },
}

/// A problem document the API answered with (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiProblem {
    /// The HTTP status.
    pub status: u16,
    /// The problem's stable type URI.
    pub problem_type: String,
    /// The problem's short title.
    pub title: String,
    /// What went wrong and what to change.
    pub detail: String,
    /// The refused fields, each with its reason.
    pub errors: Vec<FieldError>,
    /// The server's request id, to find its log lines.
    pub request_id: Option<String>,
    /// Seconds to wait before retrying, when throttled.
    pub retry_after: Option<u64>,
}

/// One field the API refused, from a problem document's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FieldError {
    /// The field, as a path (`domains[2]`, `labels.env`).
    pub field: String,
    /// Why it was refused.
    pub reason: String,
}

impl SdkError {
    /// A stable snake_case name for the variant (`invalid_input`, `api`, …), for bindings that
    /// map errors to exception classes.
    pub fn kind(&self) -> &'static str {
        match self {
            SdkError::InvalidJson { .. } => "invalid_json",
            SdkError::InvalidInput { .. } => "invalid_input",
            SdkError::InvalidPolicy { .. } => "invalid_policy",
            SdkError::InvalidCompose { .. } => "invalid_compose",
            SdkError::InvalidEnrollmentToken { .. } => "invalid_enrollment_token",
            SdkError::InvalidKey { .. } => "invalid_key",
            SdkError::Api(_) => "api",
            SdkError::Transport { .. } => "transport",
            SdkError::UnexpectedResponse { .. } => "unexpected_response",
        }
    }

    /// The error as JSON: `{"kind": …, "message": …, …the variant's fields}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}));
        if let Some(map) = value.as_object_mut() {
            map.insert("kind".to_owned(), self.kind().into());
            // Variants already named `message` keep theirs; the others get the display text
            // so that every error JSON has a human message in the same place.
            map.entry("message")
                .or_insert_with(|| serde_json::Value::String(self.to_string()));
            map.insert("display".to_owned(), self.to_string().into());
        }
        value
    }

    /// An [`SdkError::InvalidInput`] for `field`.
    pub(crate) fn input(field: impl Into<String>, message: impl Into<String>) -> Self {
        SdkError::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Deserializes `value` as `T`, naming the refused field (prefixed with `root`) on failure.
    pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
        value: &serde_json::Value,
        root: &str,
    ) -> Result<T, SdkError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = match (root.is_empty(), path.as_str()) {
                (_, ".") => root.to_owned(),
                (true, p) => p.to_owned(),
                (false, p) => format!("{root}.{p}"),
            };
            let field = if field.is_empty() {
                "(root)".to_owned()
            } else {
                field
            };
            SdkError::input(field, e.into_inner().to_string())
        })
    }
}

/// Parses a JSON string, as the string entry points of bindings do.
pub fn parse_json(input: &str) -> Result<serde_json::Value, SdkError> {
    serde_json::from_str(input).map_err(|e| SdkError::InvalidJson {
        message: e.to_string(),
    })
}
