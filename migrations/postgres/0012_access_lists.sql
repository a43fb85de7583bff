-- Access lists shared by proxy hosts (the core's `AccessList` document): a host names one
-- with `access_list_id`, and the server puts its rules into the host when it sends the
-- agent its state.
CREATE TABLE access_lists (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX access_lists_org_name ON access_lists (org_id, name);

ALTER TABLE access_lists ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_lists FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON access_lists
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON access_lists TO infrapilot_rw;
