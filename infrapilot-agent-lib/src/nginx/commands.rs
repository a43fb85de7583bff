//! The desired-state command: persist, apply through the [`NginxController`], report; and the
//! agent's own Let's Encrypt work, which re-applies the persisted state when a certificate
//! is issued or renewed — with or without the control plane.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt as _;
use infrapilot_core::acme::{Due, managed_certificates};
use infrapilot_core::desired::{
    ApplyReport, DesiredState, HostState, HostStatus, ManagedCertificateStatus,
};
use infrapilot_core::nginx::upstreams::container_upstreams;
use infrapilot_core::nginx::{SslMode, render_site};
use infrapilot_proto::v1::command::Kind;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::acme::AcmeManager;
use super::{NginxController, write_atomic};
use crate::command::{CommandError, CommandHandler, ErrorCode, HandlerFuture, Replies};
use crate::logs::{NginxLogs, ReopenLogs};

/// The longest the certificate loop sleeps between checks.
const ACME_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Answers `ApplyDesiredState`: writes the state to `state_file` first (so it survives a
/// restart and keeps being applied with the server away), then applies it. Other commands
/// are [`ErrorCode::Unsupported`], so this chains after the other handlers. A state older than
/// the persisted one is refused with [`ErrorCode::Conflict`] (two pushes crossed).
///
/// With an [`AcmeManager`] ([`with_acme`](Self::with_acme)), [`run_acme`](Self::run_acme)
/// obtains and renews the certificates of `lets_encrypt` hosts. Every apply's report, whoever
/// caused it, is published on [`reports`](Self::reports) so the session can tell the server.
#[derive(Debug)]
pub struct ProxyCommands {
    controller: NginxController,
    state_file: PathBuf,
    /// One apply at a time, so the revision check and the write go together.
    applying: tokio::sync::Mutex<()>,
    acme: Option<AcmeManager>,
    /// Wakes the certificate loop after an apply (a new host may need a certificate).
    wake: Notify,
    reports: watch::Sender<Option<Arc<ApplyReport>>>,
    /// The size past which nginx's log files are rotated.
    log_rotation: Option<u64>,
}

impl ProxyCommands {
    /// Applies through `controller`, persisting to `state_file` (the state directory's
    /// `desired-state.json`, whose `revision` the agent reports when it connects).
    pub fn new(controller: NginxController, state_file: PathBuf) -> Self {
        Self {
            controller,
            state_file,
            applying: tokio::sync::Mutex::new(()),
            acme: None,
            wake: Notify::new(),
            reports: watch::channel(None).0,
            log_rotation: Some(super::DEFAULT_LOG_ROTATION),
        }
    }

    /// Rotates nginx's log files past `bytes` (`None`: never; the default is
    /// [`DEFAULT_LOG_ROTATION`](super::DEFAULT_LOG_ROTATION)).
    #[must_use]
    pub fn with_log_rotation(mut self, bytes: Option<u64>) -> Self {
        self.log_rotation = bytes;
        self
    }

    /// Obtains the certificates of `lets_encrypt` hosts with `acme` (see
    /// [`run_acme`](Self::run_acme)).
    #[must_use]
    pub fn with_acme(mut self, acme: AcmeManager) -> Self {
        self.acme = Some(acme);
        self
    }

    /// The directory nginx writes its access and error logs to.
    pub fn log_dir(&self) -> PathBuf {
        PathBuf::from(self.controller.layout().log_dir.as_str())
    }

    /// nginx's logs as the log collector tails and rotates them.
    pub fn nginx_logs(self: &Arc<Self>) -> NginxLogs {
        NginxLogs {
            dir: self.log_dir(),
            rotate_bytes: self.log_rotation,
            reopen: self.clone(),
        }
    }

    /// The certificate store, when Let's Encrypt is set up.
    pub fn acme(&self) -> Option<&AcmeManager> {
        self.acme.as_ref()
    }

    /// The latest apply report (`None` before the first apply); changes on every apply.
    pub fn reports(&self) -> watch::Receiver<Option<Arc<ApplyReport>>> {
        self.reports.subscribe()
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
        let _guard = self.applying.lock().await;
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

    /// Applies `state` (the caller holds `applying`), with the Let's Encrypt certificates the
    /// agent holds beside the uploaded ones, and publishes the report. Once it is applied,
    /// the certificates, keys and htpasswd files it no longer needs are removed (the
    /// controller's [`apply_with_certificates`](NginxController::apply_with_certificates)),
    /// and so are the Let's Encrypt certificates none of its hosts wants (the account stays);
    /// a failed apply removes nothing.
    async fn apply_only(&self, state: &DesiredState) -> ApplyReport {
        let now = unix_now();
        let managed = managed_certificates(&state.proxy);
        let mut files = state.certificates.clone();
        let mut statuses = Vec::new();
        for wanted in &managed {
            let record = match &self.acme {
                Some(acme) => {
                    let record = acme.record(wanted.id).await.unwrap_or_default();
                    if let Some(f) = acme.files(wanted.id, &record, now).await {
                        files.push(f);
                    }
                    record
                }
                None => Default::default(),
            };
            statuses.push(ManagedCertificateStatus {
                id: wanted.id,
                domains: wanted.domains.clone(),
                record,
            });
        }
        let applied = self
            .controller
            .apply_with_certificates(&state.proxy, &files)
            .await;
        let mut report = match applied {
            Ok(mut report) => {
                report.revision = state.revision;
                if let Some(acme) = &self.acme {
                    let wanted: BTreeSet<_> = managed.iter().map(|m| m.id).collect();
                    acme.remove_unwanted(&wanted).await;
                }
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
                    certificates: Vec::new(),
                    networks: Vec::new(),
                    layout: None,
                }
            }
        };
        self.explain_waiting_hosts(state, &statuses, now, &mut report);
        report.certificates = statuses;
        report.layout = Some(self.controller.layout().clone());
        self.reports.send_replace(Some(Arc::new(report.clone())));
        self.wake.notify_one();
        report
    }

    /// A `lets_encrypt` host quarantined because its certificate is not there yet says so
    /// (and why the last attempt failed) instead of naming a missing file.
    fn explain_waiting_hosts(
        &self,
        state: &DesiredState,
        statuses: &[ManagedCertificateStatus],
        now: i64,
        report: &mut ApplyReport,
    ) {
        let certificate_of = |id| {
            let proxies = state.proxy.proxy_hosts.iter().map(|h| (h.id, &h.ssl));
            let redirections = state.proxy.redirection_hosts.iter().map(|h| (h.id, &h.ssl));
            proxies
                .chain(redirections)
                .find(|(host, _)| *host == id)
                .and_then(|(_, ssl)| match ssl {
                    SslMode::LetsEncrypt(tls) => Some(tls.certificate),
                    _ => None,
                })
        };
        for host in &mut report.hosts {
            if host.state != HostState::Quarantined {
                continue;
            }
            let Some(cert) = certificate_of(host.id) else {
                continue;
            };
            let Some(status) = statuses.iter().find(|s| s.id == cert) else {
                continue;
            };
            if status.record.has_certificate(now) {
                continue;
            }
            let mut message = if self.acme.is_none() || state.acme.is_none() {
                "waiting for its Let's Encrypt certificate: Let's Encrypt is not set up for this agent".to_owned()
            } else {
                "waiting for its Let's Encrypt certificate".to_owned()
            };
            if let Some(error) = &status.record.last_error {
                message.push_str(&format!(" (the last attempt failed: {error})"));
            }
            host.error = Some(message);
        }
    }

    /// One pass of the certificate loop at `now`: obtains every certificate that is due (none
    /// stored, other names, within 30 days of expiry, and not backing off after a failure),
    /// then re-applies the persisted state if any was issued. Returns that apply's report
    /// (`None`: nothing was issued) and when the next pass is due.
    pub async fn acme_pass(&self, now: i64) -> (Option<ApplyReport>, Option<i64>) {
        let Some(acme) = &self.acme else {
            return (None, None);
        };
        let Some(state) = self.persisted().await else {
            return (None, None);
        };
        let Some(settings) = &state.acme else {
            return (None, None);
        };
        let mut next: Option<i64> = None;
        let mut issued = false;
        for wanted in managed_certificates(&state.proxy) {
            let record = acme.record(wanted.id).await;
            let wait = match infrapilot_core::acme::due(&wanted, record.as_ref(), now) {
                Due::Issue | Due::Renew => {
                    let record = acme.obtain(settings, &wanted, now).await;
                    if record.failures == 0 {
                        issued = true;
                    }
                    match infrapilot_core::acme::due(&wanted, Some(&record), now) {
                        Due::Wait(at) => at,
                        Due::Issue | Due::Renew => now + 60,
                    }
                }
                Due::Wait(at) => at,
            };
            next = Some(next.map_or(wait, |n| n.min(wait)));
        }
        if !issued {
            return (None, next);
        }
        let _guard = self.applying.lock().await;
        // The server may have pushed a newer state meanwhile: apply what is persisted now.
        let Some(state) = self.persisted().await else {
            return (None, next);
        };
        (Some(self.apply_only(&state).await), next)
    }

    /// What the proxy does on its own until `shutdown`: Let's Encrypt
    /// ([`run_acme`](Self::run_acme)) and following containers
    /// ([`watch_containers`](Self::watch_containers)).
    pub async fn run_background(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::join!(
            self.clone().run_acme(shutdown.clone()),
            self.watch_containers(shutdown)
        );
    }

    /// Re-applies the persisted state when a container a host forwards to starts (its address
    /// may have changed) or when nginx's own container is removed (it is created again), until
    /// `shutdown`. Needs Docker; reconnects to the engine's event stream when it breaks.
    pub async fn watch_containers(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(docker) = self.controller.docker().cloned() else {
            return;
        };
        let nginx = self.controller.runner().container_name().map(str::to_owned);
        loop {
            let filters = HashMap::from([
                ("type".to_owned(), vec!["container".to_owned()]),
                (
                    "event".to_owned(),
                    vec!["start".to_owned(), "destroy".to_owned()],
                ),
            ]);
            let mut events = docker.events(Some(EventsOptions {
                since: None,
                until: None,
                filters: Some(filters),
            }));
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => return,
                    event = events.next() => event,
                };
                let Some(Ok(event)) = event else { break };
                let action = event.action.unwrap_or_default();
                let Some(name) = event
                    .actor
                    .and_then(|a| a.attributes)
                    .and_then(|mut a| a.remove("name"))
                else {
                    continue;
                };
                let ours = nginx.as_deref() == Some(name.as_str()) && action == "destroy";
                let upstream = action == "start" && self.forwards_to(&name).await;
                if ours || upstream {
                    tracing::info!(container = %name, %action, "a container the proxy depends on changed: re-applying");
                    self.restore().await;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    /// Whether a host of the persisted state forwards to the container `name`.
    async fn forwards_to(&self, name: &str) -> bool {
        let Some(state) = self.persisted().await else {
            return false;
        };
        container_upstreams(&state.proxy)
            .keys()
            .any(|c| c.as_str() == name)
    }

    /// Obtains and renews certificates until `shutdown`: a pass after every apply, when the
    /// next certificate falls due or a retry is allowed, and at least hourly. Runs from the
    /// agent's own state, so renewals happen while the control plane is away.
    pub async fn run_acme(self: Arc<Self>, shutdown: CancellationToken) {
        if self.acme.is_none() {
            return;
        }
        loop {
            let now = unix_now();
            let (_, next) = self.acme_pass(now).await;
            let wait = next
                .map(|at| Duration::from_secs(u64::try_from(at - now).unwrap_or(0).max(1)))
                .unwrap_or(ACME_CHECK_INTERVAL)
                .min(ACME_CHECK_INTERVAL);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl ReopenLogs for ProxyCommands {
    fn reopen_logs(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let controller = &self.controller;
            match controller.runner().reopen_logs(controller.layout()).await {
                Ok(out) if out.success => Ok(()),
                Ok(out) => Err(format!("nginx -s reopen failed: {}", out.output.trim())),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

impl CommandHandler for ProxyCommands {
    fn handle<'a>(&'a self, kind: &'a Kind, _replies: &'a Replies) -> HandlerFuture<'a> {
        Box::pin(async move {
            let apply = match kind {
                Kind::ApplyDesired(apply) => apply,
                Kind::CheckHost(check) => {
                    let check: infrapilot_core::desired::HostCheck =
                        serde_json::from_slice(&check.check_json).map_err(|e| {
                            CommandError::new(
                                ErrorCode::Invalid,
                                format!("the check is not what this agent understands: {e}"),
                            )
                        })?;
                    let result = super::check_host(self.controller.layout(), &check).await;
                    return serde_json::to_vec(&result)
                        .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()));
                }
                other => return Err(CommandError::unsupported(crate::command::kind_name(other))),
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
