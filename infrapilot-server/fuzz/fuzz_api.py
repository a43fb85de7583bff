"""Fuzzes the running server against its own OpenAPI document with schemathesis, reaching
every operation's handler.

Starts the server binary (community edition, so with the built-in agent when the host has
Docker) on a free loopback port with a fresh data directory, completes setup with the setup
code from its log, signs in, creates real objects through the API and on the Docker engine
(seed.py), and runs schemathesis over every operation with hooks (hooks.py) that put those
objects' ids into about every other generated request. A second, SaaS-edition server is then
fuzzed on the operations only that edition serves (first-run setup, sign-up, creating and
deleting organizations).

Passes when no response is a 5xx, every response matches its documented schema and content
type, every 4xx is application/problem+json (hooks.py), the server logged no error, and every
operation answered at least one request with a 2xx -- except those in CANNOT_SUCCEED, each
with the reason. Prints, per operation, the requests sent and the 2xx among them, and how long
it took. Called by `cargo xtask test`.

usage: python3 fuzz_api.py PATH/TO/infrapilot-server [MAX_EXAMPLES]
(infrapilot-agentd is taken from beside the server binary; it enrols throwaway agents.)
"""
import collections
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import seed

HERE = os.path.dirname(os.path.abspath(__file__))
EMAIL = "fuzz@example.com"

# The whole fuzzing step's deadline, in seconds: a run that takes longer fails.
DEADLINE_SECS = 420

# Operations that cannot answer 2xx in this environment, with the reason. Keep it short: an
# operation here is fuzzed, but its success path is not.
CANNOT_SUCCEED = {
    # WebSocket upgrades: their success is a 101, never a 2xx, and schemathesis' HTTP client
    # cannot follow one, so it sends plain GETs, answered 400 (upgrade required). The same
    # handlers' plain HTTP twins (exec, logs, stats) are fuzzed; their tests upgrade.
    "GET /api/v1/agents/{id}/containers/{container}/exec/ws",
    "GET /api/v1/agents/{id}/containers/{container}/logs/ws",
    "GET /api/v1/agents/{id}/containers/{container}/stats/ws",
}

# Never sent: they stream or serve large binaries (see the comments at the --exclude-path
# options below), so they are not counted either.
EXCLUDED_PATHS = [
    # These serve the agent binary (tens of MB per request); the installer test covers them.
    "/install.sh",
    "/download/infrapilot-agentd",
    # Server-Sent Events never end, so every request would run into the timeout; their
    # filters are the same validated ones as the list endpoints', and their own tests read
    # them.
    "/api/v1/logs/tail",
    "/api/v1/events/stream",
]

# Docker operations that take up to a second per request on a busy engine (a restart, a start,
# a stats sample, inspecting or listing containers, an exec): fewer examples each, so that the
# whole step stays within a few minutes. Every one is still fuzzed and must still answer a 2xx.
SLOW_EXAMPLES = 8
SLOW = [
    "GET /api/v1/agents/{id}/containers",
    "GET /api/v1/agents/{id}/containers/{container}",
    "GET /api/v1/agents/{id}/containers/{container}/logs",
    "GET /api/v1/agents/{id}/containers/{container}/networks",
    "GET /api/v1/agents/{id}/containers/{container}/stats",
    "POST /api/v1/agents/{id}/containers/{container}/exec",
    "POST /api/v1/agents/{id}/containers/{container}/restart",
    "POST /api/v1/agents/{id}/containers/{container}/start",
    "POST /api/v1/agents/{id}/containers/{container}/stop",
    "POST /api/v1/agents/{id}/stacks/{project}/{action}",
]

# The operations only the SaaS edition serves, fuzzed against a SaaS server.
SAAS_ONLY = ["POST /api/v1/auth/signup", "POST /api/v1/orgs", "DELETE /api/v1/organization"]


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


class Receiver(http.server.BaseHTTPRequestHandler):
    """The alert channels' webhook: accepts every delivery."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class Server:
    """One server process with a fresh data directory, its log read for the setup code."""

    def __init__(self, binary, extra_env):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.agent_port = free_port()
        self.agent_endpoint = f"https://127.0.0.1:{self.agent_port}"
        self.data = tempfile.mkdtemp(prefix="infrapilot-fuzz-")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "INFRAPILOT_BIND": f"127.0.0.1:{self.port}",
            "INFRAPILOT_AGENT_BIND": f"127.0.0.1:{self.agent_port}",
            "INFRAPILOT_DATA_DIR": self.data,
            "INFRAPILOT_LOG_FORMAT": "json",
            "RUST_LOG": "warn,infrapilot_server=info",
            # The built-in agent runs the host's nginx for the proxy hosts, on free ports
            # rather than 80/443; nginx outlives the server by design, so stop() stops it.
            "INFRAPILOT_NGINX_HTTP_PORT": str(free_port()),
            "INFRAPILOT_NGINX_HTTPS_PORT": str(free_port()),
            # The alert channels deliver to the local receiver.
            "INFRAPILOT_OUTBOUND_ALLOW": "127.0.0.1/32",
            **extra_env,
        }
        self.process = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, text=True)
        self.code, self.errors = None, []
        ready = threading.Event()

        def read_log():
            for line in self.process.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                fields = event.get("fields", {})
                if "setup_code" in fields:
                    self.code = fields["setup_code"]
                if "listening" in fields.get("message", ""):
                    ready.set()
                if event.get("level") == "ERROR":
                    self.errors.append(line.strip())

        threading.Thread(target=read_log, daemon=True).start()
        if not ready.wait(60) or not self.code:
            self.stop()
            sys.exit("fuzz: the server did not start")

    def setup_done(self):
        with urllib.request.urlopen(f"{self.base}/api/v1/setup", timeout=30) as res:
            return not json.load(res)["setup_required"]

    def setup_and_login(self):
        if not self.setup_done():
            post(f"{self.base}/api/v1/setup", setup_body(self.code))
        return post(f"{self.base}/api/v1/auth/login", {
            "email": EMAIL, "password": seed.PASSWORD,
        })["session"]["access_token"]

    def stop(self):
        self.process.terminate()
        self.process.wait(15)
        for root, _, files in os.walk(os.path.join(self.data, "nginx")):
            for name in files:
                if name == "nginx.pid":
                    with open(os.path.join(root, name)) as f:
                        pid = f.read().strip()
                    if pid.isdigit():
                        subprocess.run(["kill", "-QUIT", pid], check=False)
        # The data directory holds the server's keys: nothing of it stays behind.
        shutil.rmtree(self.data, ignore_errors=True)


def setup_body(code):
    return {"setup_code": code, "email": EMAIL, "name": "Fuzz", "password": seed.PASSWORD,
            "organization_name": "Fuzz"}


def schemathesis(server, state, record, examples, deadline, selection):
    """One schemathesis run against `server`, over the operations `selection` picks."""
    state_file = os.path.join(server.data, "fuzz-state.json")
    with open(state_file, "w") as f:
        json.dump(state, f)
    config = os.path.join(server.data, "schemathesis.toml")
    with open(config, "w") as f:
        f.write(f"[generation]\nmax-examples = {int(examples)}\n\n[[operations]]\n"
                f"include-name = {json.dumps(SLOW)}\n"
                f"generation.max-examples = {SLOW_EXAMPLES}\n")
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        sys.exit(f"fuzz: over the {DEADLINE_SECS} s deadline before the run")
    try:
        return subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "--config-file", config, "run",
                f"{server.base}/api/openapi.json",
                "--checks", "not_a_server_error,response_schema_conformance,"
                            "content_type_conformance,problem_json_for_client_errors",
                "--seed", "20261122",
                "--request-timeout", "30",
                *selection,
            ],
            env={**os.environ, "SCHEMATHESIS_HOOKS": "hooks", "PYTHONPATH": HERE,
                 "INFRAPILOT_FUZZ_STATE": state_file, "INFRAPILOT_FUZZ_RECORD": record},
            timeout=remaining,
        ).returncode
    except subprocess.TimeoutExpired:
        sys.exit(f"fuzz: schemathesis ran past the {DEADLINE_SECS} s deadline")


def operations():
    with open(os.path.join(HERE, "..", "..", "openapi", "openapi.json")) as f:
        doc = json.load(f)
    return sorted(
        f"{method.upper()} {path}"
        for path, ops in doc["paths"].items() if path not in EXCLUDED_PATHS
        for method in ops if method in ("get", "post", "put", "patch", "delete")
    )


def report(record, started):
    """Prints the figures per operation; returns the operations that never got a 2xx."""
    sent, succeeded = collections.Counter(), collections.Counter()
    with open(record) as f:
        for line in f:
            entry = json.loads(line)
            sent[entry["op"]] += 1
            if 200 <= entry["status"] < 300:
                succeeded[entry["op"]] += 1
    ops = operations()
    width = max(map(len, ops))
    print(f"\nfuzz: {'operation':<{width}}  requests   2xx")
    for op in ops:
        mark = "" if succeeded[op] else ("  (allowed: cannot succeed here)"
                                         if op in CANNOT_SUCCEED else "  NEVER 2xx")
        print(f"fuzz: {op:<{width}}  {sent[op]:>8}  {succeeded[op]:>4}{mark}")
    missing = [op for op in ops if not succeeded[op] and op not in CANNOT_SUCCEED]
    reached = sum(1 for op in ops if succeeded[op])
    print(f"fuzz: {len(ops)} operations, {sum(sent.values())} requests, {reached} reached a "
          f"2xx, {len(CANNOT_SUCCEED)} allowed not to, in {time.monotonic() - started:.0f} s")
    unexpected = sorted(op for op in CANNOT_SUCCEED if succeeded[op])
    if unexpected:
        print("fuzz: these succeeded although CANNOT_SUCCEED lists them (drop them from it): "
              + ", ".join(unexpected))
    return missing + unexpected


def main():
    binary = sys.argv[1]
    examples = sys.argv[2] if len(sys.argv) > 2 else "25"
    started = time.monotonic()
    deadline = started + DEADLINE_SECS
    run = secrets.token_hex(4)
    record = tempfile.mktemp(prefix="infrapilot-fuzz-", suffix=".jsonl")
    open(record, "w").close()
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    failed = []

    server = Server(binary, {})
    try:
        token = server.setup_and_login()
        agentd = os.path.join(os.path.dirname(binary), "infrapilot-agentd")
        state = seed.seed(server.base, token, run, hook_url, agentd, server.agent_endpoint)
        print(f"fuzz: seeded in {time.monotonic() - started:.0f} s: "
              + ", ".join(f"{k}={v}" for k, v in state.items() if k not in ("token", "templates")))
        excluded = [arg for path in EXCLUDED_PATHS for arg in ("--exclude-path", path)]
        saas = [arg for op in SAAS_ONLY for arg in ("--exclude-name", op)]
        code = schemathesis(server, state, record, examples, deadline, excluded + saas)
        if code != 0:
            failed.append(f"schemathesis failed (exit {code}) on the community edition")
        if server.errors:
            failed.append("the server logged errors:\n" + "\n".join(server.errors[:20]))
    finally:
        server.stop()
        seed.cleanup_docker(run)

    # The SaaS edition: its first-run setup, then its own operations.
    server = Server(binary, {"INFRAPILOT_EDITION": "saas"})
    try:
        state = {"base": server.base, "run": run, "receiver": hook_url, "token": "",
                 "setup_code": server.code}
        code = schemathesis(server, state, record, examples, deadline,
                            ["--include-name", "POST /api/v1/setup"])
        state["token"] = server.setup_and_login()
        code |= schemathesis(server, state, record, examples, deadline,
                             [arg for op in SAAS_ONLY for arg in ("--include-name", op)])
        if code != 0:
            failed.append(f"schemathesis failed (exit {code}) on the SaaS edition")
        if server.errors:
            failed.append("the SaaS server logged errors:\n" + "\n".join(server.errors[:20]))
    finally:
        server.stop()

    missing = report(record, started)
    if missing:
        failed.append("these operations never answered 2xx:\n  " + "\n  ".join(missing))
    if failed:
        print("fuzz: " + "\nfuzz: ".join(failed))
        print(f"fuzz: every answer (operation, status, refusal) is in {record}")
        sys.exit(1)
    os.remove(record)


if __name__ == "__main__":
    main()
