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
//! - [`desired`] — an agent's desired state (proxy hosts) and its apply report.
//! - [`docker`] — Docker operations as data: requests to an agent, its replies, stack grouping,
//!   network rules, and a container's attributes for the policy engine.
//! - [`enrollment`] — agent enrollment tokens: the printable token, stored record, redemption.
//! - [`events`] — the event inventory's kinds, and Docker's container events as the agent ships them.
//! - [`ids`] — typed identifiers (organization, user, agent, …).
//! - [`values`] — validated user input: domains, upstreams, e-mail addresses, labels, CIDRs.
//! - [`rbac`] — organization and platform roles, and the permission matrix.
//! - [`identity`] — passwords, access and refresh tokens, TOTP, backup codes, login throttling.
//! - [`nginx`] — the nginx config renderer: proxy/redirection hosts to a deterministic file set.
//! - [`alerts`] — alert rules and their pure evaluation over observations.
//! - [`logs`] — log line parsing: levels, timestamps, nginx access and error logs.
//! - [`outbound`] — which addresses the server may call when a tenant chose the destination.
//! - [`policy`] — the policy engine: JSON conditions compiled once, decisions with diagnostics.

pub mod acme;
pub mod alerts;
pub mod audit;
pub mod desired;
pub mod docker;
pub mod enrollment;
pub mod events;
pub mod identity;
pub mod ids;
pub mod logs;
pub mod nginx;
pub mod outbound;
pub mod policy;
pub mod rbac;
pub mod values;
