//! The agent protocol, generated from `infrapilot/agent/v1/agent.proto`.
//!
//! The `.proto` file is the one source of truth for the wire; this crate only compiles it.
//! [`PROTOCOL_VERSION`] is what both sides send in `Hello`/`Welcome` and `EnrollRequest`.

#![allow(
    missing_docs,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

/// Version 1 of the protocol.
pub mod v1 {
    tonic::include_proto!("infrapilot.agent.v1");
}

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
