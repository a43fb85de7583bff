"""The examples run: the CI gate on both compose files, and the automation script against the
real server with an API token."""

import os
import subprocess
import sys

import infrapilot
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, REPO

GATE = REPO / "examples" / "policy-gate"


def run(args, env=None):
    return subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_the_ci_gate_passes_a_good_stack_and_blocks_a_bad_one():
    ok = run([GATE / "python" / "ci_gate.py", GATE / "compose.yaml", GATE / "policies.json"])
    assert ok.returncode == 0, ok.stderr
    assert "decision: warn" in ok.stdout
    blocked = run([GATE / "python" / "ci_gate.py", GATE / "compose-blocked.yaml", GATE / "policies.json"])
    assert blocked.returncode == 1, blocked.stderr
    assert "block cadvisor" in blocked.stdout and "no_docker_socket_mount" in blocked.stdout
    broken = run([GATE / "python" / "ci_gate.py", GATE / "compose.yaml", GATE / "compose.yaml"])
    assert broken.returncode == 2


def test_the_onboarding_script_runs_with_an_api_token(server):
    admin = infrapilot.Client(server)
    admin.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    token = admin.create_api_token("automation", role="admin")["token"]
    script = REPO / "examples" / "automation" / "python" / "onboard.py"
    result = run([script, "edge-01"], env={"INFRAPILOT_URL": server, "INFRAPILOT_TOKEN": token})
    assert result.returncode == 0, result.stderr
    assert "install with:" in result.stdout
    assert ADMIN_EMAIL in result.stdout
    assert "offline check says intact" in result.stdout
    refused = run([script], env={"INFRAPILOT_URL": server, "INFRAPILOT_TOKEN": "ipat_nope"})
    assert refused.returncode == 2 and "401" in refused.stderr
