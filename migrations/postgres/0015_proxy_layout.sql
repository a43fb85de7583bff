-- Where each agent's nginx keeps its files and which ports it serves on, as the agent last
-- reported it (the JSON of `infrapilot_core::nginx::Layout`; `null` before its first report).
-- The config preview renders with it.
ALTER TABLE agents ADD COLUMN proxy_layout TEXT NOT NULL DEFAULT 'null';
