//! The desired state of an agent's proxy: assembled from the organization's stored hosts,
//! default server, access lists and certificates at the agent's current revision, pushed to
//! the agent, and the agent's apply report recorded (its hosts' statuses, the certificates it
//! holds, its layout, an inventory event). The HTTP handlers push after a change; the agent
//! service pushes when an agent connects behind and records the reports it sends on its own.

use std::time::Duration;

use infrapilot_core::desired::{ApplyReport, CertificateFiles, DesiredState};
use infrapilot_core::ids::{AgentId, OrgId, ProxyHostId};
use infrapilot_core::nginx::{HostKind, ProxyHost, Site};
use infrapilot_proto::v1::ApplyDesiredState;
use infrapilot_proto::v1::command::Kind;

use crate::AppState;
use crate::agents::{CommandError, send_command};
use crate::store::OrgScope;

/// Whether a host document's TLS uses an uploaded certificate (`"mode": "custom"`).
pub(crate) fn kind_uses_uploaded(document: &serde_json::Value) -> bool {
    document["ssl"]["mode"] == "custom"
}

/// How long a push waits for the agent's apply report (past it the hosts stay `pending`).
const APPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Pushes the agent's state and records the report; an offline agent is left `pending` (it
/// gets the state when it connects). Never fails the caller: the change is stored.
pub async fn push(state: &AppState, org: OrgId, agent: AgentId) {
    match push_now(state, org, agent).await {
        Ok(_) | Err(CommandError::Offline) => {}
        Err(e) => tracing::warn!(%agent, error = %e, "pushing the desired state failed"),
    }
}

/// Pushes the agent's state if it runs an older revision than the server wants (called when
/// an agent connects).
pub async fn push_if_behind(state: AppState, org: OrgId, agent: AgentId, applied: u64) {
    let desired = async {
        let mut tx = state.store().org_read(&OrgScope::system(org)).await?;
        let revisions = tx.desired_revisions(agent).await?;
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>(revisions.0)
    }
    .await;
    match desired {
        Ok(desired) if u64::try_from(desired).unwrap_or(0) > applied => {
            push(&state, org, agent).await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(%agent, error = %e, "reading the desired revision failed"),
    }
}

/// Builds the agent's state at its current revision, sends it, and records the report.
pub(crate) async fn push_now(
    state: &AppState,
    org: OrgId,
    agent: AgentId,
) -> Result<(), CommandError> {
    let scope = OrgScope::system(org);
    let internal = |e: &dyn std::fmt::Display| CommandError::Agent {
        code: "internal".to_owned(),
        message: e.to_string(),
    };
    let (revision, hosts, default_server, shared) = async {
        let mut tx = state.store().org_read(&scope).await?;
        let (desired, _) = tx.desired_revisions(agent).await?;
        let hosts = tx.agent_proxy_hosts(agent).await?;
        let default_server = tx.agent_default_server(agent).await?;
        // The shared access lists the hosts name, put into each host below.
        let mut shared = std::collections::BTreeMap::new();
        for list in tx.list_access_lists().await? {
            shared.insert(list.id, list.list);
        }
        tx.commit().await?;
        Ok::<_, crate::store::StoreError>((desired, hosts, default_server, shared))
    }
    .await
    .map_err(|e| internal(&e))?;
    let mut site = Site {
        default_server: serde_json::from_str(&default_server).map_err(|e| internal(&e))?,
        ..Site::default()
    };
    for h in hosts.iter().filter(|h| h.enabled) {
        let parsed = match h.kind {
            HostKind::Proxy => {
                serde_json::from_value(h.document.clone()).map(|mut p: ProxyHost| {
                    // A list that is gone stays unresolved, and the host then denies everyone.
                    if p.access_list.is_none()
                        && let Some(list) = p.access_list_id.and_then(|id| shared.get(&id))
                    {
                        p.access_list = Some(list.clone());
                    }
                    site.proxy_hosts.push(p);
                })
            }
            HostKind::Redirection => {
                serde_json::from_value(h.document.clone()).map(|r| site.redirection_hosts.push(r))
            }
        };
        parsed.map_err(|e| internal(&e))?;
    }
    let mut certificates = Vec::new();
    let wanted: std::collections::BTreeSet<_> = hosts
        .iter()
        .filter(|h| h.enabled && kind_uses_uploaded(&h.document))
        .filter_map(|h| h.document["ssl"]["certificate"].as_str())
        .filter_map(|c| c.parse::<infrapilot_core::ids::CertificateId>().ok())
        .collect();
    for id in wanted {
        let record = async {
            let mut tx = state.store().org_read(&scope).await?;
            let record = tx.certificate(id).await?;
            tx.commit().await?;
            Ok::<_, crate::store::StoreError>(record)
        }
        .await
        .map_err(|e| internal(&e))?;
        let key = state
            .keys()
            .unseal(&record.key_sealed)
            .map_err(|e| internal(&e))?;
        certificates.push(CertificateFiles {
            id,
            fullchain: record.fullchain,
            privkey: String::from_utf8_lossy(&key).into_owned(),
        });
    }
    let desired = DesiredState {
        revision: u64::try_from(revision).unwrap_or(0),
        proxy: site,
        certificates,
        acme: Some(state.config().acme.clone()),
    };
    let state_json = serde_json::to_vec(&desired).map_err(|e| internal(&e))?;
    let sent = send_command(
        state,
        org,
        agent,
        Kind::ApplyDesired(ApplyDesiredState { state_json }),
        APPLY_TIMEOUT,
    )
    .await;
    let report: ApplyReport = match sent {
        Ok(payload) => serde_json::from_slice(&payload).map_err(|e| internal(&e))?,
        Err(CommandError::Agent { code, message }) if code == "conflict" => {
            // The agent already runs a newer revision.
            tracing::debug!(%agent, %message, "agent has a newer desired state");
            return Ok(());
        }
        Err(CommandError::Agent { code, message }) => {
            // The agent cannot apply at all (no nginx, an older agent): say so on each host.
            let text = format!("the agent could not apply the configuration ({code}): {message}");
            let statuses: Vec<_> = hosts
                .iter()
                .filter(|h| h.enabled)
                .map(|h| (h.id, "failed", Some(text.as_str())))
                .collect();
            record_statuses(state, &scope, revision, &statuses)
                .await
                .map_err(|e| internal(&e))?;
            return Err(CommandError::Agent { code, message });
        }
        Err(e) => return Err(e),
    };
    store_report(state, &scope, agent, &report)
        .await
        .map_err(|e| internal(&e))
}

/// Records a report the agent sent on its own (a certificate issued or renewed, the state
/// restored at its start): the hosts' statuses and the Let's Encrypt certificates it holds.
pub async fn record_report(state: &AppState, org: OrgId, agent: AgentId, report: &ApplyReport) {
    if let Err(e) = store_report(state, &OrgScope::system(org), agent, report).await {
        tracing::warn!(%agent, error = %e, "recording the agent's apply report failed");
    }
}

/// Stores an apply report: the applied revision, each host's status, the certificates.
async fn store_report(
    state: &AppState,
    scope: &OrgScope,
    agent: AgentId,
    report: &ApplyReport,
) -> Result<(), crate::store::StoreError> {
    let statuses: Vec<_> = report
        .hosts
        .iter()
        .map(|h| (h.id, h.state.as_str(), h.error.as_deref()))
        .collect();
    let revision = i64::try_from(report.revision).unwrap_or(i64::MAX);
    let certificates = serde_json::to_string(&report.certificates).unwrap_or_else(|_| "[]".into());
    let networks = serde_json::to_string(&report.networks).unwrap_or_else(|_| "[]".into());
    let layout = report
        .layout
        .as_ref()
        .and_then(|l| serde_json::to_string(l).ok());
    let mut tx = state.store().org(scope).await?;
    tx.record_apply(agent, revision, &statuses).await?;
    if let Some(layout) = &layout {
        tx.set_agent_layout(agent, layout).await?;
    }
    tx.set_agent_certificates(agent, &certificates).await?;
    tx.set_agent_upstream_networks(agent, &networks).await?;
    if let Some(event) = apply_event(agent, report) {
        crate::logs::record_event_in(&mut tx, event).await?;
    }
    tx.commit().await
}

/// The inventory's event for an apply that changed something or went wrong; `None` for an
/// apply that found nothing to do (as after every reconnect).
fn apply_event(agent: AgentId, report: &ApplyReport) -> Option<crate::logs::ServerEvent> {
    use infrapilot_core::desired::HostState;
    use infrapilot_core::events::{EventKind, Severity};
    let count = |state: HostState| report.hosts.iter().filter(|h| h.state == state).count();
    let (applied, quarantined, failed) = (
        count(HostState::Applied),
        count(HostState::Quarantined),
        count(HostState::Failed),
    );
    if !report.reloaded && report.error.is_none() && quarantined == 0 && failed == 0 {
        return None;
    }
    let severity = if report.error.is_some() || failed > 0 {
        Severity::Error
    } else if quarantined > 0 {
        Severity::Warning
    } else {
        Severity::Info
    };
    let summary = match &report.error {
        Some(error) => format!(
            "proxy revision {} failed to apply: {error}",
            report.revision
        ),
        None => format!(
            "proxy revision {} applied: {applied} hosts live, {quarantined} quarantined, {failed} failed",
            report.revision
        ),
    };
    let problems: Vec<_> = report
        .hosts
        .iter()
        .filter(|h| h.state != HostState::Applied)
        .map(|h| serde_json::json!({"host_id": h.id, "state": h.state.as_str(), "error": h.error}))
        .collect();
    Some(crate::logs::ServerEvent {
        kind: EventKind::ProxyApply,
        severity,
        agent: Some(agent),
        summary,
        details: serde_json::json!({
            "revision": report.revision, "reloaded": report.reloaded, "error": report.error,
            "applied": applied, "quarantined": quarantined, "failed": failed, "hosts": problems,
        }),
    })
}

/// Records the hosts' statuses without raising the agent's applied revision (it applied
/// nothing).
async fn record_statuses(
    state: &AppState,
    scope: &OrgScope,
    revision: i64,
    statuses: &[(ProxyHostId, &str, Option<&str>)],
) -> Result<(), crate::store::StoreError> {
    let mut tx = state.store().org(scope).await?;
    tx.record_host_statuses(revision, statuses).await?;
    tx.commit().await
}
