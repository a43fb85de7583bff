-- InfraPilot schema, SQLite flavour. Ids are UUID text, times are unix microseconds.
-- Keep in step with ../postgres: the store tests compare both schemas.

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
    totp_enabled INTEGER NOT NULL DEFAULT 0,
    totp_last_step BIGINT,
    backup_codes TEXT NOT NULL DEFAULT '[]',
    disabled INTEGER NOT NULL DEFAULT 0,
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
    disabled INTEGER NOT NULL DEFAULT 0,
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
