-- InfraPilot schema, PostgreSQL flavour. Ids are UUID text, times are unix microseconds.
-- Keep in step with ../sqlite: the store tests compare both schemas.

CREATE TABLE instance_setup (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    completed_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    platform_role TEXT,
    totp_secret TEXT,
    totp_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step BIGINT,
    backup_codes TEXT NOT NULL DEFAULT '[]',
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    max_users BIGINT,
    max_agents BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE refresh_families (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE login_throttle (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE token_index (
    public_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_tokens_org ON api_tokens (org_id, created_at, id);

CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    invited_by TEXT,
    expires_at BIGINT NOT NULL,
    accepted_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX invitations_org ON invitations (org_id, created_at, id);

CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    record TEXT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX enrollment_tokens_org ON enrollment_tokens (org_id, created_at, id);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    last_seen_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX agents_org ON agents (org_id, created_at, id);

CREATE TABLE audit_entries (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    entry TEXT NOT NULL,
    time BIGINT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    resource_kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);
CREATE INDEX audit_entries_time ON audit_entries (org_id, time);

CREATE TABLE audit_heads (
    org_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    checkpoint TEXT NOT NULL
);

CREATE TABLE audit_checkpoints (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    checkpoint TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);

-- Row-level security: the second wall behind the org scoping in code. Every tenant table is
-- ENABLEd and FORCEd (so even the owner is subject to it); each request's transaction sets
-- app.current_org_id (and app.current_user_id) with set_config(..., true). Without that
-- context, current_setting(..., true) is NULL or '' and no row matches.
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships
    USING (org_id = current_setting('app.current_org_id', true)
           OR user_id = current_setting('app.current_user_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_tokens
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
ALTER TABLE enrollment_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE enrollment_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON enrollment_tokens
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE agents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agents
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
ALTER TABLE audit_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_entries
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_heads
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_checkpoints
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));

-- The server's login role does not own these tables: it is a member of infrapilot_rw, which
-- may read and write rows (never alter tables, never bypass RLS). See ARCHITECTURE.md.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'infrapilot_rw') THEN
        CREATE ROLE infrapilot_rw NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO infrapilot_rw;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    instance_setup,
    users,
    organizations,
    memberships,
    refresh_families,
    login_throttle,
    token_index,
    api_tokens,
    invitations,
    enrollment_tokens,
    agents,
    audit_entries,
    audit_heads,
    audit_checkpoints
TO infrapilot_rw;
