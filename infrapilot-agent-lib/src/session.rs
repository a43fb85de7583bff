//! The session with the control plane, independent of the transport.
//!
//! [`run_session`] speaks the protocol over any stream of [`ServerMessage`]s and any channel
//! of [`AgentMessage`]s: the remote agent runs it over gRPC with mutual TLS
//! ([`crate::agent`]), the server's built-in agent over in-process tokio channels.
//!
//! The order of events:
//! 1. The agent sends `Hello`.
//! 2. The server answers `Welcome` (or `Goodbye`); nothing else is accepted first, and no
//!    answer within [`SessionContext::welcome_timeout`] is an error, not a hang.
//! 3. The agent sends a `Heartbeat` at once and then at every interval, and runs each
//!    `Command` in its own task, which `Cancel` or the command's deadline stops.
//! 4. The session ends on `Goodbye`, at the end of the server's stream, or on shutdown, after
//!    the commands in flight have replied (for at most [`SessionContext::drain_timeout`]).

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{Stream, StreamExt};
use infrapilot_core::desired::ApplyReport;
use infrapilot_proto::PROTOCOL_VERSION;
use infrapilot_proto::v1::Report;
use infrapilot_proto::v1::{
    AgentMessage, Command, CommandInput, Done, Error as ErrorReply, Heartbeat, Hello,
    ServerMessage, agent_message, command_reply, server_message,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::command::{AgentInfo, CommandError, CommandHandler, ErrorCode, Input, Replies};
use crate::error::AgentError;
use crate::logs::LogPipeline;
use crate::probe::HostProbe;

/// The default heartbeat interval, used until the server's `Welcome` names one.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// Everything a session needs besides its transport.
#[derive(Clone)]
pub struct SessionContext {
    /// Who the agent is, sent in `Hello`.
    pub info: AgentInfo,
    /// The revision of desired state last applied, sent in `Hello` (0: none).
    pub applied_revision: u64,
    /// The heartbeat interval used when the server's `Welcome` does not name one (0).
    pub heartbeat_interval: Duration,
    /// An interval that wins over the server's (operator setting, tests).
    pub heartbeat_override: Option<Duration>,
    /// How long to wait for `Welcome` after `Hello`.
    pub welcome_timeout: Duration,
    /// How long commands in flight may take to finish on shutdown before they are cancelled.
    pub drain_timeout: Duration,
    /// The source of heartbeat metrics.
    pub probe: Arc<HostProbe>,
    /// Runs the commands.
    pub handler: Arc<dyn CommandHandler>,
    /// Cancelled to end the session gracefully.
    pub shutdown: CancellationToken,
    /// Apply reports to tell the server of (the proxy's own applies): the current one after
    /// `Welcome`, then each new one.
    pub reports: Option<watch::Receiver<Option<Arc<ApplyReport>>>>,
    /// The log buffer to ship from while the session is open, if the agent collects logs.
    pub logs: Option<LogPipeline>,
}

impl SessionContext {
    /// A context with the default intervals (heartbeat 30 s, welcome timeout 30 s, drain 10 s),
    /// no applied revision, and a fresh shutdown token.
    pub fn new(info: AgentInfo, probe: Arc<HostProbe>, handler: Arc<dyn CommandHandler>) -> Self {
        Self {
            info,
            applied_revision: 0,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_override: None,
            welcome_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            probe,
            handler,
            shutdown: CancellationToken::new(),
            reports: None,
            logs: None,
        }
    }
}

impl std::fmt::Debug for SessionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionContext")
            .field("info", &self.info)
            .field("applied_revision", &self.applied_revision)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_override", &self.heartbeat_override)
            .field("welcome_timeout", &self.welcome_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}

/// How a session ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// Why it ended.
    pub reason: EndReason,
    /// The agent id the server's `Welcome` named; `None` if the session ended before it.
    pub agent_id: Option<String>,
}

impl SessionEnd {
    /// Whether the server welcomed the agent (the session was healthy).
    pub fn was_welcomed(&self) -> bool {
        self.agent_id.is_some()
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The server sent `Goodbye`.
    Goodbye {
        /// The server's reason, verbatim.
        reason: String,
        /// Whether the agent must stop reconnecting (revoked, incompatible version).
        permanent: bool,
    },
    /// The server ended its stream without `Goodbye`.
    ServerClosed,
    /// The session's shutdown token was cancelled.
    Shutdown,
}

/// Runs one session: `Hello`, then `Welcome`, then heartbeats and commands until the server
/// says `Goodbye`, closes its stream, or `ctx.shutdown` is cancelled.
///
/// `incoming` is what the server sends; `outgoing` carries what the agent sends, and is
/// dropped (with every clone the session made) when this returns, which closes the agent's
/// side of the stream. Errors are the transport's (`AgentError::StreamBroken`) and protocol
/// violations: no `Welcome` in time, something else first, or another protocol version.
pub async fn run_session<S, E>(
    incoming: S,
    outgoing: mpsc::Sender<AgentMessage>,
    ctx: &SessionContext,
) -> Result<SessionEnd, AgentError>
where
    S: Stream<Item = Result<ServerMessage, E>> + Send,
    E: Display,
{
    let mut incoming = std::pin::pin!(incoming);
    send(
        &outgoing,
        agent_message::Body::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: ctx.info.agent_version.clone(),
            hostname: ctx.info.hostname.clone(),
            applied_revision: ctx.applied_revision,
        }),
    )
    .await?;

    let first = tokio::select! {
        () = ctx.shutdown.cancelled() => {
            return Ok(SessionEnd { reason: EndReason::Shutdown, agent_id: None });
        }
        first = tokio::time::timeout(ctx.welcome_timeout, incoming.next()) => first,
    };
    let welcome = match first {
        Err(_) => {
            return Err(AgentError::NoWelcome {
                timeout: ctx.welcome_timeout,
            });
        }
        Ok(None) => return Err(AgentError::ClosedBeforeWelcome),
        Ok(Some(Err(e))) => {
            return Err(AgentError::StreamBroken {
                message: e.to_string(),
            });
        }
        Ok(Some(Ok(message))) => match message.body {
            Some(server_message::Body::Welcome(welcome)) => welcome,
            Some(server_message::Body::Goodbye(goodbye)) => {
                return Ok(SessionEnd {
                    reason: EndReason::Goodbye {
                        reason: goodbye.reason,
                        permanent: goodbye.permanent,
                    },
                    agent_id: None,
                });
            }
            other => {
                return Err(AgentError::UnexpectedMessage {
                    expected: "Welcome",
                    got: body_name(other.as_ref()),
                });
            }
        },
    };
    if welcome.protocol_version != 0 && welcome.protocol_version != PROTOCOL_VERSION {
        return Err(AgentError::ProtocolMismatch {
            agent: PROTOCOL_VERSION,
            server: welcome.protocol_version,
        });
    }
    let interval = ctx
        .heartbeat_override
        .unwrap_or(if welcome.heartbeat_interval_secs > 0 {
            Duration::from_secs(u64::from(welcome.heartbeat_interval_secs))
        } else {
            ctx.heartbeat_interval
        });
    tracing::info!(agent_id = %welcome.agent_id, ?interval, "session started");
    let agent_id = Some(welcome.agent_id);

    let heartbeats = tokio::spawn(send_heartbeats(
        interval,
        ctx.probe.clone(),
        outgoing.clone(),
    ));
    let _stop_heartbeats = AbortOnDrop(heartbeats);
    let reporting = ctx.reports.clone().map(|mut reports| {
        let outgoing = outgoing.clone();
        tokio::spawn(async move {
            // The current report first (what happened while disconnected), then each new one.
            reports.mark_changed();
            while reports.changed().await.is_ok() {
                let Some(report) = reports.borrow_and_update().clone() else {
                    continue;
                };
                let Ok(json) = serde_json::to_vec(&*report) else {
                    continue;
                };
                let body = agent_message::Body::Report(Report {
                    apply_report_json: json,
                });
                if send(&outgoing, body).await.is_err() {
                    return;
                }
            }
        })
    });
    let _stop_reporting = reporting.map(AbortOnDrop);
    // Log acknowledgements go to the shipper, which sends the buffer's unacknowledged records.
    let (log_acks, shipping) = match &ctx.logs {
        Some(pipeline) => {
            let (acks_tx, acks_rx) = mpsc::channel(1024);
            let task = tokio::spawn(crate::logs::ship::run(
                pipeline.clone(),
                outgoing.clone(),
                acks_rx,
            ));
            (Some(acks_tx), Some(AbortOnDrop(task)))
        }
        None => (None, None),
    };
    let _stop_shipping = shipping;
    let mut commands = Commands::default();

    let reason = loop {
        tokio::select! {
            biased;
            () = ctx.shutdown.cancelled() => {
                commands.drain(ctx.drain_timeout).await;
                break EndReason::Shutdown;
            }
            Some(finished) = commands.tasks.join_next(), if !commands.tasks.is_empty() => {
                if let Ok(request_id) = finished {
                    commands.running.remove(&request_id);
                }
            }
            message = incoming.next() => match message {
                None => break EndReason::ServerClosed,
                Some(Err(e)) => {
                    return Err(AgentError::StreamBroken { message: e.to_string() });
                }
                Some(Ok(message)) => match message.body {
                    Some(server_message::Body::Command(command)) => {
                        commands.start(command, ctx.handler.clone(), &outgoing).await;
                    }
                    Some(server_message::Body::Cancel(cancel)) => {
                        if let Some((token, _)) = commands.running.get(&cancel.request_id) {
                            token.cancel();
                        }
                    }
                    Some(server_message::Body::Input(input)) => commands.input(input),
                    Some(server_message::Body::LogAck(ack)) => {
                        if let Some(acks) = &log_acks
                            && acks.try_send(ack).is_err()
                        {
                            // The batch is sent again after its timeout; nothing is lost.
                            tracing::debug!("dropping a log acknowledgement the shipper cannot take");
                        }
                    }
                    Some(server_message::Body::Goodbye(goodbye)) => {
                        break EndReason::Goodbye {
                            reason: goodbye.reason,
                            permanent: goodbye.permanent,
                        };
                    }
                    Some(server_message::Body::Welcome(_)) => {
                        tracing::warn!("ignoring a second Welcome from the server");
                    }
                    None => tracing::warn!("ignoring a message of a kind this agent does not know"),
                },
            },
        }
    };
    // Commands still running after Goodbye or the end of the stream cannot reply any more.
    commands.tasks.abort_all();
    Ok(SessionEnd { reason, agent_id })
}

/// The commands in flight: a cancellation token per request id, and their tasks.
#[derive(Default)]
struct Commands {
    running: HashMap<String, (CancellationToken, mpsc::Sender<Input>)>,
    tasks: JoinSet<String>,
}

/// How many input messages may wait for a command that does not read them yet.
const INPUT_QUEUE: usize = 256;

impl Commands {
    async fn start(
        &mut self,
        command: Command,
        handler: Arc<dyn CommandHandler>,
        outgoing: &mpsc::Sender<AgentMessage>,
    ) {
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let replies = Replies::new(command.request_id.clone(), outgoing.clone(), Some(input_rx));
        if self.running.contains_key(&command.request_id) {
            let _ = replies
                .send(error_reply(&CommandError::new(
                    ErrorCode::Conflict,
                    format!(
                        "a command with request id {:?} is already running",
                        command.request_id
                    ),
                )))
                .await;
            return;
        }
        let cancel = CancellationToken::new();
        self.running
            .insert(command.request_id.clone(), (cancel.clone(), input_tx));
        self.tasks
            .spawn(run_command(command, handler, replies, cancel));
    }

    /// Hands input to the running command it is for; input for no running command is dropped.
    fn input(&self, input: CommandInput) {
        let Some(kind) = input.kind else { return };
        match self.running.get(&input.request_id) {
            Some((_, tx)) => {
                if tx.try_send(kind).is_err() {
                    tracing::warn!(request_id = %input.request_id, "dropping input: the command does not read it");
                }
            }
            None => tracing::debug!(request_id = %input.request_id, "input for no running command"),
        }
    }

    /// Lets the commands in flight finish for at most `timeout`, then cancels the rest and
    /// waits for their `cancelled` replies.
    async fn drain(&mut self, timeout: Duration) {
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(timeout, all_done).await.is_err() {
            for (token, _) in self.running.values() {
                token.cancel();
            }
            while self.tasks.join_next().await.is_some() {}
        }
        self.running.clear();
    }
}

/// Runs one command to its reply; returns its request id.
async fn run_command(
    command: Command,
    handler: Arc<dyn CommandHandler>,
    replies: Replies,
    cancel: CancellationToken,
) -> String {
    let result = match (&command.kind, time_left(command.deadline_unix_ms)) {
        (_, Some(Duration::ZERO)) => Err(deadline_exceeded()),
        (None, _) => Err(CommandError::unsupported(
            "of a kind this agent does not know (the server is newer than the agent)",
        )),
        (Some(kind), left) => {
            let deadline = async {
                match left {
                    Some(left) => tokio::time::sleep(left).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = handler.handle(kind, &replies) => result,
                () = cancel.cancelled() => {
                    Err(CommandError::new(ErrorCode::Cancelled, "the command was cancelled"))
                }
                () = deadline => Err(deadline_exceeded()),
            }
        }
    };
    let last = match result {
        Ok(payload) => command_reply::Result::Done(Done { payload }),
        Err(e) => error_reply(&e),
    };
    if replies.send(last).await.is_err() {
        tracing::debug!(request_id = %command.request_id, "the session ended before the reply");
    }
    command.request_id
}

fn deadline_exceeded() -> CommandError {
    CommandError::new(
        ErrorCode::DeadlineExceeded,
        "the command's deadline passed before it finished",
    )
}

fn error_reply(e: &CommandError) -> command_reply::Result {
    command_reply::Result::Error(ErrorReply {
        code: e.code.as_str().to_owned(),
        message: e.message.clone(),
    })
}

/// The time left until `deadline_unix_ms` (0 means none); `Some(ZERO)` once it has passed.
fn time_left(deadline_unix_ms: i64) -> Option<Duration> {
    if deadline_unix_ms <= 0 {
        return None;
    }
    let left = deadline_unix_ms.saturating_sub(now_unix_ms());
    Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

/// Milliseconds since the Unix epoch, by the system clock.
pub(crate) fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Sends a heartbeat now and then every `interval` until the channel closes.
async fn send_heartbeats(
    interval: Duration,
    probe: Arc<HostProbe>,
    outgoing: mpsc::Sender<AgentMessage>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let heartbeat = Heartbeat {
            sent_at_unix_ms: now_unix_ms(),
            host: Some(probe.host_metrics()),
            containers: probe.containers().await,
        };
        if send(&outgoing, agent_message::Body::Heartbeat(heartbeat))
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn send(
    outgoing: &mpsc::Sender<AgentMessage>,
    body: agent_message::Body,
) -> Result<(), AgentError> {
    outgoing
        .send(AgentMessage { body: Some(body) })
        .await
        .map_err(|_| AgentError::OutgoingClosed)
}

fn body_name(body: Option<&server_message::Body>) -> &'static str {
    match body {
        Some(server_message::Body::Welcome(_)) => "Welcome",
        Some(server_message::Body::Command(_)) => "Command",
        Some(server_message::Body::Cancel(_)) => "Cancel",
        Some(server_message::Body::Goodbye(_)) => "Goodbye",
        Some(server_message::Body::Input(_)) => "CommandInput",
        Some(server_message::Body::LogAck(_)) => "LogAck",
        None => "a message of an unknown kind",
    }
}

/// Aborts a task when dropped, so no heartbeat outlives its session.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
