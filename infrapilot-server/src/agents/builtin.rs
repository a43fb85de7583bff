//! The community edition's built-in agent: when the Docker socket is present, the server
//! runs the agent library in-process — the same session code as `infrapilot-agentd`, over
//! channels instead of gRPC over mTLS — registered automatically in the single organization,
//! with no token and no TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use infrapilot_agent_lib::command::{AgentInfo, BuiltinCommands, Chain, CommandHandler};
use infrapilot_agent_lib::config::Settings;
use infrapilot_agent_lib::logs::{Collectors, LogPipeline};
use infrapilot_agent_lib::nginx::{NginxPlacement, ProxyCommands, ProxySetup};
use infrapilot_agent_lib::probe::connect_docker;
use infrapilot_agent_lib::{DockerCommands, HostProbe, SessionContext, run_session};
use infrapilot_core::ids::{AgentId, OrgId};
use infrapilot_core::rbac::{Effective, OrgRole};
use infrapilot_core::values::Labels;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::identity::AgentIdentity;
use super::service::serve_session;
use crate::AppState;
use crate::store::{Actor, AgentRecord, OrgScope, StoreError};
use crate::util::{new_id, now_micros};

/// The marker in `enrollment_token` that identifies the built-in agent.
const BUILTIN: &str = "builtin";

/// Runs the built-in agent for as long as the server runs: waits for first-run setup, makes
/// sure the agent exists, and keeps an in-process session open.
pub async fn run(state: AppState, docker_socket: PathBuf) {
    run_with_proxy(state, docker_socket, None).await;
}

/// [`run`], with `proxy` applying the agent's proxy hosts to nginx (the host's nginx in the
/// community edition). The last persisted desired state is applied again first, so nginx
/// serves the last known hosts before the server is even up.
pub async fn run_with_proxy(
    state: AppState,
    docker_socket: PathBuf,
    proxy: Option<Arc<ProxyCommands>>,
) {
    run_with(state, docker_socket, BuiltinOptions { proxy, logs: None }).await;
}

/// What the built-in agent does besides Docker commands.
#[derive(Debug, Default, Clone)]
pub struct BuiltinOptions {
    /// The proxy it drives, if any.
    pub proxy: Option<Arc<ProxyCommands>>,
    /// The log buffer its collectors fill and its session ships from, if any.
    pub logs: Option<LogPipeline>,
}

/// [`run`] with `options`: the proxy's last state is applied and its certificates renewed,
/// and logs are collected, from the start, before the agent is even registered.
pub async fn run_with(state: AppState, docker_socket: PathBuf, options: BuiltinOptions) {
    if let Some(proxy) = &options.proxy {
        proxy.restore().await;
        // Certificates are obtained and renewed, and upstream containers followed, from the
        // agent's own state, server or not.
        tokio::spawn(
            proxy
                .clone()
                .run_background(tokio_util::sync::CancellationToken::new()),
        );
    }
    let id = loop {
        match ensure_agent(&state).await {
            Ok(Some(id)) => break id,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "registering the built-in agent failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    tracing::info!(agent = %id.agent, "built-in agent registered");
    serve_with(state, id.org, id.agent, docker_socket, options).await;
}

/// Runs the agent library's session in-process for the existing agent `agent` of `org`, with
/// the Docker engine at `docker_socket`, for as long as the server runs (reconnecting after
/// two seconds when a session ends). The built-in agent is this; tests use it to bring an
/// agent of any organization online with a real Docker handler.
pub async fn serve(state: AppState, org: OrgId, agent: AgentId, docker_socket: PathBuf) {
    serve_with_proxy(state, org, agent, docker_socket, None).await;
}

/// [`serve`], with `proxy` answering the desired-state commands.
pub async fn serve_with_proxy(
    state: AppState,
    org: OrgId,
    agent: AgentId,
    docker_socket: PathBuf,
    proxy: Option<Arc<ProxyCommands>>,
) {
    let options = BuiltinOptions { proxy, logs: None };
    serve_with(state, org, agent, docker_socket, options).await;
}

/// [`serve`] with `options`: a proxy answering the desired-state commands, and logs
/// collected from the Docker engine and shipped over the session.
pub async fn serve_with(
    state: AppState,
    org: OrgId,
    agent: AgentId,
    docker_socket: PathBuf,
    options: BuiltinOptions,
) {
    let BuiltinOptions { proxy, logs } = options;
    let id = AgentIdentity { agent, org };
    let probe = Arc::new(HostProbe::new("/", Some(docker_socket)));
    // Logs are collected whether or not the session is up; nginx's are rotated either way.
    let _collectors = Collectors::start(
        logs.as_ref(),
        Some(probe.clone()),
        proxy.as_ref().map(ProxyCommands::nginx_logs),
        tokio_util::sync::CancellationToken::new(),
    );
    let info = AgentInfo::of_this_host();
    let base = Chain {
        first: BuiltinCommands::new(info.clone(), probe.clone()),
        second: DockerCommands::new(probe.clone()),
    };
    let handler: Arc<dyn CommandHandler> = match &proxy {
        Some(proxy) => Arc::new(Chain {
            first: base,
            second: proxy.clone(),
        }),
        None => Arc::new(base),
    };
    loop {
        let (agent_tx, agent_rx) = mpsc::channel(256);
        let incoming = ReceiverStream::new(agent_rx).map(Ok::<_, Status>);
        // The server side waits for the agent's Hello before it hands out its stream, and the
        // agent sends Hello from inside its session: run them side by side, as over gRPC.
        let (ready_tx, ready_rx) = oneshot::channel();
        let server_state = state.clone();
        tokio::spawn(async move {
            let _ = ready_tx.send(serve_session(server_state, id, incoming).await);
        });
        let server_stream = futures_util::stream::once(ready_rx).flat_map(|ready| match ready {
            Ok(Ok(stream)) => stream.left_stream(),
            Ok(Err(status)) => futures_util::stream::iter([Err(status)]).right_stream(),
            Err(_) => {
                futures_util::stream::iter([Err(Status::unavailable("the server side ended"))])
                    .right_stream()
            }
        });
        let mut ctx = SessionContext::new(info.clone(), probe.clone(), handler.clone());
        ctx.logs = logs.clone();
        if let Some(proxy) = &proxy {
            ctx.applied_revision = proxy.persisted().await.map_or(0, |s| s.revision);
            ctx.reports = Some(proxy.reports());
        }
        match run_session(server_stream, agent_tx, &ctx).await {
            Ok(end) => tracing::debug!(?end, "built-in agent session ended"),
            Err(e) => tracing::warn!(error = %e, "built-in agent session failed"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The built-in agent's nginx, set as an agent's is (see `infrapilot_agent_lib::config`):
/// the host's nginx (`INFRAPILOT_NGINX_BINARY`, default `/usr/sbin/nginx`) or, with
/// `INFRAPILOT_NGINX=container`, nginx in a container the agent manages
/// (`INFRAPILOT_NGINX_CONTAINER`, `INFRAPILOT_NGINX_IMAGE`, `INFRAPILOT_NGINX_HOST_ROOT`); its
/// files under `<data_dir>/nginx`, serving on `INFRAPILOT_NGINX_HTTP_PORT` (80) and
/// `INFRAPILOT_NGINX_HTTPS_PORT` (443). `None` (and a log line saying why) when there is no
/// nginx; an error names a bad setting. Let's Encrypt certificates are kept under
/// `<data_dir>/nginx/acme`; `INFRAPILOT_ACME_CA_ROOT` names a PEM file to trust for the ACME
/// server's own TLS instead of the system's roots (a private ACME server). Container
/// upstreams are found through the Docker engine at `docker_socket`.
pub async fn builtin_nginx(
    data_dir: &Path,
    docker_socket: &Path,
) -> Result<Option<Arc<ProxyCommands>>, String> {
    let settings = Settings::load(data_dir, std::env::vars()).map_err(|e| e.to_string())?;
    let placement = match settings.nginx_placement() {
        Some(NginxPlacement::Host { binary }) if !binary.exists() => None,
        placement => placement,
    };
    let Some(placement) = placement else {
        tracing::info!(binary = ?settings.nginx_binary, "nginx not found: proxy hosts stay pending until an agent with nginx serves them");
        return Ok(None);
    };
    let root = data_dir.join("nginx");
    let (http, https) = settings.nginx_ports;
    tracing::info!(http, https, "the built-in agent manages {placement}");
    let proxy = ProxySetup {
        nginx_root: root.clone(),
        placement,
        ports: settings.nginx_ports,
        state_file: root.join("desired-state.json"),
        acme_dir: root.join("acme"),
        acme_ca_root: settings.acme_ca_root,
        docker: connect_docker(docker_socket).await,
        log_rotation: settings.logs.nginx_rotate_bytes(),
    }
    .build()
    .map_err(|e| {
        format!(
            "INFRAPILOT_DATA_DIR: nginx cannot use {}: {e}",
            root.display()
        )
    })?;
    Ok(Some(Arc::new(proxy)))
}

/// The built-in agent's log collection: every container's output (or `INFRAPILOT_LOGS`:
/// `all`, `label:KEY`, `label:KEY=VALUE`, `off`) buffered under `<data_dir>/agent-logs`, at
/// most `INFRAPILOT_LOG_BUFFER_MB` (256) MiB, dropping the oldest records when full (or
/// `INFRAPILOT_LOG_BUFFER_FULL=drop_newest`), nginx's log files rotated past
/// `INFRAPILOT_NGINX_LOG_MB` (64). `None` when turned off; an error names a bad setting.
pub fn host_logs(data_dir: &Path) -> Result<Option<LogPipeline>, String> {
    let settings = Settings::load(data_dir, std::env::vars()).map_err(|e| e.to_string())?;
    let Some(config) = settings.logs.config(data_dir.join("agent-logs")) else {
        return Ok(None);
    };
    LogPipeline::open(config)
        .map(Some)
        .map_err(|e| format!("INFRAPILOT_DATA_DIR: {e}"))
}

/// The built-in agent's identity, creating it in the single organization the first time;
/// `None` until setup created that organization.
async fn ensure_agent(state: &AppState) -> Result<Option<AgentIdentity>, StoreError> {
    let mut g = state.store().global_read().await?;
    let org: Option<OrgId> = g.list_orgs(None, 1).await?.first().map(|o| o.id);
    g.commit().await?;
    let Some(org) = org else { return Ok(None) };
    let scope = OrgScope::new(org, Actor::System, Effective::Org(OrgRole::Viewer));
    let mut tx = state.store().org(&scope).await?;
    let existing = tx
        .list_agents(None, 1000)
        .await?
        .into_iter()
        .find(|a| a.enrollment_token == BUILTIN);
    let agent = match existing {
        Some(agent) => agent.id,
        None => {
            let id = AgentId::from_uuid(new_id());
            let info = AgentInfo::of_this_host();
            tx.insert_agent(&AgentRecord {
                id,
                name: format!("{} (built-in)", info.hostname),
                labels: Labels::parse_pairs(["infrapilot.builtin=true"]).unwrap_or_default(),
                disabled: false,
                hostname: info.hostname.clone(),
                version: info.agent_version.clone(),
                key_fingerprint: format!("{BUILTIN}:{org}"),
                enrollment_token: BUILTIN.to_owned(),
                cert_not_after: 0,
                heartbeat: serde_json::json!({}),
                connected_replica: None,
                connected_at: None,
                last_seen_at: None,
                applied_revision: 0,
                created_at: now_micros(),
            })
            .await?;
            id
        }
    };
    tx.commit().await?;
    Ok(Some(AgentIdentity { agent, org }))
}
