//! Evaluation and delivery.
//!
//! Every few seconds, for each organization, [`evaluate_org`] locks the organization's
//! watermark (so one replica evaluates it at a time), gathers what happened since — container
//! events from the event inventory, agents' last heartbeats, hosts' request counts from the
//! access logs, certificates' expiry — feeds it to the core's pure `evaluate` with each rule's
//! remembered state, and in the same transaction stores the new states, the alerts that fired
//! or resolved, and one pending delivery per channel. A firing is therefore recorded once,
//! however many replicas run. [`deliver_due`] then claims due deliveries (skipping those
//! another replica holds), sends them, and records the outcome: sent, or the remote's own
//! error with the next attempt (backing off), or failed after the last attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use infrapilot_core::alerts::{
    AgentSeen, AlertRule, CertificateObservation, ContainerEvent, ContainerEventKind,
    ContainerSample, Firing, HealthStatus, NginxWindow, Observation, Observations, Resolution,
    RuleKind, Subject, evaluate, retry_after,
};
use infrapilot_core::events::{EventKind, Severity as EventSeverity};
use infrapilot_core::ids::OrgId;
use infrapilot_core::values::{ContainerName, Domain};

use super::channels::{self, ChannelConfig, Notification, NotificationStatus};
use crate::AppState;
use crate::logs::{ServerEvent, record_event_in};
use crate::store::{AlertRecord, DeliveryRecord, EventFilter, OrgScope, OrgTx, StoreError};
use crate::util::{new_id, now_micros};

/// How often every organization is evaluated and its due deliveries sent.
pub const TICK: Duration = Duration::from_secs(5);

/// How long after it was stored an event is read (see [`observe`]), unix microseconds.
const SETTLE_MICROS: i64 = 10_000_000;

/// The most events one evaluation reads.
const EVENTS_PER_RUN: i64 = 10_000;

/// How many deliveries one replica claims at a time.
const CLAIM_BATCH: i64 = 10;

/// How long a replica may take to send the deliveries it claimed before another may claim
/// them: longer than the slowest sends of a batch (an SMTP exchange may take 60 s).
const CLAIM_MICROS: i64 = CLAIM_BATCH * 75_000_000;

/// What one evaluation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvalOutcome {
    /// Alerts that fired.
    pub fired: usize,
    /// Alerts that resolved.
    pub resolved: usize,
}

/// Evaluates and delivers for every organization every [`TICK`], for as long as the server
/// runs.
pub async fn run(state: AppState) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = tick(&state).await {
            tracing::warn!(error = %e, "alert evaluation failed; retrying at the next tick");
        }
    }
}

/// One round over every organization.
pub async fn tick(state: &AppState) -> Result<(), StoreError> {
    let mut after = None;
    loop {
        let mut g = state.store().global_read().await?;
        let orgs = g.list_orgs(after, 200).await?;
        g.commit().await?;
        let Some(last) = orgs.last() else {
            return Ok(());
        };
        after = Some((last.created_at, last.id.to_string()));
        for org in orgs {
            let now = now_micros();
            if let Err(e) = evaluate_org(state, org.id, now).await {
                tracing::warn!(org = %org.id, error = %e, "evaluating alert rules failed");
            }
            if let Err(e) = deliver_due(state, org.id, now).await {
                tracing::warn!(org = %org.id, error = %e, "delivering alerts failed");
            }
        }
    }
}

/// Evaluates every rule of `org` over what happened since the last evaluation, at `now`
/// (unix microseconds), storing states, alerts and deliveries in one transaction.
pub async fn evaluate_org(
    state: &AppState,
    org: OrgId,
    now: i64,
) -> Result<EvalOutcome, StoreError> {
    let mut tx = state.store().org(&OrgScope::system(org)).await?;
    // The watermark is locked before the rules' states are read: a replica that waited for
    // another's evaluation then reads the states it left.
    let (events_from, last_evaluated) = tx.lock_alert_cursor(now).await?;
    // A replica that waited for the lock must not move the watermark back.
    let now = now.max(last_evaluated);
    let mut rules = tx.list_rules().await?;
    if rules.is_empty() {
        let to = if now > events_from.0 {
            (now, String::new())
        } else {
            events_from.clone()
        };
        tx.set_alert_cursor((to.0, &to.1), now).await?;
        return tx.commit().await.map(|()| EvalOutcome::default());
    }
    let (observations, events_to) =
        observe(&mut tx, &rules, events_from, last_evaluated, now).await?;
    let now_secs = now.div_euclid(1_000_000);
    let mut outcome = EvalOutcome::default();
    for record in &mut rules {
        let Ok(rule) = AlertRule::new(record.spec.clone()) else {
            tracing::warn!(rule = %record.spec.id, "skipping a stored alert rule that no longer validates");
            continue;
        };
        let evaluation = evaluate(
            &rule,
            &observations,
            std::mem::take(&mut record.state),
            now_secs,
        );
        record.state = evaluation.state;
        tx.update_rule_state(record.spec.id, &record.state, now)
            .await?;
        for firing in &evaluation.firings {
            fire(&mut tx, record, firing, now).await?;
            outcome.fired += 1;
        }
        for resolution in &evaluation.resolutions {
            outcome.resolved += resolve(&mut tx, record, resolution, now).await?;
        }
    }
    tx.set_alert_cursor((events_to.0, &events_to.1), now)
        .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// The observations since the last evaluation, and how far the event inventory was read.
async fn observe(
    tx: &mut OrgTx,
    rules: &[crate::store::RuleRecord],
    events_from: (i64, String),
    last_evaluated: i64,
    now: i64,
) -> Result<(Observations, (i64, String)), StoreError> {
    let wants = |f: fn(&RuleKind) -> bool| rules.iter().any(|r| r.spec.enabled && f(&r.spec.kind));
    let mut obs = Observations::default();
    let mut agents = Vec::new();
    let mut after = None;
    loop {
        let page = tx.list_agents(after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.to_string()));
        agents.extend(page);
    }
    for agent in &agents {
        obs.agent_labels.insert(agent.id, agent.labels.clone());
        samples(&mut obs, agent, last_evaluated);
        if let Some(seen) = agent.last_seen_at.or(Some(agent.created_at))
            && !agent.disabled
        {
            obs.items.push(Observation::AgentSeen(AgentSeen {
                agent: agent.id,
                at: seen.div_euclid(1_000_000),
            }));
        }
    }
    // Container events recorded since the watermark (by when the server stored them, so
    // events an agent buffered through an outage still count when they arrive).
    let container_kinds = vec![
        EventKind::ContainerStart,
        EventKind::ContainerDie,
        EventKind::ContainerOom,
        EventKind::ContainerRestart,
        EventKind::ContainerHealth,
    ];
    let filter = EventFilter {
        kinds: container_kinds,
        ..EventFilter::default()
    };
    // Only events stored a moment ago or earlier: an event is stamped before its transaction
    // commits, so a later-stamped one may be visible first; reading up to `settled` leaves
    // time for the earlier one to arrive.
    let settled = now - SETTLE_MICROS;
    let mut events = tx
        .events_recorded_after(&filter, (events_from.0, &events_from.1), EVENTS_PER_RUN)
        .await?;
    let full = events.len() == usize::try_from(EVENTS_PER_RUN).unwrap_or(usize::MAX);
    events.retain(|e| e.recorded_at < settled);
    let events_to = match events.last() {
        // A full page: go on after the last event read, next time.
        Some(last) if full => (last.recorded_at, last.id.clone()),
        // Everything up to `settled` was read.
        _ if settled > events_from.0 => (settled, String::new()),
        _ => events_from.clone(),
    };
    for e in events {
        let (Some(agent), Some(name)) = (e.agent_id, e.container_name.as_deref()) else {
            continue;
        };
        let Ok(container) = ContainerName::parse(name) else {
            continue;
        };
        let kind = match e.kind {
            EventKind::ContainerStart => ContainerEventKind::Start,
            EventKind::ContainerDie => ContainerEventKind::Die {
                exit_code: e.details["exit_code"].as_i64().unwrap_or(-1),
            },
            EventKind::ContainerOom => ContainerEventKind::Oom,
            EventKind::ContainerRestart => ContainerEventKind::Restart,
            EventKind::ContainerHealth => {
                let status = match e.summary.rsplit(' ').next() {
                    Some("healthy") => HealthStatus::Healthy,
                    Some("unhealthy") => HealthStatus::Unhealthy,
                    _ => HealthStatus::Starting,
                };
                ContainerEventKind::HealthStatus { status }
            }
            _ => continue,
        };
        obs.items.push(Observation::ContainerEvent(ContainerEvent {
            agent,
            container,
            container_id: e.container_id.unwrap_or_default(),
            kind,
            at: e.at.div_euclid(1_000_000),
        }));
    }
    let needs_hosts = wants(|k| matches!(k, RuleKind::Nginx5xxShare { .. }))
        || wants(|k| matches!(k, RuleKind::CertificateExpiring { .. }));
    if needs_hosts {
        hosts(tx, &mut obs, rules, last_evaluated, now).await?;
    }
    if wants(|k| matches!(k, RuleKind::CertificateExpiring { .. })) {
        // Let's Encrypt certificates, as each agent last reported holding them.
        for agent in &agents {
            let reported = tx.agent_certificates(agent.id).await?;
            let held: Vec<infrapilot_core::desired::ManagedCertificateStatus> =
                serde_json::from_str(&reported).unwrap_or_default();
            for cert in held.into_iter().filter(|c| c.record.not_after > 0) {
                let domains: Vec<Domain> = cert
                    .record
                    .domains
                    .iter()
                    .filter_map(|d| Domain::parse(d).ok())
                    .collect();
                let Some(host) = domains.first().cloned() else {
                    continue;
                };
                obs.items
                    .push(Observation::Certificate(CertificateObservation {
                        agent: agent.id,
                        host,
                        domains,
                        not_after: cert.record.not_after,
                        at: now.div_euclid(1_000_000),
                    }));
            }
        }
    }
    Ok((obs, events_to))
}

/// The container samples of `agent`'s last heartbeat, when the server stored it after
/// `last_evaluated` (so each heartbeat is observed once: by when it arrived, not by when the
/// agent sent it, which is earlier by however long sampling and the trip took).
fn samples(obs: &mut Observations, agent: &crate::store::AgentRecord, last_evaluated: i64) {
    let hb = &agent.heartbeat;
    let Some(sent_ms) = hb["sent_at_unix_ms"].as_i64() else {
        return;
    };
    if agent.last_seen_at.is_none_or(|seen| seen <= last_evaluated) {
        return;
    }
    for c in hb["containers"].as_array().into_iter().flatten() {
        let (Some(name), Some(memory)) = (c["name"].as_str(), c["memory_bytes"].as_u64()) else {
            continue;
        };
        let Ok(container) = ContainerName::parse(name) else {
            continue;
        };
        obs.items
            .push(Observation::ContainerSample(ContainerSample {
                agent: agent.id,
                container,
                // No reading to compare with yet: CPU rules skip a sample that is not a number.
                cpu_percent: c["cpu_percent"].as_f64().unwrap_or(f64::NAN),
                memory_bytes: memory,
                memory_limit_bytes: c["memory_limit_bytes"].as_u64(),
                at: sent_ms.div_euclid(1000),
            }));
    }
}

/// Request windows and certificates of the organization's proxy hosts.
async fn hosts(
    tx: &mut OrgTx,
    obs: &mut Observations,
    rules: &[crate::store::RuleRecord],
    last_evaluated: i64,
    now: i64,
) -> Result<(), StoreError> {
    let windows = rules
        .iter()
        .any(|r| matches!(r.spec.kind, RuleKind::Nginx5xxShare { .. }));
    let mut certificates: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
    for c in tx.list_certificates(None, 1000).await? {
        certificates.insert(c.id.to_string(), (c.not_after, c.domains.clone()));
    }
    let mut after = None;
    loop {
        let page = tx.list_proxy_hosts(None, after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.to_string()));
        for host in page {
            let Some(first) = host.domains.first().and_then(|d| Domain::parse(d).ok()) else {
                continue;
            };
            if windows && host.enabled && now > last_evaluated {
                let stream = infrapilot_core::nginx::names::access_log_stream(host.kind, host.id);
                let (total, errors) = tx
                    .access_counts(host.agent_id, &stream, last_evaluated, now)
                    .await?;
                obs.items.push(Observation::NginxWindow(NginxWindow {
                    agent: host.agent_id,
                    host: first.clone(),
                    total: u64::try_from(total).unwrap_or(0),
                    errors_5xx: u64::try_from(errors).unwrap_or(0),
                    start: last_evaluated.div_euclid(1_000_000),
                    end: now.div_euclid(1_000_000),
                }));
            }
            let certificate = host.document["ssl"]["certificate"]
                .as_str()
                .unwrap_or_default();
            if let Some((not_after, names)) = certificates.get(certificate) {
                obs.items
                    .push(Observation::Certificate(CertificateObservation {
                        agent: host.agent_id,
                        host: first,
                        domains: names.iter().filter_map(|d| Domain::parse(d).ok()).collect(),
                        not_after: *not_after,
                        at: now.div_euclid(1_000_000),
                    }));
            }
        }
    }
    Ok(())
}

fn subject_key(subject: &Subject) -> String {
    serde_json::to_string(subject).unwrap_or_default()
}

/// Stores a firing: the alert, a pending delivery per channel, an event.
async fn fire(
    tx: &mut OrgTx,
    rule: &crate::store::RuleRecord,
    firing: &Firing,
    now: i64,
) -> Result<(), StoreError> {
    let alert = AlertRecord {
        id: new_id().to_string(),
        rule_id: rule.spec.id,
        rule_name: rule.spec.name.clone(),
        subject_key: subject_key(&firing.subject),
        subject: firing.subject.to_string(),
        severity: firing.severity.as_str().to_owned(),
        summary: firing.summary.clone(),
        details: serde_json::json!({ "value": firing.value, "subject": firing.subject }),
        fired_at: firing.at.saturating_mul(1_000_000),
        resolved_at: None,
        resolution: None,
    };
    tx.insert_alert(&alert).await?;
    queue(tx, &alert.id, rule, "firing", now).await?;
    record_event_in(
        tx,
        ServerEvent {
            kind: EventKind::AlertFiring,
            severity: match firing.severity {
                infrapilot_core::alerts::Severity::Critical => EventSeverity::Error,
                infrapilot_core::alerts::Severity::Warning => EventSeverity::Warning,
                infrapilot_core::alerts::Severity::Info => EventSeverity::Info,
            },
            agent: Some(firing.subject.agent()),
            summary: format!("{}: {}", rule.spec.name, firing.summary),
            details: serde_json::json!({ "alert_id": alert.id, "rule_id": rule.spec.id }),
        },
    )
    .await
}

/// Stores a resolution; answers how many open alerts it closed.
async fn resolve(
    tx: &mut OrgTx,
    rule: &crate::store::RuleRecord,
    resolution: &Resolution,
    now: i64,
) -> Result<usize, StoreError> {
    let closed = tx
        .resolve_alerts(
            rule.spec.id,
            &subject_key(&resolution.subject),
            resolution.at.saturating_mul(1_000_000),
            &resolution.summary,
        )
        .await?;
    for alert in &closed {
        if resolution.notify {
            queue(tx, alert, rule, "resolved", now).await?;
        }
        record_event_in(
            tx,
            ServerEvent {
                kind: EventKind::AlertResolved,
                severity: EventSeverity::Info,
                agent: Some(resolution.subject.agent()),
                summary: format!("{}: {}", rule.spec.name, resolution.summary),
                details: serde_json::json!({ "alert_id": alert, "rule_id": rule.spec.id }),
            },
        )
        .await?;
    }
    Ok(closed.len())
}

async fn queue(
    tx: &mut OrgTx,
    alert: &str,
    rule: &crate::store::RuleRecord,
    event: &str,
    now: i64,
) -> Result<(), StoreError> {
    for channel in &rule.channels {
        tx.insert_delivery(&DeliveryRecord {
            id: new_id().to_string(),
            alert_id: alert.to_owned(),
            channel_id: *channel,
            event: event.to_owned(),
            status: "pending".to_owned(),
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            sent_at: None,
            created_at: now,
        })
        .await?;
    }
    Ok(())
}

/// Sends `org`'s deliveries that are due at `now`; answers how many were sent.
pub async fn deliver_due(state: &AppState, org: OrgId, now: i64) -> Result<usize, StoreError> {
    let scope = OrgScope::system(org);
    let mut tx = state.store().org(&scope).await?;
    let lease = now + CLAIM_MICROS;
    let claimed = tx.claim_deliveries(now, lease, CLAIM_BATCH).await?;
    tx.commit().await?;
    let mut sent = 0;
    for mut delivery in claimed {
        let result = send(state, &scope, &delivery).await;
        delivery.attempts += 1;
        match result {
            Ok(()) => {
                delivery.status = "sent".to_owned();
                delivery.sent_at = Some(now_micros());
                delivery.last_error = None;
                sent += 1;
            }
            Err(message) => {
                tracing::info!(%org, delivery = %delivery.id, error = %message, "an alert delivery failed");
                delivery.last_error = Some(message);
                match retry_after(u32::try_from(delivery.attempts).unwrap_or(u32::MAX)) {
                    Some(secs) => {
                        delivery.status = "pending".to_owned();
                        delivery.next_attempt_at =
                            now + i64::try_from(secs).unwrap_or(i64::MAX / 2) * 1_000_000;
                    }
                    None => delivery.status = "failed".to_owned(),
                }
            }
        }
        let mut tx = state.store().org(&scope).await?;
        if !tx.finish_delivery(&delivery, lease).await? {
            tracing::warn!(%org, delivery = %delivery.id, "a delivery's claim ran out before it was sent; another replica took it");
        }
        tx.commit().await?;
    }
    Ok(sent)
}

/// Sends one delivery; the error is the remote's (or the reason nothing could be sent).
async fn send(state: &AppState, scope: &OrgScope, delivery: &DeliveryRecord) -> Result<(), String> {
    let mut tx = state
        .store()
        .org_read(scope)
        .await
        .map_err(|e| e.to_string())?;
    let channel = match tx.channel(delivery.channel_id).await {
        Ok(c) => c,
        Err(StoreError::NotFound { .. }) => return Err("the channel was deleted".to_owned()),
        Err(e) => return Err(e.to_string()),
    };
    let alert = tx
        .alert(&delivery.alert_id)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    let config = open_config(state, &channel.config_sealed)?;
    let notification = notification(state, scope.org(), &alert, &delivery.event);
    channels::deliver(
        &config,
        &notification,
        state.outbound(),
        now_micros().div_euclid(1_000_000),
    )
    .await
    .map_err(|e| e.to_string())
}

/// A sealed channel configuration, opened.
pub fn open_config(state: &AppState, sealed: &str) -> Result<ChannelConfig, String> {
    let plain = state
        .keys()
        .unseal(sealed)
        .map_err(|e| format!("the channel's configuration cannot be opened: {e}"))?;
    serde_json::from_slice(&plain)
        .map_err(|e| format!("the channel's configuration is unreadable: {e}"))
}

/// The notification of `alert`'s firing or resolution.
pub fn notification(
    state: &AppState,
    org: OrgId,
    alert: &AlertRecord,
    event: &str,
) -> Notification {
    Notification {
        rule_name: alert.rule_name.clone(),
        severity: infrapilot_core::alerts::Severity::from_name(&alert.severity)
            .unwrap_or(infrapilot_core::alerts::Severity::Info),
        status: match event {
            "resolved" => NotificationStatus::Resolved,
            "test" => NotificationStatus::Test,
            _ => NotificationStatus::Firing,
        },
        subject: alert.subject.clone(),
        summary: match (event, &alert.resolution) {
            ("resolved", Some(r)) => r.clone(),
            _ => alert.summary.clone(),
        },
        at_unix: alert
            .resolved_at
            .filter(|_| event == "resolved")
            .unwrap_or(alert.fired_at)
            .div_euclid(1_000_000),
        alert_id: alert.id.clone(),
        organization: org.to_string(),
        link: Some(format!(
            "{}/api/v1/alerts/{}",
            state.config().public_url.trim_end_matches('/'),
            alert.id
        )),
    }
}
