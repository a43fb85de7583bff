"""schemathesis hooks: the project's own checks, real objects in generated requests, guards
that keep the run's own objects and session alive, and a record of every answer.

Real objects: for the operations listed in VARIANTS, about every other generated case (chosen
by a hash of the case, so a replayed case is the same request) has its path parameters, query
and body replaced by ones that name the objects seed.py created, so the handler's success path
runs; the other cases go out as generated. Guards, applied to every case whatever its phase:
an operation that destroys or consumes an object gets a throwaway one from seed.Factory when
it names a seeded object; sign-out, password and MFA operations act as a throwaway user; the
Docker operations that change something act only on this run's own containers, images,
volumes and networks (the engine is the host's, shared with other work).

Environment: INFRAPILOT_FUZZ_STATE (the state seed.seed() wrote), INFRAPILOT_FUZZ_RECORD
(a file to append one JSON line per answer to: operation and status).
"""
import hashlib
import json
import os
import time
import uuid

import schemathesis

import seed

STATE = {}
FACTORY = None
RECORD = None


def _load():
    global STATE, FACTORY, RECORD
    path = os.environ.get("INFRAPILOT_FUZZ_STATE")
    if path:
        with open(path) as f:
            STATE = json.load(f)
        FACTORY = seed.Factory(STATE)
    RECORD = os.environ.get("INFRAPILOT_FUZZ_RECORD")


_load()


@schemathesis.check
def problem_json_for_client_errors(ctx, response, case):
    """Every 4xx answer is an RFC 9457 problem document naming what to change."""
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])
        if isinstance(content_type, list):
            content_type = content_type[0] if content_type else ""
        assert content_type.startswith("application/problem+json"), (
            f"{response.status_code} answered with content type {content_type!r}"
        )
        body = response.json()
        assert body.get("status") == response.status_code and body.get("detail"), body


def _agent_path(st, **more):
    return {"id": st["agent"], **more}


def _container(st, fx):
    return _agent_path(st, container=st["container"])


def _mfa_user_session(fx):
    access, secret, codes, email = fx.mfa_user()
    return {"Authorization": f"Bearer {access}"}, secret, codes, email


def _enrolling(st, fx):
    access, _, _ = fx.session()
    secret = fx.api.ok("POST", "/api/v1/auth/mfa/enroll", {"password": seed.PASSWORD},
                       token=access)["secret"]
    return {"headers": {"Authorization": f"Bearer {access}"}, "body": {"code": seed.totp(secret)}}


def _with_mfa(body_of):
    def variant(st, fx):
        headers, secret, codes, email = _mfa_user_session(fx)
        return {"headers": headers, "body": body_of(codes)}
    return variant


def _login_mfa(st, fx):
    _, _, codes, email = fx.mfa_user()
    answer = fx.api.ok("POST", "/api/v1/auth/login",
                       {"email": email, "password": seed.PASSWORD})
    return {"body": {"mfa_token": answer["mfa_token"], "code": codes[0]}}


def _accept(st, fx):
    _, token = fx.invitation()
    return {"body": {"token": token, "name": "Invitee", "password": seed.PASSWORD}}


def _delete_org(st, fx):
    org, slug = fx.organization()
    return {"headers": {"X-Org-Id": org}, "query": {"confirm": slug}}


def _sign_out(st, fx):
    access, _, _ = fx.session()
    return {"headers": {"Authorization": f"Bearer {access}"}}


def _change_password(st, fx):
    access, _, _ = fx.session()
    return {"headers": {"Authorization": f"Bearer {access}"},
            "body": {"current_password": seed.PASSWORD,
                     "new_password": "another fuzzing passphrase 456"}}


def _fresh_name(kind):
    return f"ipfuzz-{STATE.get('run', 'x')}-{kind}-{uuid.uuid4().hex[:8]}"


# Requests that reach each operation's success path, keyed by "METHOD /path". Each value is a
# function of (state, factory) returning the parts to replace: path, query, body, headers.
VARIANTS = {
    # First-run setup, on a fresh server (the SaaS run): the code from its log.
    "POST /api/v1/setup": lambda st, fx: {"body": {
        "setup_code": st.get("setup_code", ""), "email": "fuzz@example.com", "name": "Fuzz",
        "password": seed.PASSWORD, "organization_name": "Fuzz"}},
    # Organization and members.
    "PATCH /api/v1/organization": lambda st, fx: {"body": {"name": "Fuzz"}},
    "DELETE /api/v1/organization": _delete_org,
    "POST /api/v1/orgs": lambda st, fx: {"body": {"name": _fresh_name("org")}},
    "POST /api/v1/auth/signup": lambda st, fx: {"body": {
        "email": f"{_fresh_name('signup')}@example.com", "name": "Signup",
        "password": seed.PASSWORD, "organization_name": _fresh_name("signup-org")}},
    "PATCH /api/v1/members/{user_id}": lambda st, fx: {
        "path": {"user_id": st["member"]}, "body": {"role": "operator"}},
    "DELETE /api/v1/members/{user_id}": lambda st, fx: {"path": {"user_id": fx.user()[0]}},
    "GET /api/v1/users/{id}": lambda st, fx: {"path": {"id": st["member"]}},
    "PATCH /api/v1/users/{id}": lambda st, fx: {
        "path": {"id": st["member"]}, "body": {"name": "Member", "disabled": False}},
    "DELETE /api/v1/users/{id}": lambda st, fx: {"path": {"id": fx.user()[0]}},
    "POST /api/v1/users": lambda st, fx: {"body": {
        "email": f"{_fresh_name('user')}@example.com", "name": "New",
        "password": seed.PASSWORD, "role": "viewer"}},
    "POST /api/v1/invitations": lambda st, fx: {"body": {
        "email": f"{_fresh_name('invite')}@example.com", "role": "viewer"}},
    "POST /api/v1/invitations/accept": _accept,
    "DELETE /api/v1/invitations/{id}": lambda st, fx: {"path": {"id": fx.invitation()[0]}},
    # Account.
    "POST /api/v1/auth/login": lambda st, fx: {"body": {
        "email": "fuzz@example.com", "password": seed.PASSWORD}},
    "POST /api/v1/auth/login/mfa": _login_mfa,
    "POST /api/v1/auth/refresh": lambda st, fx: {"body": {"refresh_token": fx.session()[1]}},
    "POST /api/v1/auth/logout": _sign_out,
    "POST /api/v1/auth/password": _change_password,
    "PATCH /api/v1/auth/me": lambda st, fx: {"body": {"name": "Fuzz"}},
    "POST /api/v1/auth/mfa/enroll": lambda st, fx: {
        "headers": {"Authorization": f"Bearer {fx.session()[0]}"},
        "body": {"password": seed.PASSWORD}},
    "POST /api/v1/auth/mfa/confirm": _enrolling,
    "POST /api/v1/auth/mfa/disable": _with_mfa(
        lambda codes: {"password": seed.PASSWORD, "code": codes[0]}),
    "POST /api/v1/auth/mfa/backup-codes": _with_mfa(
        lambda codes: {"password": seed.PASSWORD, "code": codes[0]}),
    # Tokens.
    "POST /api/v1/api-tokens": lambda st, fx: {"body": {"name": _fresh_name("token")}},
    "DELETE /api/v1/api-tokens/{id}": lambda st, fx: {"path": {"id": fx.api_token()}},
    "POST /api/v1/enrollment-tokens": lambda st, fx: {"body": {
        "name": _fresh_name("enroll"), "labels": {"env": "fuzz"}}},
    "GET /api/v1/enrollment-tokens/{id}": lambda st, fx: {"path": {"id": st["enrollment_token"]}},
    "POST /api/v1/enrollment-tokens/{id}/revoke": lambda st, fx: {
        "path": {"id": fx.enrollment_token()}},
    "DELETE /api/v1/enrollment-tokens/{id}": lambda st, fx: {
        "path": {"id": fx.enrollment_token()}},
    # Policies.
    "POST /api/v1/policies": lambda st, fx: {"body": seed.policy_body(_fresh_name("policy"))},
    "POST /api/v1/policies/from-template": lambda st, fx: {"body": {
        "template": {"template": st["templates"][0]}, "name": _fresh_name("tpl")}},
    "POST /api/v1/policies/evaluate": lambda st, fx: {"body": {
        "resource": {"name": "web", "image": "busybox:1"}, "operation": "exec",
        "agent_id": st["agent"]}},
    "GET /api/v1/policies/{id}": lambda st, fx: {"path": {"id": st["policy"]}},
    "PATCH /api/v1/policies/{id}": lambda st, fx: {
        "path": {"id": st["policy"]},
        "body": {k: v for k, v in seed.policy_body("ipfuzz-policy").items()}},
    "DELETE /api/v1/policies/{id}": lambda st, fx: {"path": {"id": fx.policy()}},
    "GET /api/v1/policy-violations/{id}": lambda st, fx: {"path": {"id": st["violation"]}},
    "POST /api/v1/policy-violations/{id}/resolve": lambda st, fx: {
        "path": {"id": st["violation"]}, "body": {"note": "fuzzed"}},
    # Proxy, certificates, access lists.
    "POST /api/v1/proxy-hosts": lambda st, fx: {
        "body": seed.proxy_body(st["agent"], f"{_fresh_name('host')}.example")},
    "GET /api/v1/proxy-hosts/{id}": lambda st, fx: {"path": {"id": st["proxy_host"]}},
    "PUT /api/v1/proxy-hosts/{id}": lambda st, fx: {
        "path": {"id": st["proxy_host"]},
        "body": seed.proxy_body(st["agent"], f"ipfuzz-{st['run']}-host-1.example")},
    "DELETE /api/v1/proxy-hosts/{id}": lambda st, fx: {"path": {"id": fx.proxy_host()}},
    "GET /api/v1/proxy-hosts/{id}/metrics": lambda st, fx: {
        "path": {"id": st["proxy_host"]}, "query": {}},
    "GET /api/v1/proxy-hosts/{id}/preview": lambda st, fx: {"path": {"id": st["proxy_host"]}},
    "POST /api/v1/proxy-hosts/{id}/test": lambda st, fx: {
        "path": {"id": st["proxy_host"]}, "body": {}},
    "POST /api/v1/certificates": lambda st, fx: {"body": dict(zip(
        ("certificate", "private_key"), seed.self_signed(f"{_fresh_name('c')}.example")),
        name=_fresh_name("cert"))},
    "GET /api/v1/certificates/{id}": lambda st, fx: {"path": {"id": st["certificate"]}},
    "DELETE /api/v1/certificates/{id}": lambda st, fx: {"path": {"id": fx.certificate()}},
    "POST /api/v1/access-lists": lambda st, fx: {
        "body": seed.access_list_body(_fresh_name("acl"))},
    "GET /api/v1/access-lists/{id}": lambda st, fx: {"path": {"id": st["access_list"]}},
    "PUT /api/v1/access-lists/{id}": lambda st, fx: {
        "path": {"id": st["access_list"]}, "body": seed.access_list_body(_fresh_name("acl"))},
    "DELETE /api/v1/access-lists/{id}": lambda st, fx: {"path": {"id": fx.access_list()}},
    # Alerts.
    "POST /api/v1/alert-channels": lambda st, fx: {
        "body": seed.channel_body(_fresh_name("channel"), st["receiver"])},
    "GET /api/v1/alert-channels/{id}": lambda st, fx: {"path": {"id": st["channel"]}},
    "PUT /api/v1/alert-channels/{id}": lambda st, fx: {
        "path": {"id": st["channel"]},
        "body": seed.channel_body(_fresh_name("channel"), st["receiver"])},
    "DELETE /api/v1/alert-channels/{id}": lambda st, fx: {"path": {"id": fx.channel()}},
    "POST /api/v1/alert-channels/{id}/test": lambda st, fx: {"path": {"id": st["channel"]}},
    "POST /api/v1/alert-rules": lambda st, fx: {
        "body": seed.rule_body(_fresh_name("rule"), [st["channel"]])},
    "GET /api/v1/alert-rules/{id}": lambda st, fx: {"path": {"id": st["rule"]}},
    "PUT /api/v1/alert-rules/{id}": lambda st, fx: {
        "path": {"id": st["rule"]}, "body": seed.rule_body(_fresh_name("rule"), [st["channel"]])},
    "DELETE /api/v1/alert-rules/{id}": lambda st, fx: {"path": {"id": fx.rule()}},
    "GET /api/v1/alerts/{id}": lambda st, fx: {"path": {"id": st["alert"]}},
    # Logs.
    "PUT /api/v1/logs/settings": lambda st, fx: {"body": {"retention_days": 7}},
    # Agents and Docker, on the built-in agent and this run's objects only.
    "GET /api/v1/agents/{id}": lambda st, fx: {"path": _agent_path(st)},
    "DELETE /api/v1/agents/{id}": lambda st, fx: {"path": {"id": fx.agent()}},
    "PATCH /api/v1/agents/{id}": lambda st, fx: {
        "path": _agent_path(st), "body": {"name": "fuzz-host", "disabled": False}},
    "GET /api/v1/agents/{id}/info": lambda st, fx: {"path": _agent_path(st)},
    "POST /api/v1/agents/{id}/ping": lambda st, fx: {"path": _agent_path(st)},
    "GET /api/v1/agents/{id}/proxy": lambda st, fx: {"path": _agent_path(st)},
    "POST /api/v1/agents/{id}/proxy/apply": lambda st, fx: {"path": _agent_path(st)},
    "GET /api/v1/agents/{id}/default-server": lambda st, fx: {"path": _agent_path(st)},
    "PUT /api/v1/agents/{id}/default-server": lambda st, fx: {
        "path": _agent_path(st),
        "body": {"default_server": {"unclaimed": {"action": "not_found"}}}},
    "GET /api/v1/agents/{id}/containers": lambda st, fx: {"path": _agent_path(st)},
    "GET /api/v1/agents/{id}/containers/{container}": lambda st, fx: {
        "path": _container(st, fx)},
    "DELETE /api/v1/agents/{id}/containers/{container}": lambda st, fx: (
        lambda name: {"path": _agent_path(st, container=name),
                      "query": {"confirm": name, "force": "true"}})(fx.container()),
    "POST /api/v1/agents/{id}/containers/{container}/exec": lambda st, fx: {
        "path": _container(st, fx), "body": {"cmd": ["echo", "fuzz"]}},
    "GET /api/v1/agents/{id}/containers/{container}/logs": lambda st, fx: {
        "path": _container(st, fx), "query": {"tail": 10}},
    "GET /api/v1/agents/{id}/containers/{container}/networks": lambda st, fx: {
        "path": _container(st, fx)},
    "POST /api/v1/agents/{id}/containers/{container}/restart": lambda st, fx: {
        "path": _container(st, fx), "query": {"timeout": 0}},
    "POST /api/v1/agents/{id}/containers/{container}/start": lambda st, fx: {
        "path": _container(st, fx)},
    "POST /api/v1/agents/{id}/containers/{container}/stop": lambda st, fx: {
        "path": _agent_path(st, container=fx.container()), "query": {"timeout": 0}},
    "GET /api/v1/agents/{id}/containers/{container}/stats": lambda st, fx: {
        "path": _container(st, fx)},
    "GET /api/v1/agents/{id}/images": lambda st, fx: {"path": _agent_path(st)},
    "GET /api/v1/agents/{id}/images/{image}": lambda st, fx: {
        "path": _agent_path(st, image=st["image"])},
    "DELETE /api/v1/agents/{id}/images/{image}": lambda st, fx: (
        lambda tag: {"path": _agent_path(st, image=tag), "query": {"confirm": tag}})(
        fx.image_tag()),
    "POST /api/v1/agents/{id}/images/prune": lambda st, fx: {
        "path": _agent_path(st), "body": {"confirm": "prune", "all": True}},
    "GET /api/v1/agents/{id}/networks": lambda st, fx: {"path": _agent_path(st)},
    "GET /api/v1/agents/{id}/networks/{network}": lambda st, fx: {
        "path": _agent_path(st, network=st["network"])},
    "POST /api/v1/agents/{id}/networks/{network}/connect": lambda st, fx: {
        "path": _agent_path(st, network=st["network"]), "body": {"container": fx.container()}},
    "POST /api/v1/agents/{id}/networks/{network}/disconnect": lambda st, fx: {
        "path": _agent_path(st, network="bridge"), "body": {"container": fx.container()}},
    "GET /api/v1/agents/{id}/stacks": lambda st, fx: {"path": _agent_path(st)},
    "POST /api/v1/agents/{id}/stacks/{project}/{action}": lambda st, fx: {
        "path": _agent_path(st, project=st["stack"], action="restart")},
    "GET /api/v1/agents/{id}/volumes": lambda st, fx: {"path": _agent_path(st)},
    "GET /api/v1/agents/{id}/volumes/{volume}": lambda st, fx: {
        "path": _agent_path(st, volume=st["volume"])},
    "DELETE /api/v1/agents/{id}/volumes/{volume}": lambda st, fx: (
        lambda name: {"path": _agent_path(st, volume=name), "query": {"confirm": name}})(
        fx.volume()),
    "POST /api/v1/agents/{id}/volumes/prune": lambda st, fx: {
        "path": _agent_path(st), "body": {"confirm": "prune", "all": True}},
}


# Operations that destroy or consume the object their path names: a seeded object is swapped
# for a throwaway one, whoever chose the id (the variant, a stateful link, the generator).
DESTRUCTIVE = {
    label for label in VARIANTS
    if label.startswith("DELETE ") or label.endswith("/revoke")
}
# Operations that would end or change the signed-in session's account: always a throwaway user.
OWN_ACCOUNT = {
    "POST /api/v1/auth/logout", "POST /api/v1/auth/password",
    "POST /api/v1/auth/mfa/enroll", "POST /api/v1/auth/mfa/confirm",
    "POST /api/v1/auth/mfa/disable", "POST /api/v1/auth/mfa/backup-codes",
}
ACCOUNT_CHANGES = {"PATCH /api/v1/users/{id}", "PATCH /api/v1/members/{user_id}"}
OWN_OBJECTS = ("container", "image", "volume", "network", "project")


def _case_key(case):
    text = json.dumps([case.path_parameters, case.query, case.body], sort_keys=True,
                      default=repr)
    return hashlib.sha256(text.encode()).digest()[0]


def _seeded_ids():
    return {v for k, v in STATE.items() if isinstance(v, str) and k not in ("base", "run")}


# The operations whose real objects have gone out at least once (outside the coverage phase).
CARRIED = set()


def _apply(case, parts):
    if "path" in parts:
        case.path_parameters = {**(case.path_parameters or {}), **parts["path"]}
    if "query" in parts:
        case.query = {**(case.query or {}), **parts["query"]}
    if "body" in parts:
        case.body = parts["body"]
    if "headers" in parts:
        case.headers = {**(case.headers or {}), **parts["headers"]}


def _guard(label, case):
    """Keeps the seeded objects, the session and other people's Docker objects safe."""
    params = case.path_parameters or {}
    main = f"Bearer {STATE['token']}"
    if label in OWN_ACCOUNT and (case.headers or {}).get("Authorization", main) == main:
        _apply(case, {"headers": {"Authorization": f"Bearer {FACTORY.spare_session()}"}})
    if label in DESTRUCTIVE and any(v in _seeded_ids() or v == STATE.get("me")
                                    for v in params.values()):
        _apply(case, VARIANTS[label](STATE, FACTORY))
    if label in ACCOUNT_CHANGES and STATE.get("me") in params.values():
        _apply(case, VARIANTS[label](STATE, FACTORY))
    if label == "PATCH /api/v1/agents/{id}" and isinstance(case.body, dict):
        # A disabled built-in agent would answer no Docker operation for the rest of the run.
        case.body = {**case.body, "disabled": False}
    if label.startswith(("POST ", "DELETE ", "PUT ")) and params.get("id") == STATE.get("agent"):
        mine = f"ipfuzz-{STATE['run']}"
        foreign = [k for k in OWN_OBJECTS if k in params and not (
            str(params[k]).startswith(mine) or params[k] == "bridge")]
        if isinstance(case.body, dict) and "container" in case.body and not str(
                case.body["container"]).startswith(mine):
            foreign.append("container")
        if foreign:
            # Not this run's object: aim at no agent, so nothing on the host is touched.
            case.path_parameters = {**params, "id": str(uuid.uuid4())}
        if label.endswith("/prune") and isinstance(case.body, dict):
            # Only this run's objects: its throwaway volumes, and its one prunable image
            # (seed.PRUNABLE_LABEL says why not every image of the run).
            key = seed.PRUNABLE_LABEL if "/images/" in label else seed.FUZZ_LABEL
            case.body = {**case.body, "labels": {key: STATE["run"]}}


def _aims_at_auth(case):
    """Whether schemathesis generated this case to test the Authorization header itself (a
    coverage or negative case that names it as the parameter it changed)."""
    data = getattr(getattr(case._meta, "phase", None), "data", None)
    return (str(getattr(data, "parameter", None) or "").lower() == "authorization"
            and str(getattr(data, "parameter_location", None) or "").lower().endswith("header"))


def _take_generated_auth(case):
    """Removes the Authorization header schemathesis drew from the bearer scheme; returns it."""
    headers = dict(case.headers or {})
    found = [k for k in headers if k.lower() == "authorization"]
    value = headers.pop(found[0]) if found else None
    for k in found[1:]:
        headers.pop(k)
    case.headers = headers
    return value


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if not STATE:
        return
    label = f"{case.method.upper()} {case.operation.path}"
    variant = VARIANTS.get(label)
    phase = getattr(getattr(case._meta, "phase", None), "name", None)
    key = _case_key(case)
    # schemathesis draws an Authorization header from the document's bearer scheme for most
    # cases (a random string, "Bearer " and nothing, ...): sent as drawn, it is refused (401)
    # before the handler reads anything else, so the operation's parameters and body would go
    # unfuzzed and its success path unreached. It is kept only where it is what the case
    # tests (the coverage phase's missing or malformed header) and in one other case in eight
    # (never one carrying the real objects); the others go out with the run's session.
    generated = _take_generated_auth(case)
    keep = generated is not None and (_aims_at_auth(case) or (phase != "coverage" and key % 8 == 1))
    if keep:
        _apply(case, {"headers": {"Authorization": generated}})
    # The coverage phase sends hundreds of boundary and negative cases per operation; they
    # go out as generated (guarded), and the later phases carry the real objects: about every
    # other case, and always an operation's first one there with only the variant's query (so
    # that an operation fuzzed with few examples, SLOW in fuzz_api.py, cannot miss them all,
    # nor carry them with a generated query parameter that is refused).
    if variant is not None and phase != "coverage":
        first = label not in CARRIED
        if first or key % 2 == 0:
            parts = variant(STATE, FACTORY)
            if first:
                case.query = {}
                # The first success path also goes out with the run's own session.
                _take_generated_auth(case)
            CARRIED.add(label)
            _apply(case, parts)
    _guard(label, case)
    if "Authorization" not in (case.headers or {}):
        # The session is given here rather than with --header, which would override the
        # throwaway users' sessions the variants and guards choose.
        _apply(case, {"headers": {"Authorization": f"Bearer {STATE['token']}"}})


# Operations that leave a policy in force; a blocking one is disabled at once (after_call).
POLICY_WRITES = {"POST /api/v1/policies", "POST /api/v1/policies/from-template",
                 "PATCH /api/v1/policies/{id}"}


def _disable_if_blocking(response):
    """A generated policy that blocks (`"action": "block"`, often with a condition every
    resource meets) would refuse every Docker operation for the rest of the run (403), so
    their success paths would go unfuzzed: it is disabled as soon as it is stored, through the
    API, keeping its condition and scope. The operation that stored it has been fuzzed."""
    try:
        policy = response.json()["policy"]
    except (ValueError, KeyError, TypeError):
        return
    if policy.get("action") != "block" or policy.get("enabled") is False:
        return
    FACTORY.api.ok("PATCH", f"/api/v1/policies/{policy['id']}", {
        "condition": policy["condition"], "action": policy["action"],
        "applies_to": policy.get("applies_to") or {}, "enabled": False})


@schemathesis.hook
def after_call(ctx, case, response):
    label = f"{case.method.upper()} {case.operation.path}"
    success = 200 <= response.status_code < 300
    if FACTORY and label in OWN_ACCOUNT and success:
        FACTORY.spare = None
    if FACTORY and label in POLICY_WRITES and success:
        _disable_if_blocking(response)
    if FACTORY and label == "PATCH /api/v1/organization" and success:
        # A generated member or agent limit (often below the members the run has made) would
        # refuse every throwaway user from then on: the limits are lifted again.
        FACTORY.api.ok("PATCH", "/api/v1/organization", {"max_users": -1, "max_agents": -1})
    if RECORD:
        # One line per answer: fuzz_api.py counts them; the rest is for reading a failed run
        # (which session a request carried, what a refusal said, when it came).
        sent = response.request.headers.get("Authorization")
        entry = {"op": label, "status": response.status_code, "t": round(time.time(), 3),
                 "phase": str(getattr(getattr(case._meta, "phase", None), "name", "")),
                 "auth": ("session" if sent == f"Bearer {STATE.get('token')}" else
                          "other" if sent else "none")}
        if response.status_code >= 400:
            try:
                entry["detail"] = str(response.json().get("detail"))[:160]
            except (ValueError, AttributeError):
                entry["detail"] = response.text[:160]
        with open(RECORD, "a") as f:
            f.write(json.dumps(entry) + "\n")
