//! Streamed commands across replicas: log follow, stats and the terminal for an agent whose
//! stream another replica holds.
//!
//! The asking replica writes the command to `agent_commands` like any relayed command (with
//! `timeout_ms` 0: a stream has no deadline) and wakes the holding replica. That replica opens
//! the stream on the agent and sends everything back as notifications on the asker's channel,
//! numbered from 0: `e:<id>:<seq>:<kind>:<base64>`, where the kind is `r` (open, first),
//! `h` (the holder is still there, every [`KEEPALIVE`]), `p` (a part: more follows), `c` (a
//! chunk, or its last part), `d` (done, with the final payload) or `f` (failed, with the
//! relay's reply as JSON). Whatever does not fit a notification is cut into parts and put
//! together again, so chunk boundaries (an exec frame's stream byte) survive. Input travels
//! the other way on the holder's channel: `i:<id>:<n>:<base64 CommandInput>` (numbered from
//! 0), `k:<id>` (the asker is still there) and `x:<id>` (the asker went away: cancel).
//! Notifications of one sender arrive in the order sent, and both listeners hand them on in
//! that order; a gap in the numbering (events or inputs) ends the stream as failed rather
//! than going on with a hole in it.
//!
//! Either side going away ends the stream: the holder cancels it on the agent when the asker
//! says so or has not been heard from for [`SILENCE`], and ends it with `f` whenever it stops
//! for a reason of its own; the asker fails it when the holder has not been heard from for
//! [`SILENCE`] (its replica died, or a notification was lost), and cancels it on the holder
//! when it ends it itself. Input that arrives out of turn (one was lost) or faster than the
//! holder takes it fails the stream rather than vanish.

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
/// How often each side says it is still there.
pub const KEEPALIVE: Duration = Duration::from_secs(10);
/// How long either side goes on without hearing from the other.
pub const SILENCE: Duration = Duration::from_secs(35);
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
    Beat,
    Event(StreamEvent),
    /// The holder's own end of the stream (done or failed).
    End(StreamEvent),
}

/// Where the asker's events are put together.
struct Asked {
    tx: mpsc::Sender<Received>,
    next_seq: u64,
    partial: Vec<u8>,
}

/// Where a served stream's input goes, and the number its next input must carry.
struct Served {
    tx: mpsc::Sender<Control>,
    next_input: u64,
}

/// The relayed streams of this replica: those it asked another for (where their events go)
/// and those it serves for another (where their input goes).
#[derive(Default)]
pub struct RelayStreams {
    asked: Mutex<HashMap<String, Asked>>,
    served: Mutex<HashMap<String, Served>>,
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
                let Ok(mut served) = self.served.lock() else {
                    return true;
                };
                let Some(entry) = served.get_mut(id) else {
                    return true;
                };
                let control = match tag {
                    "k" => Some(Control::KeepAlive),
                    "x" => Some(Control::Cancel),
                    _ => {
                        // `<seq>:<base64>`: an input out of turn means one was lost.
                        let (seq, data) = data.split_once(':').unwrap_or(("", data));
                        let in_turn = seq.parse::<u64>().ok() == Some(entry.next_input);
                        entry.next_input += 1;
                        STANDARD
                            .decode(data)
                            .ok()
                            .and_then(|bytes| CommandInput::decode(bytes.as_slice()).ok())
                            .and_then(|input| input.kind)
                            .filter(|_| in_turn)
                            .map(Control::Input)
                    }
                };
                // Input lost, or faster than the agent takes it: the stream ends (the holder
                // sees its input closed) rather than go on without a keystroke.
                if control.is_none_or(|control| entry.tx.try_send(control).is_err()) {
                    served.remove(id);
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
            if kind == "p" {
                entry.partial.extend_from_slice(&bytes);
                None
            } else {
                let mut whole = std::mem::take(&mut entry.partial);
                whole.extend_from_slice(&bytes);
                match kind {
                    "r" => Some(Received::Open),
                    "h" => Some(Received::Beat),
                    "c" => Some(Received::Event(StreamEvent::Chunk(whole))),
                    "d" => Some(Received::End(StreamEvent::Done(whole))),
                    _ => {
                        let reply: super::relay::RelayReply = serde_json::from_slice(&whole)
                            .unwrap_or(super::relay::RelayReply::Closed);
                        let error = reply
                            .into_result(Duration::ZERO)
                            .err()
                            .unwrap_or(CommandError::Closed);
                        Some(Received::End(StreamEvent::Failed(error)))
                    }
                }
            }
        };
        if let Some(received) = received {
            let ends = matches!(
                received,
                Received::End(_) | Received::Event(StreamEvent::Failed(_))
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
    /// No more events: the stream ended, one way or the other.
    finished: bool,
    /// The holder ended it (so there is nothing to cancel there).
    ended_by_holder: bool,
    /// When the holder counts as gone unless heard from.
    deadline: tokio::time::Instant,
    keepalive: tokio::task::JoinHandle<()>,
    org: OrgId,
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
            let received = tokio::time::timeout_at(self.deadline, self.rx.recv()).await;
            self.deadline = tokio::time::Instant::now() + SILENCE;
            match received {
                Ok(Some(Received::Event(event))) => {
                    self.finished = !matches!(event, StreamEvent::Chunk(_));
                    return Some(event);
                }
                Ok(Some(Received::End(event))) => {
                    self.finished = true;
                    self.ended_by_holder = true;
                    return Some(event);
                }
                Ok(Some(Received::Open | Received::Beat)) => {}
                // Cut (a reader too slow), or the holder went quiet: gone, or a notification
                // was lost.
                Ok(None) | Err(_) => break,
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
        // Dropped outside a runtime (the process ends): the holder's silence timer cancels.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let link = self.link.clone();
        let (org, cancel) = (self.org, !self.ended_by_holder);
        runtime.spawn(async move {
            if cancel {
                let _ = link.send("x", "").await;
            }
            super::relay::forget_relay(&link.store, org, &link.id).await;
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
    /// The number of the next input; held while it is sent, so inputs go out in turn.
    next_input: Arc<tokio::sync::Mutex<u64>>,
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
        let mut next = self.next_input.lock().await;
        let data = format!("{}:{}", *next, STANDARD.encode(input.encode_to_vec()));
        self.send("i", &data)
            .await
            .map_err(|_| CommandError::Closed)?;
        *next += 1;
        Ok(())
    }

    async fn send(&self, tag: &str, data: &str) -> Result<(), crate::store::StoreError> {
        let payload = format!("{tag}:{}:{data}", self.id);
        self.store.notify(&self.channel, &payload).await
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
    let (tx, rx) = mpsc::channel(BUFFER);
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
        next_input: Arc::default(),
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
    let mut relayed = RelayedStream {
        link,
        rx,
        finished: false,
        ended_by_holder: false,
        deadline: tokio::time::Instant::now() + SILENCE,
        keepalive,
        org,
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
    match tokio::time::timeout(OPEN_WAIT, relayed.rx.recv()).await {
        Ok(Some(Received::Open)) => {
            relayed.deadline = tokio::time::Instant::now() + SILENCE;
            Ok(CommandStream::relayed(relayed))
        }
        Ok(Some(Received::End(StreamEvent::Failed(e)))) => {
            relayed.ended_by_holder = true;
            Err(e)
        }
        Ok(Some(_) | None) => Err(CommandError::Closed),
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
    let mut back = Back {
        store: state.store(),
        channel: replica_channel(&relay.origin_replica),
        id: &relay.id,
        seq: 0,
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
            back.fail(e).await;
            return;
        }
    };
    let (control_tx, mut control) = mpsc::channel(256);
    let streams = state.relay_streams();
    if let Ok(mut served) = streams.served.lock() {
        served.insert(
            relay.id.clone(),
            Served {
                tx: control_tx,
                next_input: 0,
            },
        );
    }
    // An asker that gave up while this replica was opening deleted its row, and its cancel
    // came before there was anything to cancel.
    let asked = async {
        let mut tx = state.store().org_read(&OrgScope::system(org)).await?;
        let row = tx.relay(&relay.id).await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(row.is_some())
    };
    let mut ended = false;
    if asked.await.unwrap_or(false) && back.send("r", &[]).await {
        let input = stream.input();
        let mut heard = tokio::time::Instant::now();
        let mut beat = tokio::time::interval_at(heard + KEEPALIVE, KEEPALIVE);
        loop {
            tokio::select! {
                event = stream.next() => {
                    let (tag, bytes) = match event {
                        Some(StreamEvent::Chunk(bytes)) => ("c", bytes),
                        Some(StreamEvent::Done(payload)) => ("d", payload),
                        Some(StreamEvent::Failed(e)) => {
                            ended = back.fail(e).await;
                            break;
                        }
                        None => break,
                    };
                    if !back.send(tag, &bytes).await {
                        break;
                    }
                    if tag == "d" {
                        ended = true;
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
                        // Cancelled (or input overflowed): dropping the stream cancels it.
                        Some(Control::Cancel) | None => break,
                    }
                }
                _ = beat.tick() => {
                    if !back.send("h", &[]).await {
                        break;
                    }
                }
                // The asker went quiet (its replica died): cancelled the same way, and the
                // row it would have deleted goes too.
                () = tokio::time::sleep_until(heard + SILENCE) => {
                    super::relay::forget_relay(state.store(), org, &relay.id).await;
                    break;
                }
            }
        }
    }
    if !ended {
        // Whatever stopped it, the asker hears the end rather than wait for silence.
        back.fail(CommandError::Closed).await;
    }
    if let Ok(mut served) = streams.served.lock() {
        served.remove(&relay.id);
    }
}

/// The holder's way back to the asker: numbered events on the asker's channel.
struct Back<'a> {
    store: &'a Store,
    channel: String,
    id: &'a str,
    seq: u64,
}

impl Back<'_> {
    /// Sends `bytes` as an event of kind `tag`, cut into parts that fit a notification;
    /// answers whether all of it went.
    async fn send(&mut self, tag: &str, bytes: &[u8]) -> bool {
        let mut parts = bytes.chunks(PART_BYTES).peekable();
        if parts.peek().is_none() {
            return self.notify(tag, &[]).await;
        }
        while let Some(part) = parts.next() {
            let kind = if parts.peek().is_some() { "p" } else { tag };
            if !self.notify(kind, part).await {
                return false;
            }
        }
        true
    }

    async fn notify(&mut self, kind: &str, bytes: &[u8]) -> bool {
        let payload = format!(
            "e:{}:{}:{kind}:{}",
            self.id,
            self.seq,
            STANDARD.encode(bytes)
        );
        self.seq += 1;
        self.store.notify(&self.channel, &payload).await.is_ok()
    }

    /// Ends the stream with `error`; answers whether the asker was told.
    async fn fail(&mut self, error: CommandError) -> bool {
        let reply = serde_json::to_vec(&super::relay::RelayReply::from_result(Err(error)))
            .unwrap_or_default();
        self.send("f", &reply).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(seq: u64, rows: u32) -> String {
        let kind = command_input::Kind::Resize(infrapilot_proto::v1::Resize { rows, cols: 80 });
        let bytes = CommandInput {
            request_id: String::new(),
            kind: Some(kind),
        }
        .encode_to_vec();
        format!("i:s1:{seq}:{}", STANDARD.encode(bytes))
    }

    #[test]
    fn input_out_of_turn_ends_the_stream_rather_than_go_on_without_it() {
        let streams = RelayStreams::default();
        let (tx, mut rx) = mpsc::channel(8);
        streams
            .served
            .lock()
            .unwrap()
            .insert("s1".to_owned(), Served { tx, next_input: 0 });
        assert!(streams.dispatch(&input(0, 24)));
        assert!(streams.dispatch("k:s1:"));
        assert!(matches!(rx.try_recv(), Ok(Control::Input(_))));
        assert!(matches!(rx.try_recv(), Ok(Control::KeepAlive)));
        assert_eq!(streams.in_flight(), 1);
        // Input 1 was lost on the way: input 2 ends the stream.
        assert!(streams.dispatch(&input(2, 40)));
        assert_eq!(streams.in_flight(), 0);
        assert!(rx.try_recv().is_err());
        // A command's notification is not a stream's.
        assert!(!streams.dispatch("0190aaaa-0000-7000-8000-000000000000:abc"));
    }

    #[test]
    fn parts_are_put_together_and_a_gap_fails_the_stream() {
        let streams = RelayStreams::default();
        let (tx, mut rx) = mpsc::channel(8);
        streams.asked.lock().unwrap().insert(
            "a1".to_owned(),
            Asked {
                tx,
                next_seq: 0,
                partial: Vec::new(),
            },
        );
        let event = |seq: u64, kind: &str, bytes: &[u8]| {
            format!("e:a1:{seq}:{kind}:{}", STANDARD.encode(bytes))
        };
        assert!(streams.dispatch(&event(0, "r", b"")));
        assert!(streams.dispatch(&event(1, "p", b"\x01hel")));
        assert!(streams.dispatch(&event(2, "c", b"lo")));
        assert!(matches!(rx.try_recv(), Ok(Received::Open)));
        match rx.try_recv() {
            Ok(Received::Event(StreamEvent::Chunk(chunk))) => assert_eq!(chunk, b"\x01hello"),
            other => panic!("{other:?}"),
        }
        // Event 3 was lost: event 4 fails the stream, and nothing more is taken.
        assert!(streams.dispatch(&event(4, "c", b"x")));
        assert!(matches!(
            rx.try_recv(),
            Ok(Received::Event(StreamEvent::Failed(_)))
        ));
        assert_eq!(streams.in_flight(), 0);
    }
}
