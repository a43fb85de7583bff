//! InfraPilot's pure domain logic.
//!
//! Everything the control plane, the agent and the bindings agree on lives here, as plain
//! functions over validated values. This crate does no I/O: no files, no network, no clock, no
//! async runtime. Time and randomness come in as arguments, so every function is deterministic
//! and testable on its own. A test over `cargo metadata` (`tests/no_io_dependencies.rs`) holds
//! that line.
//!
//! The modules:
//! - [`ids`] — typed identifiers (organization, user, agent, …).
//! - [`values`] — validated user input: domains, upstreams, e-mail addresses, labels, CIDRs.
//! - [`policy`] — the policy engine: JSON conditions compiled once, decisions with diagnostics.

pub mod ids;
pub mod policy;
pub mod values;
