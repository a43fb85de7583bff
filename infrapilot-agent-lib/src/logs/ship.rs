//! The shipper: sends the buffer's unacknowledged records to the server during a session.
//!
//! One batch per stream is in flight at a time. Were two in flight and the first failed to
//! store while the second succeeded, the second's acknowledgement would delete the first's
//! records unstored; with one, an acknowledgement covers exactly what the server stored. A
//! batch that is not acknowledged within [`ShipConfig::ack_timeout`] is sent again (the
//! server stores it once whatever happens), and every new session starts over from the
//! acknowledged seq of each stream.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use infrapilot_proto::v1::{AgentMessage, LogAck, LogBatch, LogRecord, agent_message};
use tokio::sync::mpsc;

use super::LogPipeline;

/// Batch sizes and timeouts of the shipper.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// The most records in one batch.
    pub max_records: usize,
    /// The most line bytes in one batch (a batch always holds at least one record).
    pub max_bytes: usize,
    /// How long to wait for an acknowledgement before sending a batch again.
    pub ack_timeout: Duration,
}

impl Default for ShipConfig {
    fn default() -> Self {
        Self {
            max_records: 2000,
            max_bytes: 1024 * 1024,
            ack_timeout: Duration::from_secs(30),
        }
    }
}

/// Ships until `outgoing` closes (the session ended). `acks` carries the server's `LogAck`s.
pub async fn run(
    pipeline: LogPipeline,
    outgoing: mpsc::Sender<AgentMessage>,
    mut acks: mpsc::Receiver<LogAck>,
) {
    let config = pipeline.config().ship.clone();
    // Per stream: the last seq of the batch in flight and when it was sent.
    let mut in_flight: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A batch not acknowledged in time is sent again (checked on every pass: appends
        // wake the loop often enough that a timer branch alone might never run).
        in_flight.retain(|_, (_, sent)| sent.elapsed() < config.ack_timeout);
        let batches = next_batches(&pipeline, &config, &in_flight);
        for batch in batches {
            let last = batch.records.last().map_or(0, |r| r.seq);
            in_flight.insert(batch.stream.clone(), (last, Instant::now()));
            let message = AgentMessage {
                body: Some(agent_message::Body::Logs(batch)),
            };
            if outgoing.send(message).await.is_err() {
                return;
            }
        }
        tokio::select! {
            ack = acks.recv() => {
                let Some(ack) = ack else { return };
                if let Err(e) = pipeline.buffer().ack(&ack.stream, ack.seq) {
                    tracing::warn!(stream = %ack.stream, error = %e, "cannot record a log acknowledgement");
                }
                if in_flight.get(&ack.stream).is_some_and(|(last, _)| *last <= ack.seq) {
                    in_flight.remove(&ack.stream);
                }
            }
            () = pipeline.appended().notified() => {}
            _ = ticker.tick() => {}
            () = outgoing.closed() => return,
        }
    }
}

/// A batch for every stream that has unacknowledged records and none in flight.
fn next_batches(
    pipeline: &LogPipeline,
    config: &ShipConfig,
    in_flight: &HashMap<String, (u64, Instant)>,
) -> Vec<LogBatch> {
    let buffer = pipeline.buffer();
    let mut batches = Vec::new();
    for status in buffer.streams() {
        if in_flight.contains_key(&status.key) || status.next_seq <= status.acked + 1 {
            continue;
        }
        let records = match buffer.read(
            &status.key,
            status.acked,
            config.max_records,
            config.max_bytes,
        ) {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(stream = %status.key, error = %e, "cannot read buffered logs");
                continue;
            }
        };
        if records.is_empty() {
            continue;
        }
        batches.push(LogBatch {
            stream: status.key.clone(),
            kind: status.meta.kind.clone(),
            container_id: status.meta.container_id.clone().unwrap_or_default(),
            container_name: status.meta.container_name.clone().unwrap_or_default(),
            records: records
                .into_iter()
                .map(|r| LogRecord {
                    seq: r.seq,
                    time_unix_nanos: r.time_unix_nanos,
                    source: r.source,
                    line: r.line,
                })
                .collect(),
            dropped: status.dropped,
            epoch: status.epoch.clone(),
        });
    }
    batches
}
