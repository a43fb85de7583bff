//! One file per rule kind. Each `run` walks the time-ordered batch, updates the per-subject
//! memory and reports through [`Out`](super::evaluate::Out).

pub(super) mod certificate;
pub(super) mod exit;
pub(super) mod nginx;
pub(super) mod offline;
pub(super) mod restart_loop;
pub(super) mod threshold;
