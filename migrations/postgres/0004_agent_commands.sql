-- Commands relayed between server replicas: a replica that does not hold an agent's stream
-- writes the command here and notifies the replica that does (PostgreSQL LISTEN/NOTIFY); the
-- reply comes back the same way. Rows are deleted once answered. SQLite has one replica and
-- never uses this table.
CREATE TABLE agent_commands (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    origin_replica TEXT NOT NULL,
    target_replica TEXT NOT NULL,
    command TEXT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    reply TEXT,
    created_at BIGINT NOT NULL
);
ALTER TABLE agent_commands ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_commands FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agent_commands
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON agent_commands TO infrapilot_rw;
