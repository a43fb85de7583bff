//! InfraPilot's SDK: a small, stable, JSON-friendly facade over `infrapilot-core`, and a typed
//! async client for the HTTP API.
//!
//! The facade is what the Python and Node bindings wrap, each function in a few lines: inputs
//! are [`serde_json::Value`]s (or strings), answers are plain serializable structs that carry
//! the result *and* its diagnostics, and every failure is one [`SdkError`] — a
//! `#[non_exhaustive]` enum of strings and numbers that never exposes a core type, so the
//! core can change underneath without breaking a binding.
//!
//! - Policies: [`PolicyEngine::from_json`] compiles a policy set (documents and template
//!   references), [`PolicyEngine::evaluate`] answers `{decision, violations, diagnostics}`,
//!   [`validate_policy`] locates every problem of a document by JSON pointer,
//!   [`list_templates`] lists the built-in policies, [`evaluate_compose`] checks every service
//!   of a docker-compose file.
//! - nginx: [`validate_proxy_host`] and [`render_proxy_host`]; errors name the field.
//! - Audit: [`verify_audit_export`] checks an export offline with a trusted public key.
//! - Enrollment: [`inspect_enrollment_token`] reads a token's public parts.
//! - [`client`]: the HTTP API.
//!
//! ```
//! use infrapilot_sdk::{Decision, PolicyEngine};
//! use serde_json::json;
//!
//! let engine = PolicyEngine::from_json(&json!([{"template": "no_privileged_containers"}]))?;
//! let container = json!({"image": "nginx:1.25", "host_config": {"privileged": true}});
//! let answer = engine.evaluate(&container, "create", &json!({"now": 0}))?;
//! assert_eq!(answer.decision, Decision::Block);
//! assert_eq!(answer.violations[0].evidence[0].path, "host_config.privileged");
//! # Ok::<(), infrapilot_sdk::SdkError>(())
//! ```
//!
//! An evaluation context is `{"agent_labels": {"env": "production"}, "environment":
//! "production", "now": 1700000000}`; every key is optional, the environment defaults to the
//! `env` label and `now` (unix seconds) to the current time.

mod audit;
pub mod client;
mod compose;
mod enrollment;
mod error;
mod nginx;
mod policy;

pub use audit::{AuditBreak, AuditReport, verify_audit_export};
pub use compose::{
    ComposeEvaluation, ServiceEvaluation, compose_resources, evaluate_compose,
    evaluate_compose_with,
};
pub use enrollment::{EnrollmentTokenInfo, inspect_enrollment_token};
pub use error::{ApiProblem, FieldError, SdkError, parse_json};
pub use nginx::{
    RenderedFile, RenderedHost, default_layout, render_proxy_host, validate_proxy_host,
};
pub use policy::{
    Decision, Diagnostic, Evaluation, Evidence, PolicyEngine, TemplateInfo, Validation, Violation,
    context_json, list_templates, validate_policy,
};
