-- Enrolled agents: what they reported, whether they are connected, and the public key they
-- enrolled with (unique: a replayed CSR cannot enroll a second agent).
ALTER TABLE agents ADD COLUMN hostname TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN version TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN key_fingerprint TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN enrollment_token TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN cert_not_after BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN heartbeat TEXT NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN connected_replica TEXT;
ALTER TABLE agents ADD COLUMN connected_at BIGINT;
ALTER TABLE agents ADD COLUMN applied_revision BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX agents_key_fingerprint ON agents (key_fingerprint);
