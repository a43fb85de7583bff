"""Real objects for the fuzzer: what fuzz_api.py creates before the run, and the throwaway
objects hooks.py creates during it.

`seed()` fills an organization through the API (a member, an invitation, API and enrollment
tokens, an agent enrolled by the real infrapilot-agentd, a policy and its violation, a proxy host on the built-in agent, a certificate, an access
list, an alert channel pointing at a local receiver, a rule and its alert) and puts Docker
objects of its own on the host's engine (a container, a compose-labelled stack, a network, a
volume, an image), all named `ipfuzz-<run>` and labelled `infrapilot.fuzz=<run>` so that
`cleanup_docker()` removes exactly them. The result is a JSON-friendly dict (the *state*) that
hooks.py reads to put real ids into the generated requests.

`Factory` makes one throwaway object per call (a user to delete, a session to sign out, an
invitation to accept, ...), so the operations that destroy something never destroy the objects
the other operations need. Its requests leave from 127.0.0.2: the fuzzer's failed sign-ins lock
127.0.0.1 out of POST /auth/login (20 failures per source address), which must not stop the
factory from signing its throwaway users in.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import struct
import subprocess
import tempfile
import time
import uuid

PASSWORD = "fuzzing passphrase 123"
FUZZ_LABEL = "infrapilot.fuzz"
# The label of the one image the fuzzed image prune may remove. Docker's `prune --all` also
# untags every tag of an image in use that no container was created from, so a prune aimed at
# FUZZ_LABEL could take the run's image name away from under the seeded containers.
PRUNABLE_LABEL = "infrapilot.fuzz.prunable"


class ApiError(Exception):
    """An answer other than the one the seeding expected."""


class Api:
    """A tiny JSON client for the server under test."""

    def __init__(self, base, token=None, source="127.0.0.1"):
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port, self.token, self.source = host, int(port), token, source

    def call(self, method, path, body=None, token=None, headers=None, expect=None):
        """Sends one request; returns (status, parsed body or None). With `expect`, an other
        status raises ApiError naming the request and the answer."""
        conn = http.client.HTTPConnection(
            self.host, self.port, timeout=60, source_address=(self.source, 0))
        all_headers = {"content-type": "application/json", **(headers or {})}
        token = token or self.token
        if token:
            all_headers["authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        try:
            conn.request(method, path, body=data, headers=all_headers)
            res = conn.getresponse()
            raw = res.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        if expect is not None and res.status != expect:
            raise ApiError(f"{method} {path}: expected {expect}, got {res.status}: {parsed}")
        return res.status, parsed

    def ok(self, method, path, body=None, expect=200, **kw):
        return self.call(method, path, body, expect=expect, **kw)[1]


def totp(secret_b32, at=None):
    """The current six-digit TOTP code (RFC 6238, SHA-1, 30 s) of a base32 secret."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    step = int((at or time.time()) // 30)
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def docker(*args, check=True):
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise ApiError(f"docker {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


def self_signed(domain):
    """A throwaway self-signed certificate and key (PEM) for `domain`."""
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        subprocess.run([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", f"/CN={domain}",
            "-addext", f"subjectAltName=DNS:{domain}",
        ], check=True, capture_output=True)
        with open(cert) as c, open(key) as k:
            return c.read(), k.read()


class Factory:
    """Throwaway objects, one per call, for the operations that destroy or consume one."""

    def __init__(self, state):
        self.state = state
        self.api = Api(state["base"], state["token"], source="127.0.0.2")
        self.run = state["run"]
        self.spare = None

    def name(self, kind):
        # Unique across processes: the script and the hooks both make objects of this run.
        return f"ipfuzz-{self.run}-{kind}-{uuid.uuid4().hex[:10]}"

    def spare_session(self):
        """A throwaway user's session, kept until an operation succeeds on it (signs it
        out, changes its password or its MFA): most requests are refused and change nothing,
        and a new user costs two password hashes."""
        if self.spare is None:
            self.spare = self.session()[0]
        return self.spare

    def user(self, role="viewer"):
        """A new member: (id, email)."""
        email = f"{self.name('user')}@example.com"
        body = self.api.ok("POST", "/api/v1/users", {
            "email": email, "name": "Throwaway", "password": PASSWORD, "role": role,
        }, expect=201)
        return body["id"], email

    def session(self, email=None, password=PASSWORD):
        """A signed-in session of a new member (or of `email`): (access, refresh, email)."""
        email = email or self.user()[1]
        body = self.api.ok("POST", "/api/v1/auth/login", {"email": email, "password": password})
        return body["session"]["access_token"], body["session"]["refresh_token"], email

    def mfa_user(self):
        """A new member with MFA enabled: (access token, base32 secret, backup codes, email)."""
        access, _, email = self.session()
        secret = self.api.ok("POST", "/api/v1/auth/mfa/enroll", {"password": PASSWORD},
                             token=access)["secret"]
        codes = self.api.ok("POST", "/api/v1/auth/mfa/confirm", {"code": totp(secret)},
                            token=access)["backup_codes"]
        return access, secret, codes, email

    def invitation(self):
        """A pending invitation: (id, token)."""
        body = self.api.ok("POST", "/api/v1/invitations", {
            "email": f"{self.name('invitee')}@example.com", "role": "viewer",
        }, expect=201)
        return body["invitation"]["id"], body["token"]

    def api_token(self):
        return self.api.ok("POST", "/api/v1/api-tokens", {"name": self.name("token")},
                           expect=201)["api_token"]["id"]

    def enrollment_token(self):
        return self.api.ok("POST", "/api/v1/enrollment-tokens", {"name": self.name("enroll")},
                           expect=201)["enrollment_token"]["id"]

    def policy(self):
        return self.api.ok("POST", "/api/v1/policies", policy_body(self.name("policy")),
                           expect=201)["policy"]["id"]

    def proxy_host(self):
        return self.api.ok("POST", "/api/v1/proxy-hosts", proxy_body(
            self.state["agent"], f"{self.name('host')}.example"), expect=201)["id"]

    def certificate(self):
        cert, key = self_signed(f"{self.name('cert')}.example")
        return self.api.ok("POST", "/api/v1/certificates", {
            "name": self.name("cert"), "certificate": cert, "private_key": key,
        }, expect=201)["id"]

    def access_list(self):
        return self.api.ok("POST", "/api/v1/access-lists", access_list_body(
            self.name("acl")), expect=201)["id"]

    def channel(self):
        return self.api.ok("POST", "/api/v1/alert-channels", channel_body(
            self.name("channel"), self.state["receiver"]), expect=201)["id"]

    def rule(self):
        return self.api.ok("POST", "/api/v1/alert-rules", rule_body(self.name("rule"), []),
                           expect=201)["rule"]["id"]

    def organization(self):
        """A new organization of the signed-in user (SaaS edition): (id, slug)."""
        body = self.api.ok("POST", "/api/v1/orgs", {"name": self.name("org")}, expect=201)
        return body["id"], body["slug"]

    def container(self):
        """A created (not started) container of this run: its name."""
        name = self.name("ctr")
        docker("create", "--init", "--name", name, "--label", f"{FUZZ_LABEL}={self.run}",
               self.state["image_id"], "sleep", "600")
        return name

    def agent(self):
        """A throwaway agent: an enrollment token traded for a certificate by the real
        infrapilot-agentd (`enroll` only; it never runs). Returns its id."""
        token = self.api.ok("POST", "/api/v1/enrollment-tokens", {"name": self.name("agent")},
                            expect=201)["token"]
        with tempfile.TemporaryDirectory() as state_dir:
            out = subprocess.run(
                [self.state["agentd"], "enroll", "--endpoint", self.state["agent_endpoint"],
                 "--token", token, "--state-dir", state_dir],
                capture_output=True, text=True, timeout=60)
        if out.returncode != 0 or "enrolled: agent " not in out.stdout:
            raise ApiError(f"infrapilot-agentd enroll: {out.stdout}{out.stderr}")
        return out.stdout.split("enrolled: agent ", 1)[1].split()[0]

    def volume(self):
        name = self.name("vol")
        docker("volume", "create", "--label", f"{FUZZ_LABEL}={self.run}", name)
        return name

    def image_tag(self):
        """A second tag of this run's image, to remove."""
        tag = f"{self.name('img')}:1"
        docker("tag", self.state["image_id"], tag)
        return tag


def policy_body(name):
    # `warn` never blocks: the fuzzer's own Docker calls still go through, and each restart
    # of this run's container records a violation.
    return {
        "name": name, "description": "fuzzing",
        "condition": {"field": "name", "operator": "matches", "value": "^ipfuzz-"},
        "action": "warn", "message": "fuzzing {value}",
        "applies_to": {"actions": ["restart"]},
    }


def proxy_body(agent, domain):
    return {"agent_id": agent, "host": {"domains": [domain], "upstream": "http://127.0.0.1:9"}}


def access_list_body(name):
    return {"name": name, "list": {"rules": [{"action": "allow", "cidr": "10.9.9.0/24"}],
                                   "users": [], "satisfy": "any"}}


def channel_body(name, receiver):
    return {"name": name, "config": {"type": "webhook", "url": receiver,
                                     "secret": "fuzzing-webhook-secret-123"}}


def rule_body(name, channels):
    return {"rule": {"name": name, "kind": "container_exited", "include_clean_exit": True,
                     "severity": "info", "enabled": True}, "channels": channels}


def wait_for(what, probe, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise ApiError(f"timed out waiting for {what}")


def build_image(run, name="busybox", labels=()):
    """An image of this run: the host's static busybox, FROM scratch (nothing to pull)."""
    # No slash: the image is named in a path segment (GET .../images/{image}).
    tag = f"ipfuzz-{run}-{name}:1"
    with tempfile.TemporaryDirectory() as ctx:
        subprocess.run(["cp", "/bin/busybox", os.path.join(ctx, "busybox")], check=True)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write("FROM scratch\nCOPY busybox /bin/busybox\n"
                    'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
                    f'LABEL {FUZZ_LABEL}="{run}"\n'
                    + "".join(f'LABEL {k}="{v}"\n' for k, v in labels))
        docker("build", "-q", "-t", tag, ctx)
    return tag


def seed(base, token, run, receiver, agentd, agent_endpoint):
    """Creates the real objects the fuzzer works on; returns the state for hooks.py."""
    api = Api(base, token)
    state = {"base": base, "token": token, "run": run, "receiver": receiver,
             "password": PASSWORD, "agentd": agentd, "agent_endpoint": agent_endpoint}
    me = api.ok("GET", "/api/v1/auth/me")
    state["me"] = me["id"]
    state["org"] = me["organizations"][0]["id"]

    # The built-in agent, online.
    def online():
        items = api.ok("GET", "/api/v1/agents")["items"]
        return next((a["id"] for a in items if a.get("status") == "online"), None)
    state["agent"] = wait_for("the built-in agent to come online", online)
    # A second agent, enrolled but never connected: the one the reads of an offline agent
    # see (and a check that enrolling works).
    state["other_agent"] = Factory(state).agent()

    # Docker objects of this run.
    label = f"{FUZZ_LABEL}={run}"
    state["image"] = build_image(run)
    # The seeded containers keep the image by its id whatever happens to its name.
    state["image_id"] = docker("image", "inspect", "--format", "{{.Id}}", state["image"])
    # An unused image for the image prune to remove.
    build_image(run, "prunable", [(PRUNABLE_LABEL, run)])
    state["container"] = f"ipfuzz-{run}-web"
    # --init: `sleep` as PID 1 ignores SIGTERM, so every stop or restart would wait out its
    # whole timeout (10 s by default, up to 600 s as generated) before the engine kills it.
    # The volume is mounted so that it is in use: the fuzzed volume prune (this run's label
    # only) would otherwise remove it.
    state["volume"] = f"ipfuzz-{run}-data"
    docker("volume", "create", "--label", label, state["volume"])
    docker("run", "-d", "--init", "--name", state["container"], "--label", label,
           "-v", f"{state['volume']}:/data", state["image"], "sleep", "3600")
    state["network"] = f"ipfuzz-{run}-net"
    docker("network", "create", "--label", label, state["network"])
    state["stack"] = f"ipfuzz-{run}-stack"
    docker("run", "-d", "--init", "--name", f"ipfuzz-{run}-stack-web", "--label", label,
           "--label", f"com.docker.compose.project={state['stack']}",
           "--label", "com.docker.compose.service=web", state["image"], "sleep", "3600")

    factory = Factory(state)
    # Members: one to read and change, one whose invitation stays pending.
    state["member"], state["member_email"] = factory.user()
    state["invitation"], _ = factory.invitation()
    state["api_token"] = factory.api_token()
    state["enrollment_token"] = factory.enrollment_token()
    state["certificate"] = factory.certificate()
    state["access_list"] = factory.access_list()
    state["proxy_host"] = factory.proxy_host()
    state["channel"] = factory.channel()
    rule = api.ok("POST", "/api/v1/alert-rules",
                  rule_body(f"ipfuzz-{run}-rule", [state["channel"]]), expect=201)
    state["rule"] = rule["rule"]["id"]
    state["policy"] = factory.policy()
    templates = api.ok("GET", "/api/v1/policies/templates")
    state["templates"] = [t["template"] for t in templates]

    # A violation: restarting the container trips the warn policy.
    api.ok("POST", f"/api/v1/agents/{state['agent']}/containers/{state['container']}"
                   "/restart?timeout=0")
    state["violation"] = wait_for("a policy violation", lambda: next(
        iter(v["id"] for v in api.ok("GET", "/api/v1/policy-violations")["items"]), None))
    # An alert: a container of this run exits, the rule fires.
    docker("run", "--name", f"ipfuzz-{run}-exit", "--label", label, state["image"], "true")
    state["alert"] = wait_for("an alert", lambda: next(
        iter(a["id"] for a in api.ok("GET", "/api/v1/alerts")["items"]), None), timeout=90)
    return state


def cleanup_docker(run):
    """Removes every Docker object of this run, whatever the fuzzer did to them."""
    label = f"label={FUZZ_LABEL}={run}"
    ids = docker("ps", "-aq", "--filter", label, check=False).split()
    if ids:
        docker("rm", "-f", "-v", *ids, check=False)
    for net in docker("network", "ls", "-q", "--filter", label, check=False).split():
        docker("network", "rm", net, check=False)
    for vol in docker("volume", "ls", "-q", "--filter", label, check=False).split():
        docker("volume", "rm", "-f", vol, check=False)
    # By id: an image the run left without a tag is removed too (and every tag of each).
    ids = sorted(set(docker("images", "-q", "--filter", label, check=False).split()))
    if ids:
        docker("rmi", "-f", *ids, check=False)
