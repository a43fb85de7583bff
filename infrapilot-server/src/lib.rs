//! The InfraPilot control plane as a library.
//!
//! `main.rs` only starts tracing, loads [`config::Config`], builds the app with [`app()`] and
//! serves it. Everything else — the HTTP API, storage, identity, audit — is here, so tests
//! drive the same router the binary serves.

pub mod agents;
pub mod alerts;
pub mod api;
pub mod app;
pub mod auth;
pub mod ca;
pub mod config;
pub mod error;
pub mod keys;
pub mod logs;
pub mod metrics;
pub mod ops;
pub mod outbound;
pub mod serve;
#[cfg(test)]
mod serve_tests;
pub mod store;
pub mod util;

pub use app::{AppState, app, openapi};
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
