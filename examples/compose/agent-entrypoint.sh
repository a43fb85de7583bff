#!/bin/sh
# Enrolls once (when the state directory holds no agent yet and a token is given), then runs.
set -eu
STATE="${INFRAPILOT_STATE_DIR:-/var/lib/infrapilot-agent}"
if [ ! -f "$STATE/agent.json" ]; then
  if [ -z "${INFRAPILOT_ENROLL_TOKEN:-}" ]; then
    echo "agent: not enrolled; set INFRAPILOT_ENROLL_TOKEN (POST /api/v1/enrollment-tokens)" >&2
    exit 64
  fi
  infrapilot-agentd enroll --endpoint "${INFRAPILOT_ENDPOINT:?set INFRAPILOT_ENDPOINT}" \
    --state-dir "$STATE" --label "host=${INFRAPILOT_AGENT_NAME:-compose}"
fi
exec infrapilot-agentd run --state-dir "$STATE"
