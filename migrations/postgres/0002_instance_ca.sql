-- The instance certificate authority: signs agents' client certificates and the server's
-- agent-endpoint certificate. Its SHA-256 fingerprint is pinned in every enrollment token.
-- The private key is sealed with the server's secret key, which never enters the database.
CREATE TABLE instance_ca (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cert_pem TEXT NOT NULL,
    key_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
GRANT SELECT, INSERT ON instance_ca TO infrapilot_rw;
