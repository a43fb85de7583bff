-- The Let's Encrypt certificates each agent obtains and renews itself, as it last reported
-- them (JSON: id, domains, expiry, issuer, failures, next attempt, last error).
ALTER TABLE agents ADD COLUMN acme_certificates TEXT NOT NULL DEFAULT '[]';
