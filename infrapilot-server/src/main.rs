//! `infrapilot-server`: starts tracing, loads the configuration, opens the store, serves the
//! API until SIGINT/SIGTERM, then drains in-flight requests.

use anyhow::Context as _;
use infrapilot_core::identity::PasswordParams;
use infrapilot_server::ca::InstanceCa;
use infrapilot_server::config::Config;
use infrapilot_server::keys::Keys;
use infrapilot_server::store::Store;
use infrapilot_server::{AppState, app};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if config.json_logs {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let keys = Keys::load(&config.secret)?;
    let store = Store::connect(&config.database).await?;
    let mut tx = store.global().await?;
    if !tx.setup_completed().await? {
        tracing::warn!(
            setup_code = keys.setup_code(),
            "first start: finish setup with POST /api/v1/setup and this setup code"
        );
    }
    tx.commit().await?;
    let ca = InstanceCa::load_or_create(&store, &keys).await?;
    tracing::info!(fingerprint = %ca.fingerprint(), "instance CA");
    let state = AppState::new(config.clone(), store, keys, ca, PasswordParams::OWASP)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    tracing::info!(
        address = %config.bind,
        edition = ?config.edition,
        database = if config.database.url.starts_with("sqlite") { "sqlite" } else { "postgres" },
        "InfraPilot server listening; API docs at /api/docs"
    );
    let agent_listener = tokio::net::TcpListener::bind(config.agent_bind)
        .await
        .with_context(|| format!("binding the agent endpoint {}", config.agent_bind))?;
    tracing::info!(address = %config.agent_bind, url = %config.agent_url, "agent endpoint listening (gRPC, TLS 1.3)");
    let docker_socket = std::path::PathBuf::from(
        std::env::var("INFRAPILOT_DOCKER_SOCKET")
            .unwrap_or_else(|_| "/var/run/docker.sock".to_owned()),
    );
    if config.edition == infrapilot_server::config::Edition::Community && docker_socket.exists() {
        tracing::info!(socket = %docker_socket.display(), "Docker found: running the built-in agent");
        let proxy =
            infrapilot_server::agents::builtin::builtin_nginx(&config.data_dir, &docker_socket)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        let logs = infrapilot_server::agents::builtin::host_logs(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tokio::spawn(infrapilot_server::agents::builtin::run_with(
            state.clone(),
            docker_socket,
            infrapilot_server::agents::builtin::BuiltinOptions { proxy, logs },
        ));
    }
    if state.store().backend() == infrapilot_server::store::Backend::Postgres {
        tokio::spawn(infrapilot_server::agents::listen_for_relays(state.clone()));
    }
    tokio::spawn(infrapilot_server::logs::run_retention(state.clone()));
    tokio::spawn(infrapilot_server::alerts::engine::run(state.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let agents = tokio::spawn(infrapilot_server::agents::serve(
        state.clone(),
        agent_listener,
        {
            let mut stop = stop_rx.clone();
            async move {
                let _ = stop.changed().await;
            }
        },
    ));
    let limits = config.connections;
    infrapilot_server::serve::serve_api(listener, app(state), limits, async move {
        shutdown().await;
        let _ = stop_tx.send(true);
    })
    .await;
    match agents.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "agent endpoint failed"),
        Err(e) => tracing::error!(error = %e, "agent endpoint task failed"),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
