//! The live sessions on this replica and the commands in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use infrapilot_core::ids::{AgentId, OrgId};
use infrapilot_proto::v1::{
    Cancel, Command, CommandInput, CommandReply, Goodbye, ServerMessage, command, command_input,
    command_reply, server_message,
};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::relay_stream::{RelayLink, RelayedStream};

/// Why a command got no result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// No replica holds the agent's stream.
    #[error("the agent is offline")]
    Offline,
    /// The agent did not answer before the deadline.
    #[error("the agent did not answer within {0:?}")]
    Timeout(Duration),
    /// The stream closed while the command was in flight.
    #[error("the agent's connection closed before it answered")]
    Closed,
    /// The agent answered with an error; `message` is the upstream's own text.
    #[error("{code}: {message}")]
    Agent {
        /// A stable code (`not_found`, `conflict`, `unsupported`, …).
        code: String,
        /// The upstream message, verbatim.
        message: String,
    },
}

pub(super) type Outgoing = mpsc::Sender<Result<ServerMessage, Status>>;

pub(super) struct Session {
    pub org: OrgId,
    pub generation: u64,
    pub outgoing: Outgoing,
    pending: std::sync::Mutex<HashMap<String, Waiter>>,
}

/// Who waits for a command's replies.
enum Waiter {
    /// A single reply.
    Once(oneshot::Sender<CommandReply>),
    /// Chunks, then the final reply.
    Stream(mpsc::Sender<CommandReply>),
}

/// How many chunks of a streamed reply may wait for a slow reader before the stream is cut.
const STREAM_BUFFER: usize = 1024;

/// The sessions this replica holds.
pub struct AgentHub {
    replica: String,
    heartbeat: Duration,
    generation: AtomicU64,
    sessions: std::sync::RwLock<HashMap<AgentId, Arc<Session>>>,
}

impl std::fmt::Debug for AgentHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHub")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl AgentHub {
    /// A hub for this replica.
    pub fn new(replica: String, heartbeat: Duration) -> Self {
        Self {
            replica,
            heartbeat,
            generation: AtomicU64::new(1),
            sessions: std::sync::RwLock::new(HashMap::new()),
        }
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The heartbeat interval agents are told to keep.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// How many agents are connected here.
    pub fn connected(&self) -> usize {
        self.sessions.read().map(|s| s.len()).unwrap_or(0)
    }

    /// Registers a session, replacing (and closing) an older one of the same agent.
    pub(super) fn register(&self, agent: AgentId, org: OrgId, outgoing: Outgoing) -> Arc<Session> {
        let session = Arc::new(Session {
            org,
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
            outgoing,
            pending: std::sync::Mutex::new(HashMap::new()),
        });
        let old = self
            .sessions
            .write()
            .ok()
            .and_then(|mut s| s.insert(agent, session.clone()));
        if let Some(old) = old {
            let _ = old.outgoing.try_send(Ok(goodbye(
                "replaced by a newer connection of the same agent",
                false,
            )));
        }
        session
    }

    /// Forgets a session if it is still the registered one; either way its commands in flight
    /// end (a stream with `Closed`), since their replies can no longer come.
    pub(super) fn unregister(&self, agent: AgentId, session: &Session) {
        if let Ok(mut pending) = session.pending.lock() {
            pending.clear();
        }
        let generation = session.generation;
        if let Ok(mut sessions) = self.sessions.write()
            && sessions
                .get(&agent)
                .is_some_and(|s| s.generation == generation)
        {
            sessions.remove(&agent);
        }
    }

    fn session(&self, agent: AgentId) -> Option<Arc<Session>> {
        self.sessions
            .read()
            .ok()
            .and_then(|s| s.get(&agent).cloned())
    }

    /// Whether this replica holds the agent's stream.
    pub fn holds(&self, agent: AgentId) -> bool {
        self.session(agent).is_some()
    }

    /// Ends an agent's stream with a reason (revocation, deletion).
    pub fn disconnect(&self, agent: AgentId, reason: &str, permanent: bool) {
        if let Some(session) = self
            .sessions
            .write()
            .ok()
            .and_then(|mut s| s.remove(&agent))
        {
            let _ = session.outgoing.try_send(Ok(goodbye(reason, permanent)));
        }
    }

    /// Ends every session on this replica (server shutdown): the agents are told to come
    /// back later, which closes their streams so a graceful shutdown can finish.
    pub fn close_all(&self, reason: &str) {
        let sessions: Vec<Arc<Session>> = self
            .sessions
            .write()
            .map(|mut s| s.drain().map(|(_, session)| session).collect())
            .unwrap_or_default();
        for session in sessions {
            let _ = session.outgoing.try_send(Ok(goodbye(reason, false)));
        }
    }

    /// Sends a command whose replies stream (logs follow, stats, interactive exec). `deadline`
    /// bounds the whole command; `None` lets it run until cancelled (by dropping the stream).
    pub async fn open_stream(
        &self,
        org: OrgId,
        agent: AgentId,
        kind: command::Kind,
        deadline: Option<Duration>,
    ) -> Result<CommandStream, CommandError> {
        let session = self
            .session(agent)
            .filter(|s| s.org == org)
            .ok_or(CommandError::Offline)?;
        let request_id = uuid::Uuid::now_v7().to_string();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        session.insert_waiter(&request_id, Waiter::Stream(tx));
        let deadline_unix_ms = deadline.map_or(0, |d| {
            crate::util::now_micros() / 1000 + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
        });
        let message = ServerMessage {
            body: Some(server_message::Body::Command(Command {
                request_id: request_id.clone(),
                deadline_unix_ms,
                kind: Some(kind),
            })),
        };
        if session.outgoing.send(Ok(message)).await.is_err() {
            session.remove_waiter(&request_id);
            return Err(CommandError::Closed);
        }
        Ok(CommandStream {
            source: Source::Local {
                request_id,
                session,
                replies: rx,
                finished: false,
            },
        })
    }

    /// Sends a command and waits for its final reply (`Done` payload) or `timeout`.
    pub async fn command(
        &self,
        org: OrgId,
        agent: AgentId,
        kind: command::Kind,
        timeout: Duration,
    ) -> Result<Vec<u8>, CommandError> {
        let session = self
            .session(agent)
            .filter(|s| s.org == org)
            .ok_or(CommandError::Offline)?;
        let request_id = uuid::Uuid::now_v7().to_string();
        let (tx, rx) = oneshot::channel();
        session.insert_waiter(&request_id, Waiter::Once(tx));
        let deadline = crate::util::now_micros() / 1000
            + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 2);
        let message = ServerMessage {
            body: Some(server_message::Body::Command(Command {
                request_id: request_id.clone(),
                deadline_unix_ms: deadline,
                kind: Some(kind),
            })),
        };
        if session.outgoing.send(Ok(message)).await.is_err() {
            session.remove_waiter(&request_id);
            return Err(CommandError::Closed);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => match reply.result {
                Some(command_reply::Result::Done(done)) => Ok(done.payload),
                Some(command_reply::Result::Error(e)) => Err(CommandError::Agent {
                    code: e.code,
                    message: e.message,
                }),
                Some(command_reply::Result::Chunk(_)) | None => Err(CommandError::Agent {
                    code: "internal".to_owned(),
                    message: "the agent sent a reply without a result".to_owned(),
                }),
            },
            Ok(Err(_)) => Err(CommandError::Closed),
            Err(_) => {
                session.remove_waiter(&request_id);
                let _ = session.outgoing.try_send(Ok(cancel(request_id)));
                Err(CommandError::Timeout(timeout))
            }
        }
    }
}

impl Session {
    fn insert_waiter(&self, request_id: &str, waiter: Waiter) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(request_id.to_owned(), waiter);
        }
    }

    fn remove_waiter(&self, request_id: &str) -> bool {
        self.pending
            .lock()
            .map(|mut p| p.remove(request_id).is_some())
            .unwrap_or(false)
    }

    /// Hands a reply to the command waiting for it: chunks to a stream, the final reply to
    /// whoever waits. A stream whose reader fell more than [`STREAM_BUFFER`] chunks behind is
    /// cut (its reader sees the end without a final reply) and the agent told to cancel.
    pub(super) async fn deliver(&self, reply: CommandReply) {
        let is_chunk = matches!(reply.result, Some(command_reply::Result::Chunk(_)));
        let waiter = {
            let Ok(mut pending) = self.pending.lock() else {
                return;
            };
            match pending.get(&reply.request_id) {
                Some(Waiter::Stream(tx)) if is_chunk => Some(Waiter::Stream(tx.clone())),
                Some(_) if is_chunk => None,
                Some(_) => pending.remove(&reply.request_id),
                None => None,
            }
        };
        match waiter {
            Some(Waiter::Once(tx)) => {
                let _ = tx.send(reply);
            }
            Some(Waiter::Stream(tx)) => {
                let request_id = reply.request_id.clone();
                if tx.try_send(reply).is_err() && is_chunk {
                    tracing::warn!(%request_id, "a stream reader fell behind; cutting the stream");
                    self.remove_waiter(&request_id);
                    let _ = self.outgoing.try_send(Ok(cancel(request_id)));
                }
            }
            None => {}
        }
    }
}

fn cancel(request_id: String) -> ServerMessage {
    ServerMessage {
        body: Some(server_message::Body::Cancel(Cancel { request_id })),
    }
}

/// One event of a streamed command.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// A chunk of output.
    Chunk(Vec<u8>),
    /// The final reply's payload; the stream is over.
    Done(Vec<u8>),
    /// The command failed; the stream is over.
    Failed(CommandError),
}

/// A command whose replies arrive as a stream ([`AgentHub::open_stream`], or relayed from
/// the replica that holds the agent: [`super::open_stream`]). Dropping it before the end
/// cancels the command on the agent.
pub struct CommandStream {
    source: Source,
}

enum Source {
    /// The agent's stream is on this replica.
    Local {
        request_id: String,
        session: Arc<Session>,
        replies: mpsc::Receiver<CommandReply>,
        finished: bool,
    },
    /// Another replica holds it and relays.
    Relayed(Box<RelayedStream>),
}

impl std::fmt::Debug for CommandStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Local {
                request_id,
                finished,
                ..
            } => f
                .debug_struct("CommandStream")
                .field("request_id", request_id)
                .field("finished", finished)
                .finish_non_exhaustive(),
            Source::Relayed(relayed) => relayed.fmt(f),
        }
    }
}

impl CommandStream {
    pub(super) fn relayed(relayed: RelayedStream) -> Self {
        CommandStream {
            source: Source::Relayed(Box::new(relayed)),
        }
    }

    /// The next event; `None` after the final one.
    pub async fn next(&mut self) -> Option<StreamEvent> {
        let (replies, finished) = match &mut self.source {
            Source::Local {
                replies, finished, ..
            } => (replies, finished),
            Source::Relayed(relayed) => return relayed.next().await,
        };
        if *finished {
            return None;
        }
        let event = match replies.recv().await {
            None => StreamEvent::Failed(CommandError::Closed),
            Some(reply) => match reply.result {
                Some(command_reply::Result::Chunk(bytes)) => {
                    return Some(StreamEvent::Chunk(bytes));
                }
                Some(command_reply::Result::Done(done)) => StreamEvent::Done(done.payload),
                Some(command_reply::Result::Error(e)) => StreamEvent::Failed(CommandError::Agent {
                    code: e.code,
                    message: e.message,
                }),
                None => StreamEvent::Failed(CommandError::Agent {
                    code: "internal".to_owned(),
                    message: "the agent sent a reply without a result".to_owned(),
                }),
            },
        };
        *finished = true;
        Some(event)
    }

    /// A handle that sends input (stdin, resizes) to the command, usable from another task.
    pub fn input(&self) -> CommandInputSender {
        match &self.source {
            Source::Local {
                request_id,
                session,
                ..
            } => CommandInputSender {
                target: InputTarget::Local {
                    request_id: request_id.clone(),
                    outgoing: session.outgoing.clone(),
                },
            },
            Source::Relayed(relayed) => CommandInputSender {
                target: InputTarget::Relayed(relayed.link()),
            },
        }
    }
}

impl Drop for CommandStream {
    fn drop(&mut self) {
        // A relayed stream cancels through its own drop.
        if let Source::Local {
            request_id,
            session,
            finished: false,
            ..
        } = &self.source
            && session.remove_waiter(request_id)
        {
            let _ = session.outgoing.try_send(Ok(cancel(request_id.clone())));
        }
    }
}

/// Sends input to a streamed command.
#[derive(Debug, Clone)]
pub struct CommandInputSender {
    target: InputTarget,
}

#[derive(Debug, Clone)]
enum InputTarget {
    /// The agent's stream on this replica.
    Local {
        request_id: String,
        outgoing: Outgoing,
    },
    /// The replica that holds the agent's stream.
    Relayed(RelayLink),
}

impl CommandInputSender {
    /// Sends one input message; fails when the agent's connection is gone.
    pub async fn send(&self, kind: command_input::Kind) -> Result<(), CommandError> {
        let (request_id, outgoing) = match &self.target {
            InputTarget::Local {
                request_id,
                outgoing,
            } => (request_id, outgoing),
            InputTarget::Relayed(link) => return link.input(kind).await,
        };
        let message = ServerMessage {
            body: Some(server_message::Body::Input(CommandInput {
                request_id: request_id.clone(),
                kind: Some(kind),
            })),
        };
        outgoing
            .send(Ok(message))
            .await
            .map_err(|_| CommandError::Closed)
    }
}

pub(super) fn goodbye(reason: &str, permanent: bool) -> ServerMessage {
    ServerMessage {
        body: Some(server_message::Body::Goodbye(Goodbye {
            reason: reason.to_owned(),
            permanent,
        })),
    }
}
