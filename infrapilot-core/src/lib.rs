//! InfraPilot's pure domain logic.
//!
//! Everything the control plane, the agent and the bindings agree on lives here, as plain
//! functions over validated values. This crate does no I/O: no files, no network, no clock, no
//! async runtime. Time and randomness come in as arguments, so every function is deterministic
//! and testable on its own. A test over `cargo metadata` (`tests/no_io_dependencies.rs`) holds
//! that line.
//!
//! The modules:
//! - [`audit`] — the tamper-evident audit chain: entries, hashing, signed checkpoints, verification.
//! - [`enrollment`] — agent enrollment tokens: the printable token, stored record, redemption.
//! - [`ids`] — typed identifiers (organization, user, agent, …).
//! - [`values`] — validated user input: domains, upstreams, e-mail addresses, labels, CIDRs.

pub mod audit;
pub mod enrollment;
pub mod ids;
pub mod values;
