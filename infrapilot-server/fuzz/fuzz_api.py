"""Fuzzes the running server against its own OpenAPI document with schemathesis.

Starts the server binary on a free loopback port with a fresh data directory, completes setup
with the setup code from its log, signs in, and runs schemathesis with that token over every
operation. Passes when no response is a 5xx, every response matches its documented schema and
content type, and every 4xx is application/problem+json (hooks.py). Called by `cargo xtask test`.

usage: python3 fuzz_api.py PATH/TO/infrapilot-server [MAX_EXAMPLES]
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, token=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.load(res)


def main():
    binary = sys.argv[1]
    examples = sys.argv[2] if len(sys.argv) > 2 else "25"
    port = free_port()
    data = tempfile.mkdtemp(prefix="infrapilot-fuzz-")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "INFRAPILOT_BIND": f"127.0.0.1:{port}",
        "INFRAPILOT_AGENT_BIND": f"127.0.0.1:{free_port()}",
        "INFRAPILOT_DATA_DIR": data,
        "INFRAPILOT_LOG_FORMAT": "json",
        "RUST_LOG": "warn,infrapilot_server=info",
        # The built-in agent would start the host's nginx on ports 80/443 for any proxy host
        # the fuzzer manages to create, and nginx outlives the server by design.
        "INFRAPILOT_NGINX_BINARY": "/nonexistent/nginx",
    }
    server = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, text=True)
    code, ready = [None], threading.Event()
    errors = []

    def read_log():
        for line in server.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            fields = event.get("fields", {})
            if "setup_code" in fields:
                code[0] = fields["setup_code"]
            if "listening" in fields.get("message", ""):
                ready.set()
            if event.get("level") == "ERROR":
                errors.append(line.strip())

    threading.Thread(target=read_log, daemon=True).start()
    try:
        if not ready.wait(60) or not code[0]:
            sys.exit("fuzz: the server did not start")
        base = f"http://127.0.0.1:{port}"
        post(f"{base}/api/v1/setup", {
            "setup_code": code[0], "email": "fuzz@example.com", "name": "Fuzz",
            "password": "fuzzing passphrase 123", "organization_name": "Fuzz",
        })
        token = post(f"{base}/api/v1/auth/login", {
            "email": "fuzz@example.com", "password": "fuzzing passphrase 123",
        })["session"]["access_token"]
        here = os.path.dirname(os.path.abspath(__file__))
        result = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "run", f"{base}/api/openapi.json",
                "--header", f"Authorization: Bearer {token}",
                "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance,problem_json_for_client_errors",
                "--max-examples", examples,
                "--seed", "20261122",
                "--request-timeout", "30",
                "--exclude-path", "/api/v1/auth/logout",
                "--exclude-path", "/api/v1/auth/password",
                # These serve the agent binary (tens of MB per request); the installer test
                # covers them.
                "--exclude-path", "/install.sh",
                "--exclude-path", "/download/infrapilot-agentd",
                # Server-Sent Events never end, so every request would run into the timeout;
                # their filters are the same validated ones as the list endpoints', and their
                # own tests read them.
                "--exclude-path", "/api/v1/logs/tail",
                "--exclude-path", "/api/v1/events/stream",
            ],
            env={**os.environ, "SCHEMATHESIS_HOOKS": "hooks", "PYTHONPATH": here},
        )
        if errors:
            print("fuzz: the server logged errors:\n" + "\n".join(errors[:20]))
            sys.exit(1)
        sys.exit(result.returncode)
    finally:
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    main()
