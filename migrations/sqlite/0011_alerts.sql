-- Alerts: channels (their configuration sealed with the server's secret-sealing key, since
-- it holds passwords and webhook secrets), rules (the core's rule document and what the
-- evaluator remembers), each organization's evaluation watermark, the alert history and
-- the deliveries of each alert to each channel.
CREATE TABLE alert_channels (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    config_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX alert_channels_org_name ON alert_channels (org_id, name);

CREATE TABLE alert_rules (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    channel_ids TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX alert_rules_org_name ON alert_rules (org_id, name);

-- How far each organization's evaluation has read the event inventory and the access logs.
-- Evaluating locks this row, so two replicas never evaluate one organization at once.
CREATE TABLE alert_cursors (
    org_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    events_recorded_at BIGINT NOT NULL,
    events_id TEXT NOT NULL,
    evaluated_at BIGINT NOT NULL
);

CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    rule_id TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    subject TEXT NOT NULL,
    severity TEXT NOT NULL,
    summary TEXT NOT NULL,
    details TEXT NOT NULL,
    fired_at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolution TEXT
);
CREATE INDEX alerts_org ON alerts (org_id, fired_at, id);
CREATE INDEX alerts_open ON alerts (org_id, rule_id, subject_key, resolved_at);

-- `status`: pending (due at next_attempt_at), sending (claimed by a replica until
-- next_attempt_at), sent, failed (gave up after the last attempt).
CREATE TABLE alert_deliveries (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    alert_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    event TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    sent_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (org_id, status, next_attempt_at);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (org_id, alert_id);
