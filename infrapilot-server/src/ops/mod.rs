//! The application layer: what a change does, whoever asks for it (an HTTP handler, the agent
//! service, a background task). Modules here never import `crate::api`, which only turns
//! requests into calls of them and results into responses (`tests/layering.rs` checks the
//! direction).
//!
//! - [`audit`]: audit entries in the transaction of the change they record.
//! - [`desired_state`]: an agent's proxy state assembled, pushed, and its reports recorded.
//! - [`policy_gate`]: operations passed through the organization's policies.

pub mod audit;
pub mod desired_state;
pub mod policy_gate;
