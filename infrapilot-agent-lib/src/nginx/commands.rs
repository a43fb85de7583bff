//! The desired-state command: persist, apply through the [`NginxController`], report.

use std::path::PathBuf;

use infrapilot_core::desired::{ApplyReport, DesiredState, HostState, HostStatus};
use infrapilot_core::nginx::render_site;
use infrapilot_proto::v1::command::Kind;

use super::{NginxController, write_atomic};
use crate::command::{CommandError, CommandHandler, ErrorCode, HandlerFuture, Replies};

/// Answers `ApplyDesiredState`: writes the state to `state_file` first (so it survives a
/// restart and keeps being applied with the server away), then applies it. Other commands
/// are [`ErrorCode::Unsupported`], so this chains after the other handlers. A state older than
/// the persisted one is refused with [`ErrorCode::Conflict`] (two pushes crossed).
#[derive(Debug)]
pub struct ProxyCommands {
    controller: NginxController,
    state_file: PathBuf,
    /// One apply at a time, so the revision check and the write go together.
    applying: tokio::sync::Mutex<()>,
}

impl ProxyCommands {
    /// Applies through `controller`, persisting to `state_file` (the state directory's
    /// `desired-state.json`, whose `revision` the agent reports when it connects).
    pub fn new(controller: NginxController, state_file: PathBuf) -> Self {
        Self {
            controller,
            state_file,
            applying: tokio::sync::Mutex::new(()),
        }
    }

    /// The persisted state, if any (an unreadable file counts as none, and says so).
    pub async fn persisted(&self) -> Option<DesiredState> {
        let bytes = tokio::fs::read(&self.state_file).await.ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(state) => Some(state),
            Err(e) => {
                tracing::warn!(file = %self.state_file.display(), error = %e, "ignoring an unreadable desired state");
                None
            }
        }
    }

    /// Applies the persisted state again (at start, before the server is reachable): nginx
    /// serves the last known configuration even after a host reboot with the server gone.
    pub async fn restore(&self) -> Option<ApplyReport> {
        let state = self.persisted().await?;
        let report = self.apply_only(&state).await;
        tracing::info!(revision = state.revision, error = ?report.error, "re-applied the last known desired state");
        Some(report)
    }

    /// Persists `state`, then applies it. A whole-apply failure is in the report's `error`
    /// (every host `failed`); the last good configuration keeps being served.
    pub async fn apply(&self, state: &DesiredState) -> Result<ApplyReport, CommandError> {
        let _guard = self.applying.lock().await;
        if let Some(current) = self.persisted().await
            && current.revision > state.revision
        {
            return Err(CommandError::new(
                ErrorCode::Conflict,
                format!(
                    "revision {} is older than the applied revision {}",
                    state.revision, current.revision
                ),
            ));
        }
        let json = serde_json::to_vec_pretty(state)
            .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?;
        write_atomic(&self.state_file, &json)
            .await
            .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?;
        Ok(self.apply_only(state).await)
    }

    async fn apply_only(&self, state: &DesiredState) -> ApplyReport {
        let written = self
            .controller
            .write_certificates(&state.certificates)
            .await;
        let applied = match written {
            Ok(changed) => self.controller.apply_reloading(&state.proxy, changed).await,
            Err(e) => Err(e),
        };
        match applied {
            Ok(mut report) => {
                report.revision = state.revision;
                report
            }
            Err(e) => {
                let hosts = render_site(&state.proxy, self.controller.layout())
                    .hosts
                    .iter()
                    .map(|h| HostStatus {
                        id: h.id,
                        kind: h.kind,
                        state: HostState::Failed,
                        error: Some(e.to_string()),
                    })
                    .collect();
                ApplyReport {
                    revision: state.revision,
                    hosts,
                    reloaded: false,
                    error: Some(e.to_string()),
                }
            }
        }
    }
}

impl CommandHandler for ProxyCommands {
    fn handle<'a>(&'a self, kind: &'a Kind, _replies: &'a Replies) -> HandlerFuture<'a> {
        Box::pin(async move {
            let Kind::ApplyDesired(apply) = kind else {
                return Err(CommandError::unsupported(crate::command::kind_name(kind)));
            };
            let state: DesiredState = serde_json::from_slice(&apply.state_json).map_err(|e| {
                CommandError::new(
                    ErrorCode::Invalid,
                    format!("the desired state is not what this agent understands: {e}"),
                )
            })?;
            let report = self.apply(&state).await?;
            serde_json::to_vec(&report)
                .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))
        })
    }
}
