//! The errors of a running agent. Enrollment has its own ([`crate::enroll::EnrollError`]).

use std::time::Duration;

use crate::endpoint::EndpointError;
use crate::state::StateError;
use crate::tls::TlsError;

/// Why a session or the agent failed. Each variant says what failed and carries the
/// offending value or the upstream's message verbatim.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The server did not answer `Hello` in time.
    #[error(
        "the server did not answer Hello within {timeout:?}: is the endpoint an InfraPilot \
         server speaking agent protocol version {}?",
        infrapilot_proto::PROTOCOL_VERSION
    )]
    NoWelcome {
        /// How long the agent waited.
        timeout: Duration,
    },
    /// The server closed the stream before `Welcome`.
    #[error("the server closed the session before answering Hello")]
    ClosedBeforeWelcome,
    /// The server sent something else than the protocol allows at this point.
    #[error("protocol error: the server sent {got} where {expected} was expected")]
    UnexpectedMessage {
        /// What the protocol expects.
        expected: &'static str,
        /// What arrived.
        got: &'static str,
    },
    /// The server speaks another protocol version.
    #[error(
        "protocol version mismatch: this agent speaks version {agent}, the server version \
         {server}; upgrade the agent or the server so that they match"
    )]
    ProtocolMismatch {
        /// The agent's version.
        agent: u32,
        /// The server's version.
        server: u32,
    },
    /// The server's stream failed.
    #[error("the session stream broke: {message}")]
    StreamBroken {
        /// The transport's message, verbatim.
        message: String,
    },
    /// The agent's outgoing channel was closed (the transport is gone).
    #[error("the session's outgoing stream is closed")]
    OutgoingClosed,
    /// The server refused a call with a gRPC status.
    #[error("the server refused {call} ({code:?}): {message}")]
    Refused {
        /// The call: `Session` or `RenewCertificate`.
        call: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message, verbatim.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot connect to {endpoint}: {message}")]
    Connect {
        /// The endpoint dialled.
        endpoint: String,
        /// The transport's message, with its causes.
        message: String,
    },
    /// The configured endpoint is not valid.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The state directory could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The log buffer could not be opened.
    #[error("cannot open the log buffer: {0}")]
    Logs(#[from] crate::logs::BufferError),
    /// The TLS configuration could not be built from the stored key and certificates.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The certificate could not be renewed.
    #[error("cannot renew the agent certificate: {reason}")]
    Renewal {
        /// What went wrong.
        reason: String,
    },
}
