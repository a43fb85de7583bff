//! Commands across replicas. Several server processes share one PostgreSQL database; an
//! agent's stream lives on one of them. A command issued on another replica is written to
//! `agent_commands` and the holding replica is woken with `NOTIFY` on its channel; it runs
//! the command over the stream, writes the reply and notifies the asker the same way. No new
//! infrastructure: PostgreSQL's LISTEN/NOTIFY is the bus. Streamed commands go the same way
//! and then carry their events and input as notifications (`relay_stream`). On SQLite
//! there is one replica and the path is in-process only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use infrapilot_core::ids::{AgentId, OrgId};
use infrapilot_proto::v1::{Command, command};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::is_online;
use super::{CommandError, CommandStream};
use crate::AppState;
use crate::store::{
    Backend, LOG_LINES_CHANNEL, OrgScope, RelayRecord, StoreError, replica_channel,
};
use crate::util::now_micros;

/// Waiters for relayed commands this replica asked, by relay id.
#[derive(Default)]
pub struct RelayWaiters(Mutex<HashMap<String, oneshot::Sender<RelayReply>>>);

impl std::fmt::Debug for RelayWaiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayWaiters")
    }
}

/// A relayed command's answer, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RelayReply {
    Done { payload: String },
    Offline,
    Timeout,
    Closed,
    Agent { code: String, message: String },
}

impl RelayReply {
    pub(super) fn from_result(result: Result<Vec<u8>, CommandError>) -> Self {
        match result {
            Ok(payload) => RelayReply::Done {
                payload: STANDARD.encode(payload),
            },
            Err(CommandError::Offline) => RelayReply::Offline,
            Err(CommandError::Timeout(_)) => RelayReply::Timeout,
            Err(CommandError::Closed) => RelayReply::Closed,
            Err(CommandError::Agent { code, message }) => RelayReply::Agent { code, message },
        }
    }

    pub(super) fn into_result(self, timeout: Duration) -> Result<Vec<u8>, CommandError> {
        match self {
            RelayReply::Done { payload } => {
                STANDARD.decode(payload).map_err(|_| CommandError::Closed)
            }
            RelayReply::Offline => Err(CommandError::Offline),
            RelayReply::Timeout => Err(CommandError::Timeout(timeout)),
            RelayReply::Closed => Err(CommandError::Closed),
            RelayReply::Agent { code, message } => Err(CommandError::Agent { code, message }),
        }
    }
}

fn store_error(e: StoreError) -> CommandError {
    tracing::warn!(error = %e, "relaying a command failed");
    CommandError::Offline
}

/// Sends a command to an agent wherever its stream is: on this replica directly, on another
/// through PostgreSQL.
pub async fn send_command(
    state: &AppState,
    org: OrgId,
    agent: AgentId,
    kind: command::Kind,
    timeout: Duration,
) -> Result<Vec<u8>, CommandError> {
    let hub = state.hub();
    if hub.holds(agent) || state.store().backend() != Backend::Postgres {
        return hub.command(org, agent, kind, timeout).await;
    }
    let scope = OrgScope::system(org);
    let target = holder(state, &scope, agent).await?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let command = encode_command(kind);
    let relay = RelayRecord {
        id: id.clone(),
        agent,
        origin_replica: hub.replica().to_owned(),
        target_replica: target,
        command,
        timeout_ms: i64::try_from(timeout.as_millis())
            .unwrap_or(i64::MAX)
            .max(1),
        reply: None,
    };
    let (tx_reply, rx_reply) = oneshot::channel();
    if let Ok(mut waiters) = state.relay_waiters().0.lock() {
        waiters.insert(id.clone(), tx_reply);
    }
    // Whatever happens from here (an error, the caller giving up), the waiter goes.
    let _forget = ForgetWaiter {
        waiters: state.relay_waiters(),
        id: &id,
    };
    let mut tx = state.store().org(&scope).await.map_err(store_error)?;
    tx.insert_relay(&relay, now_micros())
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    // The other replica gets the full timeout for the agent; allow a little for the relay.
    let result = match tokio::time::timeout(timeout + Duration::from_secs(2), rx_reply).await {
        Ok(Ok(reply)) => reply.into_result(timeout),
        Ok(Err(_)) => Err(CommandError::Closed),
        Err(_) => Err(CommandError::Timeout(timeout)),
    };
    forget_relay(state.store(), org, &id).await;
    result
}

/// Deletes a relayed command's row, best effort: a row left behind is swept by the hourly job.
pub(super) async fn forget_relay(store: &crate::store::Store, org: OrgId, id: &str) {
    if let Ok(mut tx) = store.org(&OrgScope::system(org)).await {
        let _ = tx.delete_relay(id).await;
        let _ = tx.commit().await;
    }
}

/// Removes a relayed command's waiter when dropped.
struct ForgetWaiter<'a> {
    waiters: &'a RelayWaiters,
    id: &'a str,
}

impl Drop for ForgetWaiter<'_> {
    fn drop(&mut self) {
        if let Ok(mut waiters) = self.waiters.0.lock() {
            waiters.remove(self.id);
        }
    }
}

/// Opens a streamed command (log follow, stats, a terminal) on an agent wherever its stream
/// is: on this replica directly, on another through PostgreSQL notifications
/// (see `agents/relay_stream.rs`).
pub async fn open_stream(
    state: &AppState,
    org: OrgId,
    agent: AgentId,
    kind: command::Kind,
) -> Result<CommandStream, CommandError> {
    let hub = state.hub();
    if hub.holds(agent) || state.store().backend() != Backend::Postgres {
        return hub.open_stream(org, agent, kind, None).await;
    }
    let target = holder(state, &OrgScope::system(org), agent).await?;
    super::relay_stream::open(state, org, agent, target, encode_command(kind)).await
}

/// The other replica that holds `agent`'s stream; offline when none does.
async fn holder(
    state: &AppState,
    scope: &OrgScope,
    agent: AgentId,
) -> Result<String, CommandError> {
    let hub = state.hub();
    let mut tx = state.store().org_read(scope).await.map_err(store_error)?;
    let record = tx.agent(agent).await.map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    let online = is_online(
        record.connected_replica.as_deref(),
        record.last_seen_at,
        now_micros(),
        hub.heartbeat(),
    );
    match record.connected_replica {
        Some(target) if online && target != hub.replica() => Ok(target),
        _ => Err(CommandError::Offline),
    }
}

/// A command as `agent_commands` stores it: base64 of the protobuf `Command`.
fn encode_command(kind: command::Kind) -> String {
    let command = Command {
        request_id: String::new(),
        deadline_unix_ms: 0,
        kind: Some(kind),
    };
    STANDARD.encode(command.encode_to_vec())
}

/// Listens on this replica's channel until the process ends: runs commands relayed to it and
/// hands answers to the commands it relayed. On [`LOG_LINES_CHANNEL`] too: lines the other
/// replicas stored reach this one's live tails, one announcement after the other.
/// PostgreSQL only.
pub async fn listen(state: AppState) {
    let channel = replica_channel(state.hub().replica());
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<String>(1024);
    let lines_state = state.clone();
    tokio::spawn(async move {
        while let Some(payload) = lines_rx.recv().await {
            crate::logs::offer_stored_lines(&lines_state, &payload).await;
        }
    });
    loop {
        match sqlx::postgres::PgListener::connect(state.store().url()).await {
            Ok(mut listener) => {
                if let Err(e) = listener
                    .listen_all([channel.as_str(), LOG_LINES_CHANNEL])
                    .await
                {
                    tracing::warn!(error = %e, "LISTEN failed; retrying");
                } else {
                    tracing::info!(channel, "listening for relayed agent commands");
                    while let Ok(notification) = listener.recv().await {
                        let payload = notification.payload().to_owned();
                        if notification.channel() == LOG_LINES_CHANNEL {
                            // A full queue means the tails are far behind: they skip lines, and
                            // are told so.
                            if let Err(e) = lines_tx.try_send(payload) {
                                tracing::debug!("too many stored lines to offer; some skipped");
                                state.log_tail().skipped(&e.into_inner());
                            }
                            continue;
                        }
                        // A relayed stream's events and input, handed on in order.
                        if state.relay_streams().dispatch(&payload) {
                            continue;
                        }
                        let state = state.clone();
                        tokio::spawn(async move { handle(&state, &payload).await });
                    }
                    tracing::warn!("the LISTEN connection dropped; reconnecting");
                }
            }
            Err(e) => tracing::warn!(error = %e, "connecting for LISTEN failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn decode_command(command: &str) -> Option<command::Kind> {
    STANDARD
        .decode(command)
        .ok()
        .and_then(|bytes| Command::decode(bytes.as_slice()).ok())
        .and_then(|c| c.kind)
}

async fn handle(state: &AppState, payload: &str) {
    let Some((org, id)) = payload.split_once(':') else {
        return;
    };
    let Ok(org) = org.parse::<OrgId>() else {
        return;
    };
    let scope = OrgScope::system(org);
    let relay = match state.store().org_read(&scope).await {
        Ok(mut tx) => {
            let relay = tx.relay(id).await;
            let _ = tx.commit().await;
            relay
        }
        Err(e) => Err(e),
    };
    let Ok(Some(relay)) = relay else { return };
    let me = state.hub().replica();
    match &relay.reply {
        // An answer to a command this replica asked.
        Some(reply) if relay.origin_replica == me => {
            let reply: RelayReply = serde_json::from_str(reply).unwrap_or(RelayReply::Closed);
            let waiter = state
                .relay_waiters()
                .0
                .lock()
                .ok()
                .and_then(|mut w| w.remove(&relay.id));
            if let Some(waiter) = waiter {
                let _ = waiter.send(reply);
            }
        }
        // A streamed command for an agent this replica holds.
        None if relay.target_replica == me && relay.timeout_ms == 0 => {
            super::relay_stream::serve(state, org, &relay, decode_command(&relay.command)).await;
        }
        // A command for an agent this replica holds.
        None if relay.target_replica == me => {
            let timeout = Duration::from_millis(u64::try_from(relay.timeout_ms).unwrap_or(10_000));
            let kind = decode_command(&relay.command);
            let result = match kind {
                Some(kind) => state.hub().command(org, relay.agent, kind, timeout).await,
                None => Err(CommandError::Agent {
                    code: "invalid".into(),
                    message: "undecodable relayed command".into(),
                }),
            };
            let reply = serde_json::to_string(&RelayReply::from_result(result)).unwrap_or_default();
            if let Ok(mut tx) = state.store().org(&scope).await {
                let _ = tx.answer_relay(&relay, &reply).await;
                let _ = tx.commit().await;
            }
        }
        _ => {}
    }
}
