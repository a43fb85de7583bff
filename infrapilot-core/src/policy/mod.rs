//! The policy engine: rules that allow, warn about or block operations on containers and
//! proxy hosts.
//!
//! A [`Policy`] holds a JSON condition describing a **violation**: when the condition is true
//! for a resource, the policy *fires* and its action (`block`, `warn` or `audit`) applies.
//! Policies are compiled once into a [`PolicySet`] (paths split, operands checked, regexes
//! built, order fixed by priority) and evaluated many times:
//!
//! ```
//! use infrapilot_core::ids::PolicyId;
//! use infrapilot_core::policy::{ActionKind, Decision, EvalContext, PolicySet, Template};
//! use serde_json::json;
//!
//! let id = PolicyId::from_uuid(uuid::Uuid::from_u128(1));
//! let set = PolicySet::compile([Template::NoPrivilegedContainers.policy(id)]).unwrap();
//! let container = json!({"image": "nginx:1.25", "host_config": {"privileged": true}});
//! let response = set.evaluate(&container, ActionKind::Create, &EvalContext::default());
//! assert_eq!(response.decision(), Decision::Block);
//! assert_eq!(response.violations()[0].evidence[0].path, "host_config.privileged");
//! ```
//!
//! A [`Response`] carries the decision (block wins over warn; audit-only violations allow),
//! every violation with the attribute paths and actual values behind it, and diagnostics for
//! comparisons the data did not allow. [`validate`] checks a document for the API and locates
//! every problem by JSON pointer; [`policy_document_schema`] is its JSON Schema. [`Template`]
//! lists the built-in policies and documents the resource shapes they read.

mod action;
mod compile;
mod diagnostic;
mod document;
mod evaluate;
mod message;
mod path;
mod set;
mod shape;
mod templates;
mod validate;

#[cfg(test)]
mod tests;

pub use action::{ActionKind, Decision, PolicyAction};
pub use compile::{CompileError, MAX_DEPTH, MAX_NODES, MAX_PATTERN_LEN};
pub use diagnostic::{Diagnostic, DiagnosticCode, Severity};
pub use document::{AppliesTo, Condition, Leaf, Operator, Policy};
pub use evaluate::{EvalContext, Evidence, Response, Violation};
pub use message::{MAX_MESSAGE_LEN, MessageTemplate};
pub use set::PolicySet;
pub use templates::Template;
pub use validate::{policy_document_schema, validate};
