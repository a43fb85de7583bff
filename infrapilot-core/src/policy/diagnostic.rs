//! Diagnostics: problems found while validating a policy document or evaluating a resource.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::PolicyId;

/// One problem, located in the policy document by a JSON pointer.
///
/// Validation reports errors (the document will be refused) and warnings (it is accepted but
/// probably not what was meant). Evaluation reports warnings only, e.g. an attribute whose type
/// the operator cannot compare; the leaf is then false and evaluation goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Diagnostic {
    /// Whether the problem makes the document invalid.
    pub severity: Severity,
    /// A stable, machine-readable kind.
    pub code: DiagnosticCode,
    /// The policy concerned, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyId>,
    /// A JSON pointer (RFC 6901) into the policy document, e.g. `/condition/any/1/value`; empty
    /// for the document itself.
    pub pointer: String,
    /// What is wrong and what to change, for a human.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at {}: {}", self.pointer, self.message)
        }
    }
}

/// How bad a [`Diagnostic`] is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Accepted, but worth a look.
    Warning,
    /// The document is refused.
    Error,
}

/// The kind of a [`Diagnostic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DiagnosticCode {
    /// Something that must be a JSON object is not.
    NotAnObject,
    /// A key the document format does not know.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// A value has the wrong type or is out of range.
    InvalidValue,
    /// An attribute path cannot be parsed.
    InvalidPath,
    /// A `matches` pattern is not a valid regular expression.
    InvalidRegex,
    /// An operand does not suit its operator (`greater_than` with a string).
    InvalidOperand,
    /// The condition is nested too deeply.
    TooDeep,
    /// The condition has too many nodes.
    TooLarge,
    /// A part of the condition can never be true (an empty `any`).
    NeverMatches,
    /// At evaluation: an attribute has a type the operator cannot compare.
    TypeMismatch,
}
