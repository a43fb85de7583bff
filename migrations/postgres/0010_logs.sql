-- Central logs and the event inventory.
--
-- Every agent stream (a container's output, Docker's events, nginx's logs) numbers its records
-- on the agent; a record is stored once per (agent, stream, seq) however often it is sent, and
-- `log_streams.acked_seq` is the highest seq stored. When the agent starts a stream over
-- (a new `epoch`: its buffer state was lost), its records are stored after the old ones:
-- stored seq = `seq_offset` + the agent's seq.
CREATE TABLE log_streams (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    kind TEXT NOT NULL,
    container_id TEXT,
    container_name TEXT,
    acked_seq BIGINT NOT NULL DEFAULT 0,
    dropped BIGINT NOT NULL DEFAULT 0,
    epoch TEXT NOT NULL DEFAULT '',
    seq_offset BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, stream)
);
CREATE INDEX log_streams_org ON log_streams (org_id, agent_id);

-- `ts` is when the line was written (unix microseconds); `level` is what the core's
-- `analyze_line` told. Access log lines also keep their status and upstream time, for the
-- proxy hosts' request metrics.
CREATE TABLE log_lines (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    container_id TEXT,
    container_name TEXT,
    source TEXT NOT NULL,
    level TEXT NOT NULL,
    line TEXT NOT NULL,
    http_status INTEGER,
    upstream_ms BIGINT,
    PRIMARY KEY (agent_id, stream, seq)
);
CREATE INDEX log_lines_org_ts ON log_lines (org_id, ts);
CREATE INDEX log_lines_container_ts ON log_lines (org_id, container_name, ts);

-- Log settings per organization (retention in days).
CREATE TABLE log_settings (
    org_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    retention_days INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Bytes and lines stored per organization per UTC day (days since the epoch), for billing.
CREATE TABLE log_usage (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    day BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    lines BIGINT NOT NULL,
    PRIMARY KEY (org_id, day)
);

-- The event inventory. `origin` makes an event shipped on an agent's stream idempotent
-- (`<agent>/<stream>/<seq>`); events the server records itself have none. `recorded_at`
-- (server time, unix microseconds) orders the live feed; `at` is when it happened.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    agent_id TEXT,
    container_id TEXT,
    container_name TEXT,
    summary TEXT NOT NULL,
    details TEXT NOT NULL,
    origin TEXT UNIQUE,
    at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX events_org_recorded ON events (org_id, recorded_at, id);
CREATE INDEX events_org_at ON events (org_id, at);

ALTER TABLE log_streams ENABLE ROW LEVEL SECURITY;
ALTER TABLE log_streams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON log_streams
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON log_streams TO infrapilot_rw;

ALTER TABLE log_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE log_lines FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON log_lines
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON log_lines TO infrapilot_rw;

ALTER TABLE log_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE log_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON log_settings
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON log_settings TO infrapilot_rw;

ALTER TABLE log_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE log_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON log_usage
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON log_usage TO infrapilot_rw;

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events
    USING (org_id = current_setting('app.current_org_id', true))
    WITH CHECK (org_id = current_setting('app.current_org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON events TO infrapilot_rw;
