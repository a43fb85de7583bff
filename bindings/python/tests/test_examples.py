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


TEST_IMAGE = "infrapilot-test/busybox:1"


def test_the_operate_script_restarts_a_container_and_puts_a_proxy_in_front(server):
    """Against the built-in agent (the machine's Docker engine and Debian's nginx): the
    script lists the agent, restarts a real container and creates a proxy host that nginx
    then serves."""
    import http.server
    import threading
    import time
    import urllib.request
    import uuid

    assert subprocess.run(["docker", "image", "inspect", TEST_IMAGE], capture_output=True).returncode == 0, (
        f"{TEST_IMAGE} is missing: the Rust suite builds it (cargo xtask test runs it first)"
    )
    admin = infrapilot.Client(server)
    admin.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    token = admin.create_api_token("operate", role="admin")["token"]
    agent = None
    for _ in range(100):
        online = [a for a in admin.list_agents()["items"] if a["status"] == "online"]
        if online:
            agent = online[0]["id"]
            break
        time.sleep(0.2)
    assert agent, "the built-in agent comes online"

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args):
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    name = f"pyop-{uuid.uuid4().hex[:10]}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--label", "infrapilot.test=py-operate",
         TEST_IMAGE, "sleep", "600"],
        check=True, capture_output=True,
    )
    try:
        script = REPO / "examples" / "automation" / "python" / "operate.py"
        domain = f"{name}.test"
        result = run(
            [script, agent, name, domain, f"http://127.0.0.1:{upstream.server_address[1]}"],
            env={"INFRAPILOT_URL": server, "INFRAPILOT_TOKEN": token},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert agent in result.stdout
        assert f"restarted {name}: running" in result.stdout
        assert ": applied" in result.stdout
        port = int(os.environ["INFRAPILOT_TEST_NGINX_PORT"])
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": domain})
        body = None
        for _ in range(50):
            try:
                body = urllib.request.urlopen(request, timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"hello", "nginx serves the new host"
        bad = run([script, agent, "-", "bad domain;", "http://127.0.0.1:1"],
                  env={"INFRAPILOT_URL": server, "INFRAPILOT_TOKEN": token})
        assert bad.returncode == 2 and "host.domains[0]" in bad.stderr, bad.stderr
    finally:
        upstream.shutdown()
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
