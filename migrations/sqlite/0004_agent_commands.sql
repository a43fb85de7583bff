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
