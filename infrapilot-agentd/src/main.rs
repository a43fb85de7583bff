//! `infrapilot-agentd`: the InfraPilot agent daemon.
//!
//! `enroll` trades an enrollment token for a certificate, `run` keeps the session with the
//! control plane, `status` prints the local state. Everything else is in
//! `infrapilot-agent-lib`; this file only parses arguments, sets up logging, and waits for
//! signals.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use infrapilot_agent_lib::config::{DEFAULT_NGINX_BINARY, LogFormat, Settings};
use infrapilot_agent_lib::nginx::ProxySetup;
use infrapilot_agent_lib::probe::{DEFAULT_DOCKER_SOCKET, connect_docker};
use infrapilot_agent_lib::renew::Validity;
use infrapilot_agent_lib::state::DEFAULT_STATE_DIR;
use infrapilot_agent_lib::{
    Agent, AgentConfig, AgentEndpoint, CancellationToken, EnrollmentToken, StateDir, StopReason,
    enroll,
};

/// The InfraPilot agent: connects this host to an InfraPilot control plane.
#[derive(Debug, Parser)]
#[command(name = "infrapilot-agentd", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll this host with an enrollment token from the control plane.
    Enroll {
        /// The control plane's agent endpoint, https://host:port.
        #[arg(long, value_parser = parse_endpoint)]
        endpoint: AgentEndpoint,
        /// The enrollment token (IPT1.…).
        #[arg(long, env = "INFRAPILOT_ENROLL_TOKEN", hide_env_values = true, value_parser = parse_token)]
        token: EnrollmentToken,
        /// A label for this agent, key=value; may be repeated.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// The state directory.
        #[arg(long, env = "INFRAPILOT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Run the agent until SIGTERM or SIGINT.
    Run {
        /// The state directory.
        #[arg(long, env = "INFRAPILOT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Print the agent's identity and certificate from the local state.
    Status {
        /// The state directory.
        #[arg(long, env = "INFRAPILOT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
}

fn parse_endpoint(s: &str) -> Result<AgentEndpoint, String> {
    AgentEndpoint::parse(s).map_err(|e| e.to_string())
}

fn parse_token(s: &str) -> Result<EnrollmentToken, String> {
    EnrollmentToken::parse(s).map_err(|e| e.to_string())
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("a label is key=value, got {s:?}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Enroll {
            endpoint,
            token,
            labels,
            state_dir,
        } => {
            init_tracing(LogFormat::Text);
            let labels: BTreeMap<String, String> = labels.into_iter().collect();
            let outcome = enroll(&endpoint, &token, &labels, &StateDir::new(&state_dir)).await?;
            println!(
                "enrolled: agent {} in organization {}; state in {}",
                outcome.agent_id,
                outcome.organization_id,
                state_dir.display()
            );
            Ok(())
        }
        Command::Run { state_dir } => {
            let settings = Settings::load(&state_dir, std::env::vars())?;
            init_tracing(settings.log_format);
            let mut config = AgentConfig::new(&state_dir);
            config.endpoint_override = settings.endpoint.clone();
            config.heartbeat_override = settings.heartbeat;
            if let Some(socket) = &settings.docker_socket {
                config.docker_socket = Some(socket.clone());
            }
            let docker_socket = config
                .docker_socket
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DOCKER_SOCKET));
            let docker = connect_docker(&docker_socket).await;
            match settings.nginx_placement() {
                Some(placement) => {
                    let described = placement.to_string();
                    let root = state_dir.join("nginx");
                    let proxy = ProxySetup {
                        nginx_root: root.clone(),
                        placement,
                        ports: settings.nginx_ports,
                        state_file: state_dir.join("desired-state.json"),
                        acme_dir: state_dir.join("acme"),
                        acme_ca_root: settings.acme_ca_root.clone(),
                        docker,
                        log_rotation: settings.logs.nginx_rotate_bytes(),
                    }
                    .build()
                    .with_context(|| format!("setting up nginx under {}", root.display()))?;
                    tracing::info!(
                        http = settings.nginx_ports.0,
                        https = settings.nginx_ports.1,
                        "driving {described}"
                    );
                    config.proxy = Some(std::sync::Arc::new(proxy));
                }
                None => tracing::info!(
                    "no nginx at {DEFAULT_NGINX_BINARY} and none configured (INFRAPILOT_NGINX, INFRAPILOT_NGINX_BINARY): proxy hosts stay pending on this agent"
                ),
            }
            config.logs = settings.logs.config(state_dir.join("logs"));
            match &config.logs {
                Some(logs) => {
                    tracing::info!(selection = %logs.selection, buffer_mib = settings.logs.buffer_mb, "collecting container logs")
                }
                None => tracing::info!("log collection is off (INFRAPILOT_LOGS=off)"),
            }
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            match Agent::new(config).run(shutdown).await? {
                StopReason::Shutdown => Ok(()),
                StopReason::Goodbye { reason } => {
                    anyhow::bail!("the server ended this agent's session for good: {reason}")
                }
            }
        }
        Command::Status { state_dir } => status(&StateDir::new(state_dir)),
    }
}

fn status(state: &StateDir) -> anyhow::Result<()> {
    let record = state.read_record()?;
    let cert = state
        .read_cert_chain()?
        .into_iter()
        .next()
        .context("cert.pem holds no certificate")?;
    let validity = Validity::of_der(&cert)?;
    println!("agent id:          {}", record.agent_id);
    println!("organization:      {}", record.organization_id);
    println!("endpoint:          {}", record.endpoint);
    println!(
        "certificate:       valid until {} (unix {}), renewal due at unix {}",
        rfc3339(validity.not_after),
        validity.not_after,
        validity.renew_at()
    );
    println!("heartbeat:         {} s", record.heartbeat_interval_secs);
    println!("applied revision:  {}", state.applied_revision()?);
    Ok(())
}

/// A unix time as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT; the agent then finishes the replies in flight
/// and closes its stream.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the agent");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
    }
    shutdown.cancel();
}
