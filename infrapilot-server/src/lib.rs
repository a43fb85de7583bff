//! The InfraPilot control plane as a library.
//!
//! `main.rs` only starts tracing, loads [`config::Config`], builds the app with [`app`] and
//! serves it. Everything else — the HTTP API, storage, identity, audit — is here, so tests
//! drive the same router the binary serves.

pub mod store;
#[cfg(test)]
pub(crate) mod testing;
