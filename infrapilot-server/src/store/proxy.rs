//! Proxy and redirection hosts per agent, their apply status, and each agent's desired-state
//! revision.

use infrapilot_core::ids::{AgentId, ProxyHostId};
use infrapilot_core::nginx::HostKind;
use sqlx::any::AnyRow;

use super::org::{OrgTx, cursor_or_start};
use super::{StoreError, col, flag, json, parsed, to_json};

/// A host as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyHostRecord {
    /// Its id (also the id inside `document`).
    pub id: ProxyHostId,
    /// The agent whose nginx serves it.
    pub agent_id: AgentId,
    /// Proxy or redirection host.
    pub kind: HostKind,
    /// The core's host document (`ProxyHost` or `RedirectionHost` JSON), validated before it
    /// was stored.
    pub document: serde_json::Value,
    /// Its domains, lower case (each served by one host per agent).
    pub domains: Vec<String>,
    /// Whether the agent should serve it.
    pub enabled: bool,
    /// `pending`, `applied`, `quarantined`, `failed` or `disabled`.
    pub status: String,
    /// nginx's message for a quarantined or failed host.
    pub status_error: Option<String>,
    /// The agent revision the status is about.
    pub status_revision: i64,
    /// Who created it (audit name).
    pub created_by: Option<String>,
    /// Creation time, unix microseconds.
    pub created_at: i64,
    /// Last change, unix microseconds.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, agent_id, kind, document, enabled, status, status_error, \
    status_revision, created_by, created_at, updated_at";

fn kind_name(kind: HostKind) -> &'static str {
    match kind {
        HostKind::Proxy => "proxy",
        HostKind::Redirection => "redirection",
    }
}

fn from_row(row: &AnyRow, domains: Vec<String>) -> Result<ProxyHostRecord, StoreError> {
    let kind: String = col(row, "kind")?;
    Ok(ProxyHostRecord {
        id: parsed(row, "id")?,
        agent_id: parsed(row, "agent_id")?,
        kind: match kind.as_str() {
            "proxy" => HostKind::Proxy,
            "redirection" => HostKind::Redirection,
            other => return Err(StoreError::corrupt("proxy_hosts.kind", other)),
        },
        document: json(row, "document")?,
        domains,
        enabled: flag(row, "enabled")?,
        status: col(row, "status")?,
        status_error: col(row, "status_error")?,
        status_revision: col(row, "status_revision")?,
        created_by: col(row, "created_by")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

impl OrgTx {
    /// Stores a new host and claims its domains on its agent; a domain another host of the
    /// agent serves conflicts.
    pub async fn insert_proxy_host(&mut self, h: &ProxyHostRecord) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO proxy_hosts (org_id, {COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(self.org().to_string())
        .bind(h.id.to_string())
        .bind(h.agent_id.to_string())
        .bind(kind_name(h.kind))
        .bind(to_json(&h.document)?)
        .bind(h.enabled)
        .bind(&h.status)
        .bind(h.status_error.as_deref())
        .bind(h.status_revision)
        .bind(h.created_by.as_deref())
        .bind(h.created_at)
        .bind(h.updated_at)
        .execute(self.conn())
        .await?;
        self.claim_domains(h).await
    }

    /// Replaces a host's document, domains, agent and flag; resets its status.
    pub async fn update_proxy_host(&mut self, h: &ProxyHostRecord) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE proxy_hosts SET agent_id = $3, document = $4, enabled = $5, status = $6, \
             status_error = $7, status_revision = $8, updated_at = $9 \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(h.id.to_string())
        .bind(h.agent_id.to_string())
        .bind(to_json(&h.document)?)
        .bind(h.enabled)
        .bind(&h.status)
        .bind(h.status_error.as_deref())
        .bind(h.status_revision)
        .bind(h.updated_at)
        .execute(self.conn())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "proxy host" });
        }
        sqlx::query("DELETE FROM proxy_host_domains WHERE org_id = $1 AND host_id = $2")
            .bind(self.org().to_string())
            .bind(h.id.to_string())
            .execute(self.conn())
            .await?;
        self.claim_domains(h).await
    }

    async fn claim_domains(&mut self, h: &ProxyHostRecord) -> Result<(), StoreError> {
        for domain in &h.domains {
            sqlx::query(
                "INSERT INTO proxy_host_domains (org_id, agent_id, domain, host_id) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(self.org().to_string())
            .bind(h.agent_id.to_string())
            .bind(domain)
            .bind(h.id.to_string())
            .execute(self.conn())
            .await
            .map_err(|e| match e.as_database_error() {
                Some(db) if db.is_unique_violation() => StoreError::Conflict {
                    what: "a host for this domain on this agent",
                },
                _ => StoreError::Database(e),
            })?;
        }
        Ok(())
    }

    async fn domains_of(&mut self, id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT domain FROM proxy_host_domains WHERE org_id = $1 AND host_id = $2 \
             ORDER BY domain",
        )
        .bind(self.org().to_string())
        .bind(id)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(|r| col(r, "domain")).collect()
    }

    /// One host.
    pub async fn proxy_host(&mut self, id: ProxyHostId) -> Result<ProxyHostRecord, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM proxy_hosts WHERE org_id = $1 AND id = $2"
        ))
        .bind(self.org().to_string())
        .bind(id.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound { what: "proxy host" })?;
        let domains = self.domains_of(&id.to_string()).await?;
        from_row(&row, domains)
    }

    /// Hosts, oldest first, after a cursor; only `agent`'s when given.
    pub async fn list_proxy_hosts(
        &mut self,
        agent: Option<AgentId>,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<ProxyHostRecord>, StoreError> {
        let (t, id) = cursor_or_start(after);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM proxy_hosts WHERE org_id = $1 AND (created_at, id) > ($2, $3) \
             AND ($4 = '' OR agent_id = $4) ORDER BY created_at, id LIMIT $5"
        ))
        .bind(self.org().to_string())
        .bind(t)
        .bind(id)
        .bind(agent.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = col(row, "id")?;
            let domains = self.domains_of(&id).await?;
            out.push(from_row(row, domains)?);
        }
        Ok(out)
    }

    /// Every host of `agent`, oldest first (for its desired state).
    pub async fn agent_proxy_hosts(
        &mut self,
        agent: AgentId,
    ) -> Result<Vec<ProxyHostRecord>, StoreError> {
        self.list_proxy_hosts(Some(agent), None, i64::MAX).await
    }

    /// Deletes a host (its domains go with it).
    pub async fn delete_proxy_host(&mut self, id: ProxyHostId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM proxy_hosts WHERE org_id = $1 AND id = $2")
            .bind(self.org().to_string())
            .bind(id.to_string())
            .execute(self.conn())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "proxy host" });
        }
        Ok(())
    }

    /// Raises the agent's desired-state revision; returns the new one.
    pub async fn bump_desired_revision(&mut self, agent: AgentId) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "UPDATE agents SET desired_revision = desired_revision + 1 \
             WHERE org_id = $1 AND id = $2 RETURNING desired_revision",
        )
        .bind(self.org().to_string())
        .bind(agent.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound { what: "agent" })?;
        col(&row, "desired_revision")
    }

    /// The agent's desired and applied revisions.
    pub async fn desired_revisions(&mut self, agent: AgentId) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT desired_revision, applied_revision FROM agents WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(agent.to_string())
        .fetch_optional(self.conn())
        .await?
        .ok_or(StoreError::NotFound { what: "agent" })?;
        Ok((
            col(&row, "desired_revision")?,
            col(&row, "applied_revision")?,
        ))
    }

    /// Records hosts' statuses for `revision` without an apply (the agent could not apply).
    pub async fn record_host_statuses(
        &mut self,
        revision: i64,
        statuses: &[(ProxyHostId, &str, Option<&str>)],
    ) -> Result<(), StoreError> {
        for (id, status, error) in statuses {
            sqlx::query(
                "UPDATE proxy_hosts SET status = $3, status_error = $4, status_revision = $5 \
                 WHERE org_id = $1 AND id = $2 AND status_revision <= $5",
            )
            .bind(self.org().to_string())
            .bind(id.to_string())
            .bind(*status)
            .bind(*error)
            .bind(revision)
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }

    /// Records an apply of `revision`: the agent's applied revision (never lowered) and each
    /// listed host's status, unless the host changed since (a newer revision is on its way).
    pub async fn record_apply(
        &mut self,
        agent: AgentId,
        revision: i64,
        statuses: &[(ProxyHostId, &str, Option<&str>)],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE agents SET applied_revision = CASE WHEN applied_revision > $3 \
             THEN applied_revision ELSE $3 END WHERE org_id = $1 AND id = $2",
        )
        .bind(self.org().to_string())
        .bind(agent.to_string())
        .bind(revision)
        .execute(self.conn())
        .await?;
        self.record_host_statuses(revision, statuses).await
    }

    /// Stores the Let's Encrypt certificates the agent reported holding (the JSON of
    /// `Vec<ManagedCertificateStatus>`).
    pub async fn set_agent_certificates(
        &mut self,
        agent: AgentId,
        certificates_json: &str,
    ) -> Result<(), StoreError> {
        self.set_agent_document(agent, AgentDocument::Certificates, certificates_json)
            .await
    }

    /// The Let's Encrypt certificates the agent last reported (JSON); not found for an agent
    /// of another organization.
    pub async fn agent_certificates(&mut self, agent: AgentId) -> Result<String, StoreError> {
        self.agent_document(agent, AgentDocument::Certificates)
            .await
    }

    /// Stores how the agent's nginx reaches its upstream containers (the JSON of
    /// `Vec<UpstreamNetworkStatus>`).
    pub async fn set_agent_upstream_networks(
        &mut self,
        agent: AgentId,
        networks_json: &str,
    ) -> Result<(), StoreError> {
        self.set_agent_document(agent, AgentDocument::UpstreamNetworks, networks_json)
            .await
    }

    /// How the agent's nginx reaches its upstream containers, as last reported (JSON); not
    /// found for an agent of another organization.
    pub async fn agent_upstream_networks(&mut self, agent: AgentId) -> Result<String, StoreError> {
        self.agent_document(agent, AgentDocument::UpstreamNetworks)
            .await
    }

    /// Records where the agent's nginx keeps its files and its ports (JSON of the core's
    /// `Layout`), as the agent last reported them.
    pub async fn set_agent_layout(
        &mut self,
        agent: AgentId,
        layout_json: &str,
    ) -> Result<(), StoreError> {
        self.set_agent_document(agent, AgentDocument::Layout, layout_json)
            .await
    }

    /// The agent's nginx layout as last reported (JSON; `null` before its first report); not
    /// found for an agent of another organization.
    pub async fn agent_layout(&mut self, agent: AgentId) -> Result<String, StoreError> {
        self.agent_document(agent, AgentDocument::Layout).await
    }

    /// The agent's default server (JSON of the core's `DefaultServer`); not found for an
    /// agent of another organization.
    pub async fn agent_default_server(&mut self, agent: AgentId) -> Result<String, StoreError> {
        self.agent_document(agent, AgentDocument::DefaultServer)
            .await
    }

    /// Replaces the agent's default server.
    pub async fn set_agent_default_server(
        &mut self,
        agent: AgentId,
        document: &str,
    ) -> Result<(), StoreError> {
        self.set_agent_document(agent, AgentDocument::DefaultServer, document)
            .await
    }

    async fn agent_document(
        &mut self,
        agent: AgentId,
        which: AgentDocument,
    ) -> Result<String, StoreError> {
        let sql = format!(
            "SELECT {} FROM agents WHERE org_id = $1 AND id = $2",
            which.column()
        );
        let row: Option<(String,)> = sqlx::query_as(&sql)
            .bind(self.org().to_string())
            .bind(agent.to_string())
            .fetch_optional(self.conn())
            .await?;
        row.map(|r| r.0)
            .ok_or(StoreError::NotFound { what: "agent" })
    }

    async fn set_agent_document(
        &mut self,
        agent: AgentId,
        which: AgentDocument,
        document: &str,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE agents SET {} = $3 WHERE org_id = $1 AND id = $2",
            which.column()
        );
        sqlx::query(&sql)
            .bind(self.org().to_string())
            .bind(agent.to_string())
            .bind(document)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

/// The JSON documents kept on an agent's row.
#[derive(Debug, Clone, Copy)]
enum AgentDocument {
    Certificates,
    DefaultServer,
    UpstreamNetworks,
    Layout,
}

impl AgentDocument {
    /// The column: a fixed name, never input.
    fn column(self) -> &'static str {
        match self {
            AgentDocument::Certificates => "acme_certificates",
            AgentDocument::DefaultServer => "default_server",
            AgentDocument::UpstreamNetworks => "upstream_networks",
            AgentDocument::Layout => "proxy_layout",
        }
    }
}
