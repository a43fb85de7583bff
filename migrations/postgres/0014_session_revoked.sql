-- Whether a login session (refresh family) is revoked, as a column of its own: the
-- authentication of every request reads it, so a revoked session's access tokens stop working
-- at once instead of living out their 15 minutes. Filled from the state kept so far.
ALTER TABLE refresh_families ADD COLUMN revoked BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE refresh_families SET revoked = TRUE
    WHERE COALESCE(state::jsonb -> 'revoked', 'null'::jsonb) <> 'null'::jsonb;
