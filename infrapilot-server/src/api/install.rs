//! The one-line installer: `GET /install.sh` (POSIX sh) and the agent binary this server was
//! built with (`GET /download/infrapilot-agentd`), so no CDN is involved:
//!
//! ```sh
//! curl -fsSL https://<server>/install.sh | INFRAPILOT_ENROLL_TOKEN=… sh
//! ```
//!
//! The script downloads the binary, checks its SHA-256 against the one baked into the script,
//! enrolls (the agent checks the server's CA against the token before it sends the secret),
//! and installs a systemd unit when systemd runs — or starts the agent in the background and
//! says so.

use std::path::PathBuf;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{AppError, Problem};

/// Routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(install_script))
        .routes(routes!(download_agent))
}

/// Where the agent binary is: `INFRAPILOT_AGENT_BINARY`, else beside the server's own binary.
fn agent_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("INFRAPILOT_AGENT_BINARY") {
        return Some(PathBuf::from(path));
    }
    std::env::current_exe()
        .ok()?
        .parent()
        .map(|dir| dir.join("infrapilot-agentd"))
}

async fn read_agent_binary() -> Result<Vec<u8>, AppError> {
    let path = agent_binary().ok_or(AppError::NotFound("agent binary"))?;
    tokio::fs::read(&path).await.map_err(|_| {
        AppError::Unavailable(format!(
            "this server has no agent binary at {}: build it with `cargo build --release -p \
             infrapilot-agentd` (it is looked for beside the server binary) or set INFRAPILOT_AGENT_BINARY",
            path.display()
        ))
    })
}

/// Single-quotes a value for sh (the values are URLs we validated, quoted anyway).
fn sh_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// The installer script.
#[utoipa::path(get, path = "/install.sh", tag = "agents", responses(
    (status = 200, content_type = "text/x-shellscript", body = String, description = "A POSIX sh installer"),
    (status = 503, body = Problem, content_type = "application/problem+json", description = "No agent binary to serve"),
))]
pub async fn install_script(State(state): State<AppState>) -> Result<impl IntoResponse, AppError> {
    let binary = read_agent_binary().await?;
    let sha256 = crate::util::sha256_hex(&binary);
    let script = SCRIPT
        .replace("@SERVER_URL@", &sh_quote(&state.config().public_url))
        .replace("@AGENT_URL@", &sh_quote(&state.config().agent_url))
        .replace("@ARCH@", std::env::consts::ARCH)
        .replace("@SHA256@", &sha256);
    Ok((
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        script,
    ))
}

/// Which binary to download.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// The machine architecture (`uname -m`); this server carries its own architecture's agent.
    pub arch: Option<String>,
}

/// The agent binary this server was built with.
#[utoipa::path(get, path = "/download/infrapilot-agentd", tag = "agents", params(DownloadQuery), responses(
    (status = 200, content_type = "application/octet-stream", body = Vec<u8>),
    (status = 404, body = Problem, content_type = "application/problem+json", description = "No agent for that architecture"),
    (status = 503, body = Problem, content_type = "application/problem+json", description = "No agent binary to serve"),
))]
pub async fn download_agent(Query(q): Query<DownloadQuery>) -> Result<impl IntoResponse, AppError> {
    let arch = std::env::consts::ARCH;
    if let Some(wanted) = &q.arch {
        let normalized = if wanted == "amd64" {
            "x86_64"
        } else if wanted == "arm64" {
            "aarch64"
        } else {
            wanted.as_str()
        };
        if normalized != arch {
            return Err(AppError::NotFound(
                "agent binary for this architecture (this server carries its own architecture's agent only)",
            ));
        }
    }
    let binary = read_agent_binary().await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"infrapilot-agentd\"",
            ),
        ],
        binary,
    ))
}

const SCRIPT: &str = r#"#!/bin/sh
# InfraPilot agent installer. Served by the InfraPilot server; review it before you run it.
#
#   curl -fsSL <server>/install.sh | INFRAPILOT_ENROLL_TOKEN=<token> sh
#
# Optional: INFRAPILOT_LABELS="env=production,team=web"  INFRAPILOT_PREFIX=/usr/local
#           INFRAPILOT_STATE_DIR=/var/lib/infrapilot-agent  INFRAPILOT_NO_START=1
set -eu

SERVER_URL=@SERVER_URL@
AGENT_URL=@AGENT_URL@
EXPECTED_ARCH='@ARCH@'
EXPECTED_SHA256='@SHA256@'
PREFIX="${INFRAPILOT_PREFIX:-/usr/local}"
STATE_DIR="${INFRAPILOT_STATE_DIR:-/var/lib/infrapilot-agent}"
BIN="$PREFIX/bin/infrapilot-agentd"

say() { printf 'infrapilot: %s\n' "$*"; }
fail() { printf 'infrapilot: error: %s\n' "$*" >&2; exit 1; }

[ -n "${INFRAPILOT_ENROLL_TOKEN:-}" ] || fail "set INFRAPILOT_ENROLL_TOKEN to an enrollment token (create one under Agents > Enrollment tokens)"

arch=$(uname -m)
case "$arch" in amd64) arch=x86_64 ;; arm64) arch=aarch64 ;; esac
[ "$arch" = "$EXPECTED_ARCH" ] || fail "this server carries the agent for $EXPECTED_ARCH, this host is $arch"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "downloading the agent from $SERVER_URL"
if command -v curl >/dev/null 2>&1; then
  curl -fsSL "$SERVER_URL/download/infrapilot-agentd?arch=$arch" -o "$tmp/infrapilot-agentd"
elif command -v wget >/dev/null 2>&1; then
  wget -q "$SERVER_URL/download/infrapilot-agentd?arch=$arch" -O "$tmp/infrapilot-agentd"
else
  fail "curl or wget is needed"
fi
if command -v sha256sum >/dev/null 2>&1; then
  actual=$(sha256sum "$tmp/infrapilot-agentd" | cut -d' ' -f1)
  [ "$actual" = "$EXPECTED_SHA256" ] || fail "the download's SHA-256 ($actual) is not the one this script expects"
else
  say "sha256sum not found: skipping the checksum check"
fi
mkdir -p "$PREFIX/bin"
install -m 0755 "$tmp/infrapilot-agentd" "$BIN"
say "installed $BIN"

set -- enroll --endpoint "$AGENT_URL" --token "$INFRAPILOT_ENROLL_TOKEN" --state-dir "$STATE_DIR"
if [ -n "${INFRAPILOT_LABELS:-}" ]; then
  old_ifs=$IFS; IFS=,
  for label in $INFRAPILOT_LABELS; do set -- "$@" --label "$label"; done
  IFS=$old_ifs
fi
"$BIN" "$@"
say "enrolled; state in $STATE_DIR"

if [ -n "${INFRAPILOT_NO_START:-}" ]; then
  say "not starting the agent (INFRAPILOT_NO_START is set); run: $BIN run --state-dir $STATE_DIR"
elif command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  cat > /etc/systemd/system/infrapilot-agent.service <<UNIT
[Unit]
Description=InfraPilot agent
After=network-online.target docker.service
Wants=network-online.target

[Service]
ExecStart=$BIN run --state-dir $STATE_DIR
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now infrapilot-agent.service
  say "installed and started the systemd unit infrapilot-agent.service (journalctl -u infrapilot-agent)"
else
  nohup "$BIN" run --state-dir "$STATE_DIR" >>"$STATE_DIR/agent.log" 2>&1 &
  say "no systemd here: started the agent in the background (pid $!), logging to $STATE_DIR/agent.log"
fi
"#;
