//! The tamper-evident audit log.
//!
//! Each organization has one hash chain of [`AuditEntry`]s. [`append`] places an entry after
//! the chain's head: entry `seq` stores `hash = SHA-256(prev_hash ‖ canonical(seq, entry))`,
//! where `prev_hash` is the hash of entry `seq - 1` (32 zero bytes for seq 1) and the
//! canonical encoding is documented in [`canonical`]. The control plane periodically signs
//! the head with Ed25519 ([`Checkpoint::sign`]). [`verify`] then tells whether a list of
//! entries and checkpoints is the chain that was written, and if not, where and how it was
//! tampered with (see [`verification`] for the exact rules).
//! [`AuditExport`] is the JSON a chain is exported as, for offline verification.
//!
//! Everything here is pure: times come in as microseconds since the Unix epoch, and the
//! signing key is passed in by the caller.

pub mod canonical;
mod chain;
mod checkpoint;
mod entry;
mod export;
mod hash;
mod names;
pub mod verification;

#[cfg(test)]
mod tamper_tests;
#[cfg(test)]
mod test_support;

pub use canonical::{canonical_entry, canonical_json, entry_hash};
pub use chain::{AppendError, ChainedEntry, append};
pub use checkpoint::{CHECKPOINT_CONTEXT, Checkpoint, CheckpointSignature};
pub use entry::{Actor, AuditEntry, Outcome, Resource};
pub use export::AuditExport;
pub use hash::ChainHash;
pub use names::{AuditAction, MAX_NAME_LEN, MAX_RESOURCE_ID_CHARS, ResourceId, ResourceKind};
pub use verification::{BreakKind, ChainBreak, VerifyReport, verify};
