-- Each agent's default server: the pages nginx answers with for names no host claims and for
-- upstream errors (the JSON of `infrapilot_core::nginx::DefaultServer`).
ALTER TABLE agents ADD COLUMN default_server TEXT NOT NULL DEFAULT '{}';
