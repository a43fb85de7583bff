"""Shared pytest fixtures: the shared decision fixtures and a real InfraPilot server."""

import json
import os
import pathlib
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
FIXTURES = REPO / "bindings" / "fixtures"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "a long passphrase here"


def server_binary() -> pathlib.Path:
    """The server binary `cargo build -p infrapilot-server` produced."""
    explicit = os.environ.get("INFRAPILOT_SERVER_BIN")
    if explicit:
        return pathlib.Path(explicit)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "infrapilot-server"


@pytest.fixture(scope="session")
def fixtures():
    """The shared fixtures: policies, cases, the compose file and the expected decisions."""
    return {
        "policies": json.loads((FIXTURES / "policies.json").read_text()),
        "cases": json.loads((FIXTURES / "cases.json").read_text()),
        "compose": (FIXTURES / "compose.yaml").read_text(),
        "expected": json.loads((FIXTURES / "expected.json").read_text()),
    }


@pytest.fixture(scope="session")
def server():
    """Starts the real server binary on a free port with a fresh SQLite data directory,
    completes setup with the code from its JSON log, and yields its base URL."""
    import infrapilot

    binary = server_binary()
    if not binary.exists():
        # Loud, not skipped: the client tests are part of the suite.
        pytest.fail(f"{binary} is missing; run `cargo build -p infrapilot-server` first")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The agent endpoint needs a port of its own: tests start servers side by side.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        agent_port = s.getsockname()[1]
    data_dir = tempfile.mkdtemp(prefix="infrapilot-py-")
    # The built-in agent drives the host's nginx for proxy hosts: on ports of its own.
    nginx_ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            nginx_ports.append(s.getsockname()[1])
    env = {
        "PATH": os.environ.get("PATH", ""),
        "INFRAPILOT_BIND": f"127.0.0.1:{port}",
        "INFRAPILOT_AGENT_BIND": f"127.0.0.1:{agent_port}",
        "INFRAPILOT_DATA_DIR": data_dir,
        "INFRAPILOT_LOG_FORMAT": "json",
        "INFRAPILOT_NGINX_HTTP_PORT": str(nginx_ports[0]),
        "INFRAPILOT_NGINX_HTTPS_PORT": str(nginx_ports[1]),
        "RUST_LOG": "info",
    }
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.PIPE, text=True)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    code, listening, deadline = None, False, time.monotonic() + 60
    while time.monotonic() < deadline and not (code and listening):
        try:
            event = json.loads(lines.get(timeout=0.2))
        except (queue.Empty, ValueError):
            continue
        fields = event.get("fields", {})
        code = code or fields.get("setup_code")
        listening = listening or "listening" in fields.get("message", "")
    if not (code and listening):
        proc.kill()
        pytest.fail("the server did not log a setup code and start listening within 60 s")
    base_url = f"http://127.0.0.1:{port}"
    infrapilot.Client(base_url).setup(
        setup_code=code,
        email=ADMIN_EMAIL,
        name="Admin",
        password=ADMIN_PASSWORD,
        organization_name="Acme",
    )
    os.environ["INFRAPILOT_TEST_NGINX_PORT"] = str(nginx_ports[0])
    yield base_url
    # nginx outlives the server by design; a test's nginx must not.
    conf = pathlib.Path(data_dir) / "nginx" / "conf" / "nginx.conf"
    if conf.exists():
        subprocess.run(["/usr/sbin/nginx", "-q", "-c", str(conf), "-s", "stop"], check=False)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(data_dir, ignore_errors=True)
