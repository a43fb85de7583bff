//! Commands: the [`CommandHandler`] contract and the built-in commands (`Ping`, `Inspect`).
//!
//! The session ([`crate::session::run_session`]) runs each command in its own task and owns
//! everything around the handler: the reply's request id and sequence numbers, the deadline,
//! cancellation, and turning the handler's result into the final `Done` or `Error` message.
//! A handler only does the work.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use infrapilot_proto::v1::command::Kind;
use infrapilot_proto::v1::{AgentMessage, CommandReply, agent_message, command_reply};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::probe::{DockerStatus, HostProbe};

/// The future a [`CommandHandler`] returns.
pub type HandlerFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<u8>, CommandError>> + Send + 'a>>;

/// Executes commands of some kinds.
///
/// Contract:
/// - [`CommandHandler::handle`] is called once per command, each call in its own task, possibly
///   many at once; a handler must be safe to call concurrently.
/// - The returned future may be dropped at any `.await` point, when the command is cancelled or
///   its deadline passes. The session then sends the `Error` reply (`cancelled` or
///   `deadline_exceeded`) itself; the handler must leave nothing half-done that a drop cannot
///   undo.
/// - `Ok(payload)` becomes `Done { payload }` (JSON by convention); `Err` becomes
///   `Error { code, message }`. A streaming command sends its chunks with [`Replies::chunk`]
///   before returning.
/// - A handler that does not know `kind` returns [`CommandError::unsupported`], so handlers can
///   be chained ([`Chain`]).
pub trait CommandHandler: Send + Sync + 'static {
    /// Runs one command of kind `kind`, sending any streamed chunks through `replies`.
    fn handle<'a>(&'a self, kind: &'a Kind, replies: &'a Replies) -> HandlerFuture<'a>;
}

/// The stable error codes of a command reply (`Error.code` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The thing the command is about does not exist.
    NotFound,
    /// The command conflicts with the current state.
    Conflict,
    /// The command's arguments are invalid.
    Invalid,
    /// Something the command needs (the Docker engine, nginx) is unavailable.
    Unavailable,
    /// The command's deadline passed before it finished.
    DeadlineExceeded,
    /// The caller cancelled the command.
    Cancelled,
    /// This agent does not support the command.
    Unsupported,
    /// The agent failed in a way that is not the caller's to fix.
    Internal,
}

impl ErrorCode {
    /// The code as sent on the wire, e.g. `"unsupported"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Invalid => "invalid",
            Self::Unavailable => "unavailable",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Cancelled => "cancelled",
            Self::Unsupported => "unsupported",
            Self::Internal => "internal",
        }
    }
}

/// A command's failure: a stable code and a message (an upstream's own text, verbatim).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct CommandError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl CommandError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The error for a command kind this handler does not know.
    pub fn unsupported(what: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::Unsupported,
            format!("this agent does not support the command {what}"),
        )
    }
}

/// The reply channel of one command. The session creates it; a streaming handler sends
/// chunks through it. Sequence numbers start at 0 and increase by one per message, the
/// final `Done` or `Error` included.
#[derive(Debug)]
pub struct Replies {
    request_id: String,
    next_seq: std::sync::atomic::AtomicU64,
    outgoing: mpsc::Sender<AgentMessage>,
    input: std::sync::Mutex<Option<mpsc::Receiver<Input>>>,
}

/// Input the server sends to a running command (an interactive exec).
pub type Input = infrapilot_proto::v1::command_input::Kind;

impl Replies {
    pub(crate) fn new(
        request_id: String,
        outgoing: mpsc::Sender<AgentMessage>,
        input: Option<mpsc::Receiver<Input>>,
    ) -> Self {
        Self {
            request_id,
            next_seq: std::sync::atomic::AtomicU64::new(0),
            outgoing,
            input: std::sync::Mutex::new(input),
        }
    }

    /// A reply channel for driving a handler directly in tests: the receiver gets every message
    /// the handler sends (chunks), the sender feeds the command's input.
    #[cfg(any(test, feature = "test-support"))]
    pub fn for_test(request_id: &str) -> (Self, mpsc::Receiver<AgentMessage>, mpsc::Sender<Input>) {
        let (outgoing, replies) = mpsc::channel(1024);
        let (input_tx, input_rx) = mpsc::channel(256);
        (
            Self::new(request_id.to_owned(), outgoing, Some(input_rx)),
            replies,
            input_tx,
        )
    }

    /// Takes the command's input channel (stdin, resizes); `None` after the first call. Input
    /// that arrives while nobody reads it waits in a bounded queue; when the queue is full,
    /// further input is dropped with a warning.
    pub fn take_input(&self) -> Option<mpsc::Receiver<Input>> {
        self.input.lock().ok().and_then(|mut i| i.take())
    }

    /// The command's request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Sends one chunk of a streamed reply. Fails with [`ErrorCode::Unavailable`] when the
    /// session is gone.
    pub async fn chunk(&self, bytes: Vec<u8>) -> Result<(), CommandError> {
        self.send(command_reply::Result::Chunk(bytes)).await
    }

    pub(crate) async fn send(&self, result: command_reply::Result) -> Result<(), CommandError> {
        let seq = self
            .next_seq
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let message = AgentMessage {
            body: Some(agent_message::Body::Reply(CommandReply {
                request_id: self.request_id.clone(),
                seq,
                result: Some(result),
            })),
        };
        self.outgoing.send(message).await.map_err(|_| {
            CommandError::new(ErrorCode::Unavailable, "the session with the server ended")
        })
    }
}

/// Who the agent is, for `Hello` and `Inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The agent's software version.
    pub agent_version: String,
    /// The host's name.
    pub hostname: String,
}

impl AgentInfo {
    /// This build's version and the host's name (from the kernel; `unknown` if unreadable).
    pub fn of_this_host() -> Self {
        Self {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: sysinfo::System::host_name().unwrap_or_else(|| "unknown".to_owned()),
        }
    }
}

/// The `Inspect` reply's JSON.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// The agent's software version.
    pub agent_version: String,
    /// The host's name.
    pub hostname: String,
    /// The protocol version the agent speaks.
    pub protocol_version: u32,
    /// The local Docker engine.
    pub docker: DockerStatus,
    /// The host's metrics.
    pub host: HostReport,
}

/// Host metrics in the `Inspect` reply.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// CPU usage, percent of all CPUs.
    pub cpu_percent: f64,
    /// Number of logical CPUs.
    pub cpus: u32,
    /// Total memory, bytes.
    pub memory_total_bytes: u64,
    /// Used memory, bytes.
    pub memory_used_bytes: u64,
    /// Size of the agent's file system, bytes.
    pub disk_total_bytes: u64,
    /// Used bytes of the agent's file system.
    pub disk_used_bytes: u64,
    /// Seconds since boot.
    pub uptime_secs: u64,
    /// One-minute load average.
    pub load1: f64,
}

/// The commands every agent answers: `Ping` (echo) and `Inspect` (self-description).
#[derive(Debug, Clone)]
pub struct BuiltinCommands {
    info: AgentInfo,
    probe: Arc<HostProbe>,
}

impl BuiltinCommands {
    /// The built-in commands for an agent described by `info`, reading the host with `probe`.
    pub fn new(info: AgentInfo, probe: Arc<HostProbe>) -> Self {
        Self { info, probe }
    }

    async fn inspect(&self) -> Result<Vec<u8>, CommandError> {
        let m = self.probe.host_metrics();
        let report = InspectReport {
            agent_version: self.info.agent_version.clone(),
            hostname: self.info.hostname.clone(),
            protocol_version: infrapilot_proto::PROTOCOL_VERSION,
            docker: self.probe.docker_status().await,
            host: HostReport {
                cpu_percent: m.cpu_percent,
                cpus: m.cpus,
                memory_total_bytes: m.memory_total_bytes,
                memory_used_bytes: m.memory_used_bytes,
                disk_total_bytes: m.disk_total_bytes,
                disk_used_bytes: m.disk_used_bytes,
                uptime_secs: m.uptime_secs,
                load1: m.load1,
            },
        };
        serde_json::to_vec(&report)
            .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))
    }
}

impl CommandHandler for BuiltinCommands {
    fn handle<'a>(&'a self, kind: &'a Kind, _replies: &'a Replies) -> HandlerFuture<'a> {
        Box::pin(async move {
            match kind {
                Kind::Ping(ping) => Ok(ping.payload.clone()),
                Kind::Inspect(_) => self.inspect().await,
                Kind::Docker(_) => Err(CommandError::unsupported("docker")),
                Kind::ApplyDesired(_) => Err(CommandError::unsupported("apply_desired")),
                Kind::CheckHost(_) => Err(CommandError::unsupported("check_host")),
            }
        })
    }
}

impl<T: CommandHandler + ?Sized> CommandHandler for Arc<T> {
    fn handle<'a>(&'a self, kind: &'a Kind, replies: &'a Replies) -> HandlerFuture<'a> {
        (**self).handle(kind, replies)
    }
}

/// Two handlers tried in order: `second` gets the commands `first` answers with
/// [`ErrorCode::Unsupported`].
#[derive(Debug, Clone)]
pub struct Chain<A, B> {
    /// The handler tried first.
    pub first: A,
    /// The handler tried when the first does not support the command.
    pub second: B,
}

impl<A: CommandHandler, B: CommandHandler> CommandHandler for Chain<A, B> {
    fn handle<'a>(&'a self, kind: &'a Kind, replies: &'a Replies) -> HandlerFuture<'a> {
        Box::pin(async move {
            match self.first.handle(kind, replies).await {
                Err(e) if e.code == ErrorCode::Unsupported => {
                    self.second.handle(kind, replies).await
                }
                other => other,
            }
        })
    }
}

/// The name of a command kind, for messages.
pub fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Ping(_) => "ping",
        Kind::Inspect(_) => "inspect",
        Kind::Docker(_) => "docker",
        Kind::ApplyDesired(_) => "apply_desired",
        Kind::CheckHost(_) => "check_host",
    }
}
