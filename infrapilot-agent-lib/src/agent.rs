//! The remote agent: the session over gRPC with mutual TLS, reconnecting with backoff and
//! renewing its certificate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use infrapilot_proto::v1::agent_service_client::AgentServiceClient;
use infrapilot_proto::v1::{AgentMessage, ServerMessage};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::backoff::{Backoff, BackoffConfig};
use crate::command::{AgentInfo, BuiltinCommands, Chain, CommandHandler};
use crate::docker::DockerCommands;
use crate::endpoint::AgentEndpoint;
use crate::error::AgentError;
use crate::logs::{Collectors, LogConfig, LogPipeline};
use crate::nginx::ProxyCommands;
use crate::probe::{DEFAULT_DOCKER_SOCKET, HostProbe};
use crate::renew::{Validity, renew};
use crate::session::{DEFAULT_HEARTBEAT_INTERVAL, EndReason, SessionContext, run_session};
use crate::state::StateDir;
use crate::tls::{self, error_chain};

/// How long to wait before retrying a failed renewal.
const RENEWAL_RETRY: Duration = Duration::from_secs(300);

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The state directory holding the key, certificates and record.
    pub state_dir: PathBuf,
    /// Replaces the endpoint stored at enrollment.
    pub endpoint_override: Option<AgentEndpoint>,
    /// Replaces the server's heartbeat interval.
    pub heartbeat_override: Option<Duration>,
    /// The reconnect schedule.
    pub backoff: BackoffConfig,
    /// How long to wait for `Welcome`.
    pub welcome_timeout: Duration,
    /// How long commands in flight may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// The Docker socket; `None` to never look for Docker.
    pub docker_socket: Option<PathBuf>,
    /// The proxy (nginx and its Let's Encrypt certificates) the agent drives, if any; its
    /// state file must be the state directory's `desired-state.json`.
    pub proxy: Option<Arc<ProxyCommands>>,
    /// Log collection and shipping; `None` collects nothing.
    pub logs: Option<LogConfig>,
}

impl AgentConfig {
    /// The defaults for an agent whose state is in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            endpoint_override: None,
            heartbeat_override: None,
            backoff: BackoffConfig::default(),
            welcome_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            docker_socket: Some(PathBuf::from(DEFAULT_DOCKER_SOCKET)),
            proxy: None,
            logs: None,
        }
    }
}

/// Why [`Agent::run`] returned without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The shutdown token was cancelled; the last session ended gracefully.
    Shutdown,
    /// The server ended the session for good (the agent was revoked, or its version is not
    /// supported). Reconnecting would not help.
    Goodbye {
        /// The server's reason, verbatim.
        reason: String,
    },
}

/// The agent: connects, runs sessions, reconnects, renews its certificate.
pub struct Agent {
    config: AgentConfig,
    state: StateDir,
    info: AgentInfo,
    probe: Arc<HostProbe>,
    handler: Arc<dyn CommandHandler>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.config)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What one connection attempt came to.
enum Attempt {
    /// The session ended; `welcomed` tells whether it was healthy.
    Ended { reason: EndReason, welcomed: bool },
    /// The certificate was renewed; reconnect at once with it.
    Renewed,
}

impl Agent {
    /// An agent answering the built-in commands, and the Docker commands when it has a Docker
    /// socket.
    pub fn new(config: AgentConfig) -> Self {
        let state = StateDir::new(config.state_dir.clone());
        let info = AgentInfo::of_this_host();
        let probe = Arc::new(HostProbe::new(
            config.state_dir.clone(),
            config.docker_socket.clone(),
        ));
        let builtin = BuiltinCommands::new(info.clone(), probe.clone());
        let base: Arc<dyn CommandHandler> = if config.docker_socket.is_some() {
            Arc::new(Chain {
                first: builtin,
                second: DockerCommands::new(probe.clone()),
            })
        } else {
            Arc::new(builtin)
        };
        let handler: Arc<dyn CommandHandler> = match &config.proxy {
            Some(proxy) => Arc::new(Chain {
                first: base,
                second: proxy.clone(),
            }),
            None => base,
        };
        Self {
            config,
            state,
            info,
            probe,
            handler,
        }
    }

    /// The same agent with `handler` running its commands instead of the built-in ones.
    pub fn with_handler(mut self, handler: Arc<dyn CommandHandler>) -> Self {
        self.handler = handler;
        self
    }

    /// Runs until `shutdown` is cancelled or the server says a permanent goodbye.
    ///
    /// Connection failures, broken streams and temporary goodbyes are retried with
    /// exponential backoff and full jitter; a session the server welcomed resets the
    /// schedule. Errors are those retrying cannot fix: a missing or broken state directory,
    /// an invalid endpoint, a protocol version mismatch.
    ///
    /// With a proxy, the last known desired state is applied first (nginx serves before the
    /// server is reachable), and its certificates are obtained and renewed alongside, with or
    /// without the server.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<StopReason, AgentError> {
        let _proxy_work = match &self.config.proxy {
            Some(proxy) => {
                proxy.restore().await;
                Some(AbortOnDrop(tokio::spawn(
                    proxy.clone().run_background(shutdown.child_token()),
                )))
            }
            None => None,
        };
        // Logs are collected into the buffer whether or not the server is reachable.
        let logs = match &self.config.logs {
            Some(config) => Some(LogPipeline::open(config.clone())?),
            None => None,
        };
        let _collectors = Collectors::start(
            logs.as_ref(),
            self.config
                .docker_socket
                .as_ref()
                .map(|_| self.probe.clone()),
            self.config.proxy.as_ref().map(ProxyCommands::nginx_logs),
            shutdown.child_token(),
        );
        let mut backoff = Backoff::new(self.config.backoff);
        loop {
            if shutdown.is_cancelled() {
                return Ok(StopReason::Shutdown);
            }
            match self.attempt(&shutdown, logs.as_ref()).await {
                Ok(Attempt::Renewed) => {
                    tracing::info!("certificate renewed; reconnecting with it");
                    continue;
                }
                Ok(Attempt::Ended { reason, welcomed }) => {
                    if welcomed {
                        backoff.reset();
                    }
                    match reason {
                        EndReason::Shutdown if shutdown.is_cancelled() => {
                            return Ok(StopReason::Shutdown);
                        }
                        EndReason::Shutdown => continue,
                        EndReason::Goodbye {
                            reason,
                            permanent: true,
                        } => return Ok(StopReason::Goodbye { reason }),
                        EndReason::Goodbye { reason, .. } => {
                            tracing::warn!(%reason, "the server ended the session; reconnecting");
                        }
                        EndReason::ServerClosed => {
                            tracing::warn!("the server closed the session; reconnecting");
                        }
                    }
                }
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => tracing::warn!(error = %e, "session failed; reconnecting"),
            }
            let delay = backoff.next_delay();
            tracing::info!(
                ?delay,
                attempt = backoff.attempt(),
                "waiting before reconnecting"
            );
            tokio::select! {
                () = shutdown.cancelled() => return Ok(StopReason::Shutdown),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One connection: renew first if due, else run a session (renewing during it when due).
    async fn attempt(
        &self,
        shutdown: &CancellationToken,
        logs: Option<&LogPipeline>,
    ) -> Result<Attempt, AgentError> {
        let record = self.state.read_record()?;
        let endpoint = match &self.config.endpoint_override {
            Some(endpoint) => endpoint.clone(),
            None => AgentEndpoint::parse(&record.endpoint)?,
        };
        let chain = self.state.read_cert_chain()?;
        let renew_at = match chain.first() {
            Some(cert) => Validity::of_der(cert)?.renew_at(),
            None => record.not_after_unix,
        };
        let config = tls::mtls_client_config(self.state.read_ca()?, chain, self.state.read_key()?)?;
        let channel = tls::channel(&endpoint, Arc::new(config))
            .await
            .map_err(|e| AgentError::Connect {
                endpoint: endpoint.to_string(),
                message: error_chain(&e),
            })?;
        if unix_now() >= renew_at {
            renew(channel, &self.state).await?;
            return Ok(Attempt::Renewed);
        }

        let session_token = shutdown.child_token();
        let renewal = tokio::spawn(renew_when_due(
            renew_at,
            channel.clone(),
            self.state.clone(),
            session_token.clone(),
        ));
        let ctx = SessionContext {
            info: self.info.clone(),
            applied_revision: self.state.applied_revision()?,
            heartbeat_interval: if record.heartbeat_interval_secs > 0 {
                Duration::from_secs(u64::from(record.heartbeat_interval_secs))
            } else {
                DEFAULT_HEARTBEAT_INTERVAL
            },
            heartbeat_override: self.config.heartbeat_override,
            welcome_timeout: self.config.welcome_timeout,
            drain_timeout: self.config.drain_timeout,
            probe: self.probe.clone(),
            handler: self.handler.clone(),
            shutdown: session_token,
            reports: self.config.proxy.as_ref().map(|p| p.reports()),
            logs: logs.cloned(),
        };
        let result = grpc_session(channel, &ctx).await;
        renewal.abort();
        let end = result?;
        Ok(Attempt::Ended {
            welcomed: end.was_welcomed(),
            reason: end.reason,
        })
    }
}

/// Runs [`run_session`] over the `Session` call on `channel`.
pub async fn grpc_session(
    channel: Channel,
    ctx: &SessionContext,
) -> Result<crate::session::SessionEnd, AgentError> {
    let (outgoing, requests) = mpsc::channel::<AgentMessage>(256);
    let mut client = AgentServiceClient::new(channel);
    // The call is made lazily by the first poll of `incoming`, after run_session has queued
    // Hello: a server that waits for Hello before answering the call cannot deadlock it.
    let call = async move { client.session(ReceiverStream::new(requests)).await };
    let incoming = futures_util::stream::once(call).flat_map(|result| match result {
        Ok(response) => response
            .into_inner()
            .map(|item| item.map_err(StatusText))
            .left_stream(),
        Err(status) => {
            futures_util::stream::once(async move { Err::<ServerMessage, _>(StatusText(status)) })
                .right_stream()
        }
    });
    run_session(incoming, outgoing, ctx).await
}

/// A gRPC status shown as `<code>: <message>`, the message verbatim.
struct StatusText(tonic::Status);

impl std::fmt::Display for StatusText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.0.code(), self.0.message())?;
        if let Some(source) = std::error::Error::source(&self.0) {
            write!(f, " ({})", error_chain(source))?;
        }
        Ok(())
    }
}

/// Sleeps until `renew_at`, renews (retrying every few minutes on failure), then ends the
/// session so the agent reconnects with the new certificate.
async fn renew_when_due(
    renew_at: i64,
    channel: Channel,
    state: StateDir,
    session: CancellationToken,
) {
    let wait = u64::try_from(renew_at.saturating_sub(unix_now())).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    loop {
        match renew(channel.clone(), &state).await {
            Ok(not_after) => {
                tracing::info!(not_after, "certificate renewed");
                session.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "certificate renewal failed; retrying");
                tokio::time::sleep(RENEWAL_RETRY).await;
            }
        }
    }
}

/// Whether retrying cannot help.
fn is_fatal(e: &AgentError) -> bool {
    matches!(
        e,
        AgentError::State(_)
            | AgentError::Tls(_)
            | AgentError::Endpoint(_)
            | AgentError::ProtocolMismatch { .. }
    )
}

fn unix_now() -> i64 {
    crate::session::now_unix_ms() / 1000
}

/// Aborts a background task when the agent stops running.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
