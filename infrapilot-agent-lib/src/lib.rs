//! The InfraPilot agent as a library.
//!
//! - [`enroll()`] trades an enrollment token for a client certificate, checking the server
//!   against the CA fingerprint in the token before sending anything.
//! - [`run_session`] is the protocol's session (hello, heartbeats, commands, cancellation)
//!   over any transport: the remote agent runs it over gRPC with mutual TLS ([`Agent`]), the
//!   server's built-in agent over in-process channels.
//! - [`CommandHandler`] is how commands are executed; [`BuiltinCommands`] answers `Ping` and
//!   `Inspect`.
//! - [`StateDir`] is the on-disk state; [`Backoff`] the reconnect schedule.
//! - [`nginx::NginxController`] applies proxy hosts to nginx with `nginx -t`, per-host
//!   quarantine and rollback.

pub mod agent;
pub mod backoff;
pub mod command;
pub mod config;
pub mod docker;
pub mod endpoint;
pub mod enroll;
pub mod error;
pub mod logs;
pub mod nginx;
pub mod probe;
pub mod renew;
pub mod session;
pub mod state;
pub mod tls;

#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use agent::{Agent, AgentConfig, StopReason, grpc_session};
pub use backoff::{Backoff, BackoffConfig};
pub use command::{
    AgentInfo, BuiltinCommands, Chain, CommandError, CommandHandler, ErrorCode, HandlerFuture,
    Input, Replies,
};
pub use config::{LogFormat, Settings, SettingsError};
pub use docker::DockerCommands;
pub use endpoint::{AgentEndpoint, EndpointError};
pub use enroll::{EnrollError, EnrollOutcome, enroll};
pub use error::AgentError;
pub use probe::{DockerStatus, HostProbe};
pub use session::{EndReason, SessionContext, SessionEnd, run_session};
pub use state::{AgentRecord, StateDir, StateError};

/// The cancellation token that stops a session or the agent, re-exported so callers need not
/// depend on `tokio-util` themselves.
pub use tokio_util::sync::CancellationToken;

/// The enrollment token, re-exported from `infrapilot-core`.
pub use infrapilot_core::enrollment::EnrollmentToken;
