-- Proxy and redirection hosts, each served by one agent, and the agent's desired-state
-- revision (raised by every change to its hosts; the agent reports the revision it applied).
ALTER TABLE agents ADD COLUMN desired_revision BIGINT NOT NULL DEFAULT 0;

CREATE TABLE proxy_hosts (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    document TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT FALSE,
    status TEXT NOT NULL,
    status_error TEXT,
    status_revision BIGINT NOT NULL DEFAULT 0,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX proxy_hosts_org ON proxy_hosts (org_id, created_at, id);
CREATE INDEX proxy_hosts_agent ON proxy_hosts (org_id, agent_id);

-- One host per domain on each agent: nginx would serve only one of two.
CREATE TABLE proxy_host_domains (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    host_id TEXT NOT NULL REFERENCES proxy_hosts (id) ON DELETE CASCADE,
    PRIMARY KEY (agent_id, domain)
);
CREATE INDEX proxy_host_domains_host ON proxy_host_domains (host_id);

ALTER TABLE proxy_hosts ENABLE ROW LEVEL SECURITY;
ALTER TABLE proxy_hosts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON proxy_hosts
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON proxy_hosts TO infrapilot_rw;

ALTER TABLE proxy_host_domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE proxy_host_domains FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON proxy_host_domains
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON proxy_host_domains TO infrapilot_rw;
