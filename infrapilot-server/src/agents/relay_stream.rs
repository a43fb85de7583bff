//! Streamed commands across replicas: log follow, stats and the terminal for an agent whose
//! stream another replica holds.
//!
//! The asking replica writes the command to `agent_commands` like any relayed command (with
//! `timeout_ms` 0: a stream has no deadline) and wakes the holding replica. That replica opens
//! the stream on the agent and sends everything back as notifications on the asker's channel,
//! numbered from 0: `e:<id>:<seq>:<kind>:<base64>`, where the kind is `r` (open, first),
//! `p` (part of a chunk: more follows), `c` (the last part of a chunk), `d` (done, with the
//! final payload) or `f` (failed, with the [`RelayReply`](super::relay) as JSON). A chunk is
//! cut into parts that fit a notification and put together again, so chunk boundaries (an
//! exec frame's stream byte) survive. Input travels the other way on the holder's channel:
//! `i:<id>:<base64 CommandInput>`, `k:<id>` (the asker is still there, every
//! [`KEEPALIVE`]) and `x:<id>` (the asker went away: cancel). Notifications of one sender
//! arrive in the order sent, and both listeners hand them on in that order; a gap in the
//! numbering ends the stream as failed rather than showing output with a hole in it.
//!
//! Either side going away ends the stream: the holder cancels it on the agent when the asker
//! says so or has not been heard from for [`ASKER_SILENCE`]; the asker fails it when the
//! holder stops holding the agent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use infrapilot_core::ids::{AgentId, OrgId};
use infrapilot_proto::v1::{CommandInput, command_input};
use prost::Message as _;
use tokio::sync::mpsc;

use super::{CommandError, CommandStream, StreamEvent};
use crate::AppState;
use crate::store::{OrgScope, RelayRecord, Store, replica_channel};
use crate::util::now_micros;

/// The most bytes of a chunk in one notification (PostgreSQL allows 8000 bytes of payload;
/// base64 makes 4 of 3).
const PART_BYTES: usize = 4096;
/// How often the asker says it is still there.
pub const KEEPALIVE: Duration = Duration::from_secs(10);
/// How long the holder goes on without hearing from the asker.
pub const ASKER_SILENCE: Duration = Duration::from_secs(35);
/// How long the asker waits for the holder to open the stream.
const OPEN_WAIT: Duration = Duration::from_secs(15);
/// How many events may wait for a slow reader on the asker's side before the stream is cut.
const BUFFER: usize = 1024;

/// What the holder is told by the asker.
#[derive(Debug)]
enum Control {
    Input(command_input::Kind),
    KeepAlive,
    Cancel,
}

/// One event as the asker receives it.
#[derive(Debug)]
enum Received {
    Open,
    Event(StreamEvent),
}

/// Where the asker's events are put together.
struct Asked {
    tx: mpsc::Sender<Received>,
    next_seq: u64,
    partial: Vec<u8>,
}

/// The relayed streams of this replica: those it asked another for (where their events go)
/// and those it serves for another (where their input goes).
#[derive(Default)]
pub struct RelayStreams {
    asked: Mutex<HashMap<String, Asked>>,
    served: Mutex<HashMap<String, mpsc::Sender<Control>>>,
}

impl std::fmt::Debug for RelayStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayStreams")
    }
}

impl RelayStreams {
    /// How many relayed streams this replica has open, asked or served.
    pub fn in_flight(&self) -> usize {
        self.asked.lock().map_or(0, |a| a.len()) + self.served.lock().map_or(0, |s| s.len())
    }

    /// Hands on a notification if it is one of a relayed stream's; answers whether it was.
    /// Called in the order notifications arrive.
    pub(super) fn dispatch(&self, payload: &str) -> bool {
        let Some((tag, rest)) = payload.split_once(':') else {
            return false;
        };
        match tag {
            "e" => self.event(rest),
            "i" | "k" | "x" => {
                let (id, data) = rest.split_once(':').unwrap_or((rest, ""));
                let control = match tag {
                    "k" => Some(Control::KeepAlive),
                    "x" => Some(Control::Cancel),
                    _ => STANDARD
                        .decode(data)
                        .ok()
                        .and_then(|bytes| CommandInput::decode(bytes.as_slice()).ok())
                        .and_then(|input| input.kind)
                        .map(Control::Input),
                };
                let served = self.served.lock().ok().and_then(|s| s.get(id).cloned());
                if let (Some(tx), Some(control)) = (served, control) {
                    // A full queue: the agent is not taking input; the keystroke is lost.
                    let _ = tx.try_send(control);
                }
            }
            _ => return false,
        }
        true
    }

    fn event(&self, rest: &str) {
        let mut parts = rest.splitn(4, ':');
        let (Some(id), Some(seq), Some(kind), Some(data)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Ok(mut asked) = self.asked.lock() else {
            return;
        };
        let Some(entry) = asked.get_mut(id) else {
            return;
        };
        let bytes = STANDARD.decode(data).unwrap_or_default();
        let received = if seq.parse::<u64>().ok() != Some(entry.next_seq) {
            Some(Received::Event(StreamEvent::Failed(CommandError::Agent {
                code: "relay".to_owned(),
                message: "the relay between server replicas lost part of the stream".to_owned(),
            })))
        } else {
            entry.next_seq += 1;
            match kind {
                "r" => Some(Received::Open),
                "p" => {
                    entry.partial.extend_from_slice(&bytes);
                    None
                }
                "c" => {
                    let mut chunk = std::mem::take(&mut entry.partial);
                    chunk.extend_from_slice(&bytes);
                    Some(Received::Event(StreamEvent::Chunk(chunk)))
                }
                "d" => Some(Received::Event(StreamEvent::Done(bytes))),
                _ => {
                    let reply: super::relay::RelayReply =
                        serde_json::from_slice(&bytes).unwrap_or(super::relay::RelayReply::Closed);
                    let error = reply
                        .into_result(Duration::ZERO)
                        .err()
                        .unwrap_or(CommandError::Closed);
                    Some(Received::Event(StreamEvent::Failed(error)))
                }
            }
        };
        if let Some(received) = received {
            let ends = matches!(
                received,
                Received::Event(StreamEvent::Done(_) | StreamEvent::Failed(_))
            );
            // A reader that fell more than the buffer behind loses the stream, as locally.
            if entry.tx.try_send(received).is_err() || ends {
                asked.remove(id);
            }
        }
    }
}

/// The asker's end of a relayed stream.
pub(super) struct RelayedStream {
    link: RelayLink,
    rx: mpsc::Receiver<Received>,
    finished: bool,
    keepalive: tokio::task::JoinHandle<()>,
    holder: Holder,
}

/// How the asker tells whether the holder still holds the agent.
struct Holder {
    state: AppState,
    org: OrgId,
    agent: AgentId,
    replica: String,
}

impl Holder {
    async fn still_holds(&self) -> bool {
        let scope = OrgScope::system(self.org);
        let Ok(mut tx) = self.state.store().org_read(&scope).await else {
            return true;
        };
        let record = tx.agent(self.agent).await;
        let _ = tx.commit().await;
        match record {
            Ok(record) => {
                record.connected_replica.as_deref() == Some(self.replica.as_str())
                    && super::is_online(
                        record.connected_replica.as_deref(),
                        record.last_seen_at,
                        now_micros(),
                        self.state.hub().heartbeat(),
                    )
            }
            Err(_) => false,
        }
    }
}

impl std::fmt::Debug for RelayedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayedStream")
            .field("id", &self.link.id)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl RelayedStream {
    /// The next event; `None` after the final one.
    pub(super) async fn next(&mut self) -> Option<StreamEvent> {
        if self.finished {
            return None;
        }
        loop {
            match tokio::time::timeout(KEEPALIVE * 2, self.rx.recv()).await {
                Ok(Some(Received::Event(event))) => {
                    self.finished = !matches!(event, StreamEvent::Chunk(_));
                    return Some(event);
                }
                Ok(Some(Received::Open)) => {}
                Ok(None) => break,
                // Quiet: fine while the holder still holds the agent.
                Err(_) if self.holder.still_holds().await => {}
                Err(_) => break,
            }
        }
        self.finished = true;
        Some(StreamEvent::Failed(CommandError::Closed))
    }

    /// The link input goes through.
    pub(super) fn link(&self) -> RelayLink {
        self.link.clone()
    }
}

impl Drop for RelayedStream {
    fn drop(&mut self) {
        self.keepalive.abort();
        if let Ok(mut asked) = self.link.streams.asked.lock() {
            asked.remove(&self.link.id);
        }
        if !self.finished {
            self.link.send_later("x", "");
        }
        let (store, id, org) = (
            self.holder.state.store().clone(),
            self.link.id.clone(),
            self.holder.org,
        );
        tokio::spawn(async move {
            if let Ok(mut tx) = store.org(&OrgScope::system(org)).await {
                let _ = tx.delete_relay(&id).await;
                let _ = tx.commit().await;
            }
        });
    }
}

/// The asker's way to the holder: notifications on the holder's channel.
#[derive(Clone)]
pub(super) struct RelayLink {
    store: Store,
    channel: String,
    id: String,
    streams: Arc<RelayStreams>,
}

impl std::fmt::Debug for RelayLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayLink").field("id", &self.id).finish()
    }
}

impl RelayLink {
    /// Sends input to the command on the holder's side.
    pub(super) async fn input(&self, kind: command_input::Kind) -> Result<(), CommandError> {
        let input = CommandInput {
            request_id: String::new(),
            kind: Some(kind),
        };
        self.send("i", &STANDARD.encode(input.encode_to_vec()))
            .await
            .map_err(|_| CommandError::Closed)
    }

    async fn send(&self, tag: &str, data: &str) -> Result<(), crate::store::StoreError> {
        let payload = format!("{tag}:{}:{data}", self.id);
        self.store.notify(&self.channel, &payload).await
    }

    fn send_later(&self, tag: &'static str, data: &'static str) {
        let link = self.clone();
        tokio::spawn(async move {
            let _ = link.send(tag, data).await;
        });
    }
}

/// Opens a streamed command on the agent whose stream `target` holds, through it.
pub(super) async fn open(
    state: &AppState,
    org: OrgId,
    agent: AgentId,
    target: String,
    command: String,
) -> Result<CommandStream, CommandError> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let streams = state.relay_streams();
    let (tx, mut rx) = mpsc::channel(BUFFER);
    if let Ok(mut asked) = streams.asked.lock() {
        asked.insert(
            id.clone(),
            Asked {
                tx,
                next_seq: 0,
                partial: Vec::new(),
            },
        );
    }
    let link = RelayLink {
        store: state.store().clone(),
        channel: replica_channel(&target),
        id: id.clone(),
        streams: streams.clone(),
    };
    let keepalive = {
        let link = link.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEEPALIVE).await;
                let _ = link.send("k", "").await;
            }
        })
    };
    let relayed = RelayedStream {
        link,
        rx: mpsc::channel(1).1,
        finished: false,
        keepalive,
        holder: Holder {
            state: state.clone(),
            org,
            agent,
            replica: target.clone(),
        },
    };
    let relay = RelayRecord {
        id,
        agent,
        origin_replica: state.hub().replica().to_owned(),
        target_replica: target,
        command,
        timeout_ms: 0,
        reply: None,
    };
    let scope = OrgScope::system(org);
    let stored = async {
        let mut tx = state.store().org(&scope).await?;
        tx.insert_relay(&relay, now_micros()).await?;
        tx.commit().await
    }
    .await;
    if stored.is_err() {
        return Err(CommandError::Offline);
    }
    // The holder opens the stream on the agent first: its failure is the caller's answer.
    let mut relayed = relayed;
    match tokio::time::timeout(OPEN_WAIT, rx.recv()).await {
        Ok(Some(Received::Open)) => {
            relayed.rx = rx;
            Ok(CommandStream::relayed(relayed))
        }
        Ok(Some(Received::Event(StreamEvent::Failed(e)))) => {
            relayed.finished = true;
            Err(e)
        }
        Ok(Some(Received::Event(_))) | Ok(None) => Err(CommandError::Closed),
        Err(_) => Err(CommandError::Timeout(OPEN_WAIT)),
    }
}

/// Serves a stream another replica asked for: opens it on the agent this replica holds and
/// sends its events back until it ends, the asker cancels or goes quiet.
pub(super) async fn serve(
    state: &AppState,
    org: OrgId,
    relay: &RelayRecord,
    kind: Option<infrapilot_proto::v1::command::Kind>,
) {
    let back = replica_channel(&relay.origin_replica);
    let store = state.store();
    let mut seq = 0u64;
    let mut send = async |kind: &str, bytes: &[u8]| {
        let payload = format!("e:{}:{seq}:{kind}:{}", relay.id, STANDARD.encode(bytes));
        seq += 1;
        store.notify(&back, &payload).await.is_ok()
    };
    let opened = match kind {
        Some(kind) => state.hub().open_stream(org, relay.agent, kind, None).await,
        None => Err(CommandError::Agent {
            code: "invalid".into(),
            message: "undecodable relayed command".into(),
        }),
    };
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(e) => {
            let reply = serde_json::to_vec(&super::relay::RelayReply::from_result(Err(e)))
                .unwrap_or_default();
            send("f", &reply).await;
            return;
        }
    };
    let (control_tx, mut control) = mpsc::channel(256);
    let streams = state.relay_streams();
    if let Ok(mut served) = streams.served.lock() {
        served.insert(relay.id.clone(), control_tx);
    }
    let input = stream.input();
    let mut heard = tokio::time::Instant::now();
    if send("r", &[]).await {
        loop {
            tokio::select! {
                event = stream.next() => {
                    let sent = match event {
                        Some(StreamEvent::Chunk(bytes)) => {
                            let mut parts = bytes.chunks(PART_BYTES).peekable();
                            let mut ok = true;
                            if parts.peek().is_none() {
                                ok = send("c", &[]).await;
                            }
                            while let Some(part) = parts.next() {
                                let tag = if parts.peek().is_some() { "p" } else { "c" };
                                ok = ok && send(tag, part).await;
                            }
                            ok
                        }
                        Some(StreamEvent::Done(payload)) => {
                            send("d", &payload).await;
                            break;
                        }
                        Some(StreamEvent::Failed(e)) => {
                            let reply = serde_json::to_vec(
                                &super::relay::RelayReply::from_result(Err(e)),
                            )
                            .unwrap_or_default();
                            send("f", &reply).await;
                            break;
                        }
                        None => break,
                    };
                    if !sent {
                        break;
                    }
                }
                message = control.recv() => {
                    heard = tokio::time::Instant::now();
                    match message {
                        Some(Control::Input(kind)) => {
                            let _ = input.send(kind).await;
                        }
                        Some(Control::KeepAlive) => {}
                        // Cancelled: dropping the stream cancels it on the agent.
                        Some(Control::Cancel) | None => break,
                    }
                }
                // The asker went quiet (its replica died): cancelled the same way.
                () = tokio::time::sleep_until(heard + ASKER_SILENCE) => break,
            }
        }
    }
    if let Ok(mut served) = streams.served.lock() {
        served.remove(&relay.id);
    }
}
