//! Log collection and shipping: container output and Docker's events, buffered on disk,
//! shipped to the server without loss.
//!
//! - [`buffer`] — the on-disk buffer: per-stream sequence numbers, bounded, surviving restarts.
//! - [`collect`] — collectors that append to it: every selected container's stdout and
//!   stderr (resuming after the last line buffered, so a restart buffers no line twice) and
//!   the engine's container events.
//! - [`files`] — nginx's access and error logs, tailed from the proxy's log directory and
//!   rotated past their bound without losing a line.
//! - [`ship`] — the shipper that runs inside a session: sends each stream's unacknowledged
//!   records as `LogBatch`es, one batch in flight per stream, and deletes records only once
//!   the server acknowledged them.
//!
//! Collectors run for as long as the agent runs, server or not; the shipper only while a
//! session is open. With the server away the buffer grows (up to its bound, then its full
//! policy applies); when it is back the shipper resumes from the last acknowledged seq.

pub mod buffer;
pub mod collect;
pub mod files;
pub mod ship;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::probe::HostProbe;

pub use buffer::{BufferConfig, BufferError, FullPolicy, LogBuffer, StreamMeta};
pub use collect::{Selection, SelectionError};
pub use files::{NginxLogs, ReopenLogs};
pub use ship::ShipConfig;

/// How the agent collects and ships logs.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Where the buffer lives (`<state>/logs` for `infrapilot-agentd`).
    pub buffer_dir: PathBuf,
    /// The buffer's bound and full policy.
    pub buffer: BufferConfig,
    /// Which containers' output is collected.
    pub selection: Selection,
    /// How many lines of a container's past output are collected the first time it is seen
    /// (later, collection resumes after the last line buffered).
    pub backfill_lines: u32,
    /// Batch sizes and timeouts of the shipper.
    pub ship: ShipConfig,
}

impl LogConfig {
    /// The defaults for a buffer in `buffer_dir`: every container, 256 MiB dropping the
    /// oldest records when full, 10,000 lines of backfill.
    pub fn new(buffer_dir: impl Into<PathBuf>) -> Self {
        Self {
            buffer_dir: buffer_dir.into(),
            buffer: BufferConfig::default(),
            selection: Selection::All,
            backfill_lines: 10_000,
            ship: ShipConfig::default(),
        }
    }
}

/// The buffer shared by the collectors and the shipper, and the signal that new records
/// arrived.
#[derive(Clone)]
pub struct LogPipeline {
    buffer: Arc<Mutex<LogBuffer>>,
    appended: Arc<Notify>,
    config: LogConfig,
}

impl std::fmt::Debug for LogPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogPipeline")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LogPipeline {
    /// Opens (or creates) the buffer.
    pub fn open(config: LogConfig) -> Result<Self, BufferError> {
        let buffer = LogBuffer::open(config.buffer_dir.clone(), config.buffer.clone())?;
        Ok(Self {
            buffer: Arc::new(Mutex::new(buffer)),
            appended: Arc::new(Notify::new()),
            config,
        })
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The buffer, locked. The lock is held only for one buffer operation at a time (each a
    /// few small file operations), never across an `.await`.
    pub fn buffer(&self) -> MutexGuard<'_, LogBuffer> {
        // A collector that panicked while holding the lock left the buffer in the state of
        // its last completed operation: every operation writes before it updates memory.
        self.buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the shipper: records were appended.
    pub(crate) fn notify_appended(&self) {
        self.appended.notify_one();
    }

    pub(crate) fn appended(&self) -> &Notify {
        &self.appended
    }

    /// Starts filling the buffer: the selected containers' output and Docker's events
    /// through `docker` (its engine looked for until found), and `nginx`'s logs (rotated
    /// past their bound), each when given. They run until `shutdown` is cancelled or the
    /// returned [`Collectors`] is dropped, server or no server.
    pub fn start_collectors(
        &self,
        docker: Option<Arc<HostProbe>>,
        nginx: Option<NginxLogs>,
        shutdown: CancellationToken,
    ) -> Collectors {
        let mut tasks = Vec::new();
        if let Some(probe) = docker {
            tasks.push(tokio::spawn(collect::run_with_probe(
                self.clone(),
                probe,
                shutdown.child_token(),
            )));
        }
        if let Some(logs) = nginx {
            tasks.push(tokio::spawn(files::run_nginx(
                self.clone(),
                logs,
                shutdown.child_token(),
            )));
        }
        Collectors { tasks }
    }
}

/// The running collectors of a [`LogPipeline`]; dropping it stops them.
#[derive(Debug)]
pub struct Collectors {
    tasks: Vec<JoinHandle<()>>,
}

impl Collectors {
    /// With a `pipeline`, [`LogPipeline::start_collectors`]; without (collection is off),
    /// only the rotation of `nginx`'s logs ([`files::rotate_untailed`]), so that they never
    /// fill the disk either way.
    pub fn start(
        pipeline: Option<&LogPipeline>,
        docker: Option<Arc<HostProbe>>,
        nginx: Option<NginxLogs>,
        shutdown: CancellationToken,
    ) -> Collectors {
        match (pipeline, nginx) {
            (Some(pipeline), nginx) => pipeline.start_collectors(docker, nginx, shutdown),
            (None, Some(nginx)) => Collectors {
                tasks: vec![tokio::spawn(files::rotate_untailed(nginx, shutdown))],
            },
            (None, None) => Collectors { tasks: Vec::new() },
        }
    }
}

impl Drop for Collectors {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
