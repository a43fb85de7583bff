//! The gRPC service agents dial: `Enroll`, `Session`, `RenewCertificate`.

use std::pin::Pin;
use std::time::Duration;

use infrapilot_core::enrollment::{self, EnrollmentToken, RedeemError};
use infrapilot_core::events::{EventKind, Severity};
use infrapilot_core::ids::AgentId;
use infrapilot_core::rbac::{Effective, OrgRole};
use infrapilot_core::values::{LabelKey, LabelValue, Labels};
use infrapilot_proto::PROTOCOL_VERSION;
use infrapilot_proto::v1::agent_service_server::AgentService;
use infrapilot_proto::v1::{
    AgentMessage, EnrollRequest, EnrollResponse, LogAck, RenewRequest, RenewResponse,
    ServerMessage, Welcome, agent_message, server_message,
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::hub::goodbye;
use super::identity::{AgentIdentity, identity_from_der};
use crate::AppState;
use crate::store::{Actor, AgentRecord, AuditRecord, OrgScope, StoreError};
use crate::util::{new_id, now_micros, now_secs};

/// The agent endpoint's gRPC service.
#[derive(Clone)]
pub struct AgentEndpoint {
    state: AppState,
}

impl AgentEndpoint {
    /// The service over the application's state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "agent endpoint");
    Status::internal("internal error; see the server log")
}

/// The agent behind a request's client certificate.
fn peer_identity<T>(request: &Request<T>) -> Result<AgentIdentity, Status> {
    let certs = request.peer_certs().ok_or_else(|| {
        Status::unauthenticated("a client certificate is required: enroll the agent first")
    })?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    identity_from_der(leaf)
        .ok_or_else(|| Status::unauthenticated("the client certificate does not name an agent"))
}

fn version_error(version: u32) -> String {
    format!(
        "protocol version {version} is not supported: this server speaks version {PROTOCOL_VERSION}; \
         install the agent version that matches the server (GET /install.sh)"
    )
}

impl AgentEndpoint {
    fn agent_scope(&self, id: AgentIdentity) -> OrgScope {
        OrgScope::new(
            id.org,
            Actor::Agent(id.agent),
            Effective::Org(OrgRole::Viewer),
        )
    }

    fn audit_record(
        action: &'static str,
        agent: AgentId,
        details: serde_json::Value,
    ) -> AuditRecord {
        AuditRecord {
            action,
            resource_kind: "agent",
            resource_id: agent.to_string(),
            outcome: infrapilot_core::audit::Outcome::Success,
            source_ip: None,
            details,
        }
    }

    async fn enroll_inner(&self, req: EnrollRequest) -> Result<EnrollResponse, Status> {
        if req.protocol_version != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(version_error(
                req.protocol_version,
            )));
        }
        let token = EnrollmentToken::parse(&req.token)
            .map_err(|e| Status::invalid_argument(format!("token: {e}")))?;
        if token.ca_fingerprint != self.state.ca().fingerprint() {
            return Err(Status::failed_precondition(
                "the enrollment token was issued by another InfraPilot server (its CA fingerprint differs)",
            ));
        }
        let hostname = req.hostname.trim();
        if hostname.is_empty() || hostname.len() > 253 || hostname.chars().any(char::is_control) {
            return Err(Status::invalid_argument(
                "hostname: must be 1 to 253 printable characters",
            ));
        }
        let mut agent_labels = Labels::new();
        for (k, v) in &req.labels {
            let key = LabelKey::parse(k).map_err(|e| Status::invalid_argument(e.to_string()))?;
            let value =
                LabelValue::parse(v).map_err(|e| Status::invalid_argument(e.to_string()))?;
            agent_labels
                .insert(key, value)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        const UNKNOWN: &str = "the enrollment token is unknown";
        let mut g = self.state.store().global().await.map_err(internal)?;
        let org = g
            .token_org("enrollment_token", &token.public_id.to_string())
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::permission_denied(UNKNOWN))?;
        g.commit().await.map_err(internal)?;

        let agent = AgentId::from_uuid(new_id());
        let scope = OrgScope::new(org, Actor::Agent(agent), Effective::Org(OrgRole::Viewer));
        let mut tx = self.state.store().org(&scope).await.map_err(internal)?;
        let stored = match tx.lock_enrollment_token(token.public_id).await {
            Ok(t) => t,
            Err(StoreError::NotFound { .. }) => return Err(Status::permission_denied(UNKNOWN)),
            Err(e) => return Err(internal(e)),
        };
        let redeemed = enrollment::redeem(Some(&stored.record), &token.secret, now_secs())
            .map_err(|e| {
                Status::permission_denied(match e {
                    RedeemError::Unknown => UNKNOWN.to_owned(),
                    RedeemError::Expired { .. } => {
                        "the enrollment token has expired; create a new one".to_owned()
                    }
                    RedeemError::Exhausted { .. } => {
                        "the enrollment token was used as often as allowed".to_owned()
                    }
                    RedeemError::Revoked { .. } => "the enrollment token was revoked".to_owned(),
                    other => other.to_string(),
                })
            })?;
        // The organization's row lock serialises concurrent enrollments with different
        // tokens, so the count below sees every agent enrolled before this one.
        let (lock, organization) = tx.lock_organization().await.map_err(internal)?;
        if let Some(max) = organization.max_agents
            && tx.count_agents(&lock).await.map_err(internal)? >= max
        {
            return Err(Status::resource_exhausted(format!(
                "the organization has reached its limit of {max} agents"
            )));
        }
        let lifetime = self.state.config().agent_cert_lifetime;
        let signed = self
            .state
            .ca()
            .sign_agent(self.state.keys(), &req.csr_der, agent, org, lifetime)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // The token's labels win over the agent's own.
        let labels = agent_labels
            .merged(redeemed.labels())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let now = now_micros();
        let record = AgentRecord {
            id: agent,
            name: hostname.to_owned(),
            labels: labels.clone(),
            disabled: false,
            hostname: hostname.to_owned(),
            version: req.agent_version.chars().take(64).collect(),
            key_fingerprint: signed.key_fingerprint.clone(),
            enrollment_token: token.public_id.to_string(),
            cert_not_after: signed.not_after_unix,
            heartbeat: serde_json::json!({}),
            connected_replica: None,
            connected_at: None,
            last_seen_at: None,
            applied_revision: 0,
            created_at: now,
        };
        match tx.insert_agent(&record).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(Status::already_exists(
                    "this key already enrolled an agent: a replayed request; generate a new key",
                ));
            }
            Err(e) => return Err(internal(e)),
        }
        tx.update_enrollment_token(&redeemed)
            .await
            .map_err(internal)?;
        let details = serde_json::json!({
            "hostname": hostname, "labels": labels, "enrollment_token": token.public_id.to_string(),
        });
        tx.audit(
            self.state.keys().audit_signing(),
            now,
            Self::audit_record("agent.enroll", agent, details),
        )
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        tracing::info!(%agent, %org, hostname, "agent enrolled");
        Ok(EnrollResponse {
            agent_id: agent.to_string(),
            organization_id: org.to_string(),
            certificate_der: signed.cert_der,
            chain_der: signed.chain_der,
            not_after_unix: signed.not_after_unix,
            heartbeat_interval_secs: u32::try_from(self.state.hub().heartbeat().as_secs())
                .unwrap_or(30),
        })
    }
}

type SessionStream = Pin<Box<dyn Stream<Item = Result<ServerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentEndpoint {
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        self.enroll_inner(request.into_inner())
            .await
            .map(Response::new)
    }

    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let id = peer_identity(&request)?;
        let scope = self.agent_scope(id);
        let mut tx = self
            .state
            .store()
            .org_read(&scope)
            .await
            .map_err(internal)?;
        let refusal = match tx.agent(id.agent).await {
            Ok(agent) if agent.disabled => {
                Some("this agent is disabled; re-enable it to reconnect")
            }
            Ok(_) => None,
            Err(StoreError::NotFound { .. }) => Some("this agent was deleted; enroll it again"),
            Err(e) => return Err(internal(e)),
        };
        tx.commit().await.map_err(internal)?;
        // A revoked agent is refused with a permanent Goodbye, so it stops reconnecting
        // instead of retrying an error it cannot fix.
        if let Some(reason) = refusal {
            let (outgoing, rx) = mpsc::channel(1);
            let _ = outgoing.send(Ok(goodbye(reason, true))).await;
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        }
        let stream = serve_session(self.state.clone(), id, request.into_inner()).await?;
        Ok(Response::new(Box::pin(stream)))
    }

    async fn renew_certificate(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<RenewResponse>, Status> {
        let id = peer_identity(&request)?;
        let scope = self.agent_scope(id);
        let mut tx = self.state.store().org(&scope).await.map_err(internal)?;
        let agent = match tx.agent(id.agent).await {
            Ok(agent) if !agent.disabled => agent,
            Ok(_) => return Err(Status::permission_denied("this agent is disabled")),
            Err(StoreError::NotFound { .. }) => {
                return Err(Status::permission_denied("this agent was deleted"));
            }
            Err(e) => return Err(internal(e)),
        };
        let lifetime = self.state.config().agent_cert_lifetime;
        let req = request.into_inner();
        let signed = self
            .state
            .ca()
            .sign_agent(self.state.keys(), &req.csr_der, id.agent, id.org, lifetime)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if signed.key_fingerprint != agent.key_fingerprint {
            return Err(Status::permission_denied(
                "renewal must use the key the agent enrolled with",
            ));
        }
        tx.set_agent_cert(id.agent, signed.not_after_unix)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(Response::new(RenewResponse {
            certificate_der: signed.cert_der,
            chain_der: signed.chain_der,
            not_after_unix: signed.not_after_unix,
        }))
    }
}

fn heartbeat_json(hb: &infrapilot_proto::v1::Heartbeat) -> serde_json::Value {
    let host = hb.host.unwrap_or_default();
    serde_json::json!({
        "sent_at_unix_ms": hb.sent_at_unix_ms,
        "host": {
            "cpu_percent": host.cpu_percent,
            "cpus": host.cpus,
            "memory_total_bytes": host.memory_total_bytes,
            "memory_used_bytes": host.memory_used_bytes,
            "disk_total_bytes": host.disk_total_bytes,
            "disk_used_bytes": host.disk_used_bytes,
            "uptime_secs": host.uptime_secs,
            "load1": host.load1,
        },
        "containers": hb.containers.iter().map(|c| serde_json::json!({
            "id": c.id, "name": c.name, "image": c.image, "state": c.state, "health": c.health,
            "cpu_percent": c.cpu_percent, "memory_bytes": c.memory_bytes,
            "memory_limit_bytes": c.memory_limit_bytes,
        })).collect::<Vec<_>>(),
    })
}

/// Serves one agent session over any transport: the gRPC stream of a remote agent, or the
/// in-process channels of the built-in agent. Reads Hello, answers Welcome (or a permanent
/// Goodbye on a version mismatch), registers the session with the hub, records heartbeats and
/// hands replies to their commands; returns the stream of messages for the agent.
pub(crate) async fn serve_session<S>(
    state: AppState,
    id: AgentIdentity,
    incoming: S,
) -> Result<ReceiverStream<Result<ServerMessage, Status>>, Status>
where
    S: Stream<Item = Result<AgentMessage, Status>> + Send + 'static,
{
    let scope = OrgScope::new(
        id.org,
        Actor::Agent(id.agent),
        Effective::Org(OrgRole::Viewer),
    );
    let mut incoming = Box::pin(incoming);
    let hello =
        match tokio::time::timeout(Duration::from_secs(15), next_message(&mut incoming)).await {
            Ok(Ok(Some(AgentMessage {
                body: Some(agent_message::Body::Hello(hello)),
            }))) => hello,
            Ok(Ok(_)) => return Err(Status::invalid_argument("the first message must be Hello")),
            Ok(Err(status)) => return Err(status),
            Err(_) => return Err(Status::deadline_exceeded("no Hello within 15 seconds")),
        };
    let (outgoing, rx) = mpsc::channel(256);
    if hello.protocol_version != PROTOCOL_VERSION {
        let _ = outgoing
            .send(Ok(goodbye(&version_error(hello.protocol_version), true)))
            .await;
        return Ok(ReceiverStream::new(rx));
    }
    let hub = state.hub();
    let session = hub.register(id.agent, id.org, outgoing.clone());
    let welcome = ServerMessage {
        body: Some(server_message::Body::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            agent_id: id.agent.to_string(),
            heartbeat_interval_secs: u32::try_from(hub.heartbeat().as_secs()).unwrap_or(30),
        })),
    };
    let _ = outgoing.send(Ok(welcome)).await;
    let mut tx = state.store().org(&scope).await.map_err(internal)?;
    let revision = i64::try_from(hello.applied_revision).unwrap_or(i64::MAX);
    tx.set_agent_connection(
        id.agent,
        Some(hub.replica()),
        &hello.hostname,
        &hello.agent_version,
        revision,
        now_micros(),
    )
    .await
    .map_err(internal)?;
    crate::logs::record_event_in(
        &mut tx,
        crate::logs::ServerEvent {
            kind: EventKind::AgentOnline,
            severity: Severity::Info,
            agent: Some(id.agent),
            summary: format!("agent {} connected", hello.hostname),
            details: serde_json::json!({
                "hostname": hello.hostname, "version": hello.agent_version, "replica": hub.replica(),
            }),
        },
    )
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    tracing::info!(agent = %id.agent, hostname = %hello.hostname, "agent connected");
    // An agent behind the desired state gets it now (it is not queued while offline).
    tokio::spawn(crate::ops::desired_state::push_if_behind(
        state.clone(),
        id.org,
        id.agent,
        hello.applied_revision,
    ));

    let state = state.clone();
    // The agent keeps one batch in flight per stream, so this queue holds at most one per
    // stream; acknowledgements go out on the session's stream once each batch is committed.
    let (ingest, mut batches) = mpsc::channel::<infrapilot_proto::v1::LogBatch>(256);
    {
        let state = state.clone();
        let outgoing = session.outgoing.clone();
        tokio::spawn(async move {
            while let Some(batch) = batches.recv().await {
                let stream = batch.stream.clone();
                match crate::logs::ingest(&state, id.org, id.agent, batch).await {
                    Ok(seq) => {
                        let ack = ServerMessage {
                            body: Some(server_message::Body::LogAck(LogAck { stream, seq })),
                        };
                        if outgoing.send(Ok(ack)).await.is_err() {
                            return;
                        }
                    }
                    // No acknowledgement: the agent keeps the records and sends them again.
                    Err(e) => {
                        tracing::warn!(agent = %id.agent, %stream, error = %e, "storing a log batch failed")
                    }
                }
            }
        });
    }
    tokio::spawn(async move {
        loop {
            let message = match next_message(&mut incoming).await {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => break,
            };
            match message.body {
                Some(agent_message::Body::Heartbeat(hb)) => {
                    let heartbeat = heartbeat_json(&hb);
                    let enabled = async {
                        let mut tx = state.store().org(&scope).await?;
                        let enabled = tx
                            .record_heartbeat(id.agent, &heartbeat, now_micros())
                            .await?;
                        tx.commit().await?;
                        Ok::<_, StoreError>(enabled)
                    }
                    .await;
                    match enabled {
                        Ok(true) => {}
                        Ok(false) => {
                            let _ = session
                                .outgoing
                                .send(Ok(goodbye("this agent was disabled or deleted", true)))
                                .await;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(agent = %id.agent, error = %e, "recording a heartbeat failed")
                        }
                    }
                }
                Some(agent_message::Body::Reply(reply)) => session.deliver(reply).await,
                Some(agent_message::Body::Report(report)) => {
                    match serde_json::from_slice(&report.apply_report_json) {
                        Ok(report) => {
                            crate::ops::desired_state::record_report(
                                &state, id.org, id.agent, &report,
                            )
                            .await;
                        }
                        Err(e) => {
                            tracing::warn!(agent = %id.agent, error = %e, "ignoring a report this server does not understand")
                        }
                    }
                }
                Some(agent_message::Body::Logs(batch)) => {
                    // Stored beside this loop, so heartbeats and replies never wait for it.
                    if ingest.send(batch).await.is_err() {
                        break;
                    }
                }
                Some(agent_message::Body::Hello(_)) | None => {}
            }
        }
        state.hub().unregister(id.agent, &session);
        if !state.hub().holds(id.agent) {
            let closed = async {
                let mut tx = state.store().org(&scope).await?;
                // -1: keep the revision the agent last reported applying.
                tx.set_agent_connection(id.agent, None, "", "", -1, now_micros())
                    .await?;
                crate::logs::record_event_in(
                    &mut tx,
                    crate::logs::ServerEvent {
                        kind: EventKind::AgentOffline,
                        severity: Severity::Warning,
                        agent: Some(id.agent),
                        summary: "agent disconnected".to_owned(),
                        details: serde_json::json!({}),
                    },
                )
                .await?;
                tx.commit().await
            }
            .await;
            if let Err(e) = closed {
                tracing::warn!(agent = %id.agent, error = %e, "recording a disconnect failed");
            }
        }
        tracing::info!(agent = %id.agent, "agent disconnected");
    });
    Ok(ReceiverStream::new(rx))
}

async fn next_message<S>(incoming: &mut S) -> Result<Option<AgentMessage>, Status>
where
    S: Stream<Item = Result<AgentMessage, Status>> + Unpin,
{
    use tokio_stream::StreamExt as _;
    incoming.next().await.transpose()
}
