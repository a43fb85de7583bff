-- How each agent's nginx reaches the containers its hosts forward to, as the agent last
-- reported it (the JSON of `Vec<infrapilot_core::nginx::upstreams::UpstreamNetworkStatus>`).
ALTER TABLE agents ADD COLUMN upstream_networks TEXT NOT NULL DEFAULT '[]';
