-- Policies (the core engine's documents, one per row) and the violations they recorded.
-- A violation keeps the policy's name and message as they were, so deleting or editing a
-- policy does not rewrite history.
CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    template TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX policies_org_name ON policies (org_id, name);
CREATE INDEX policies_org ON policies (org_id, created_at, id);

CREATE TABLE policy_violations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    policy_id TEXT NOT NULL,
    policy_name TEXT NOT NULL,
    action TEXT NOT NULL,
    operation TEXT NOT NULL,
    agent_id TEXT,
    resource_kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    message TEXT NOT NULL,
    evidence TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT,
    resolution_note TEXT
);
CREATE INDEX policy_violations_org ON policy_violations (org_id, created_at, id);
CREATE INDEX policy_violations_policy ON policy_violations (org_id, policy_id, created_at);

ALTER TABLE policies ENABLE ROW LEVEL SECURITY;
ALTER TABLE policies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON policies
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON policies TO infrapilot_rw;

ALTER TABLE policy_violations ENABLE ROW LEVEL SECURITY;
ALTER TABLE policy_violations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON policy_violations
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON policy_violations TO infrapilot_rw;
