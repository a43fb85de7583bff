//! The live sessions on this replica and the commands in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use infrapilot_core::ids::{AgentId, OrgId};
use infrapilot_proto::v1::{
    Cancel, Command, CommandReply, Goodbye, ServerMessage, command, command_reply, server_message,
};
use tokio::sync::{Mutex, mpsc, oneshot};
use tonic::Status;

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
    pub pending: Mutex<HashMap<String, oneshot::Sender<CommandReply>>>,
}

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
            pending: Mutex::new(HashMap::new()),
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

    /// Forgets a session if it is still the registered one.
    pub(super) fn unregister(&self, agent: AgentId, generation: u64) {
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
        session.pending.lock().await.insert(request_id.clone(), tx);
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
            session.pending.lock().await.remove(&request_id);
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
                session.pending.lock().await.remove(&request_id);
                let cancel = ServerMessage {
                    body: Some(server_message::Body::Cancel(Cancel { request_id })),
                };
                let _ = session.outgoing.try_send(Ok(cancel));
                Err(CommandError::Timeout(timeout))
            }
        }
    }
}

impl Session {
    /// Hands a final reply to the command waiting for it. Streamed chunks are not awaited by
    /// any command yet and are dropped.
    pub(super) async fn deliver(&self, reply: CommandReply) {
        if matches!(reply.result, Some(command_reply::Result::Chunk(_))) {
            return;
        }
        if let Some(waiter) = self.pending.lock().await.remove(&reply.request_id) {
            let _ = waiter.send(reply);
        }
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
