"""The client against the real server binary: sign-in, API tokens, enrollment tokens,
members and the audit log, with errors as typed exceptions."""

import copy

import pytest

import infrapilot
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD


@pytest.fixture()
def admin(server):
    client = infrapilot.Client(server)
    answer = client.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert answer["mfa_required"] is False
    return client


def test_sign_in_and_who_am_i(admin):
    me = admin.me()
    assert me["email"] == ADMIN_EMAIL
    assert [o["name"] for o in me["organizations"]] == ["Acme"]
    assert admin.organization()["name"] == "Acme"


def test_a_wrong_password_is_an_api_error_with_the_problem(server):
    with pytest.raises(infrapilot.ApiError) as caught:
        infrapilot.Client(server).login(ADMIN_EMAIL, "not the password at all")
    assert caught.value.status == 401
    assert caught.value.detail
    assert caught.value.problem_type


def test_unauthenticated_calls_are_refused(server):
    with pytest.raises(infrapilot.ApiError) as caught:
        infrapilot.Client(server).list_members()
    assert caught.value.status == 401


def test_a_refused_field_is_reported(admin):
    with pytest.raises(infrapilot.ApiError) as caught:
        admin.create_enrollment_token("too short", expires_in_secs=1)
    assert caught.value.status == 422
    assert [e["field"] for e in caught.value.errors] == ["expires_in_secs"]


def test_an_unreachable_server_is_a_transport_error():
    with pytest.raises(infrapilot.TransportError):
        infrapilot.Client("http://127.0.0.1:9").setup_status()


def test_an_api_token_acts_for_its_owner(admin, server):
    created = admin.create_api_token("ci", role="viewer")
    assert created["token"].startswith("ipat_")
    scripted = infrapilot.Client(server, token=created["token"])
    members = scripted.list_members()["items"]
    assert [m["email"] for m in members] == [ADMIN_EMAIL]
    with pytest.raises(infrapilot.ApiError) as caught:
        scripted.create_enrollment_token("viewer cannot")
    assert caught.value.status == 403
    admin.revoke_api_token(created["api_token"]["id"])
    with pytest.raises(infrapilot.ApiError):
        scripted.list_members()


def test_an_enrollment_token_is_created_inspected_and_revoked(admin):
    created = admin.create_enrollment_token("edge", labels={"env": "production"}, max_uses=2)
    info = infrapilot.inspect_enrollment_token(created["token"])
    view = created["enrollment_token"]
    assert info["public_id"] == view["id"]
    assert len(info["ca_fingerprint"]) == 64
    assert view["labels"] == {"env": "production"} and view["status"] == "active"
    assert view["id"] in [t["id"] for t in admin.list_enrollment_tokens()["items"]]
    assert admin.revoke_enrollment_token(view["id"])["status"] == "revoked"
    admin.delete_enrollment_token(view["id"])
    with pytest.raises(infrapilot.ApiError) as caught:
        admin.get_enrollment_token(view["id"])
    assert caught.value.status == 404


def test_the_audit_log_verifies_online_and_offline_and_tampering_is_found(admin):
    admin.create_enrollment_token("audited")
    page = admin.list_audit(action="enrollment_token.create", limit=5)
    assert page["items"] and all(i["action"] == "enrollment_token.create" for i in page["items"])
    assert admin.verify_audit()["broken"] is None
    export = admin.export_audit()
    report = infrapilot.verify_audit_export(export, export["public_key"])
    assert report["ok"] and report["entries"] == len(export["entries"]) and report["export_key_matches"]
    assert admin.verify_audit_offline()["ok"]

    tampered = copy.deepcopy(export)
    tampered["entries"][0]["entry"]["outcome"] = (
        "failure" if tampered["entries"][0]["entry"]["outcome"] != "failure" else "success"
    )
    broken = infrapilot.verify_audit_export(tampered, export["public_key"])
    assert broken["ok"] is False
    assert broken["broken"]["seq"] == 1 and broken["broken"]["kind"] == "modified"

    other_key = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
    forged = infrapilot.verify_audit_export(export, other_key)
    assert forged["ok"] is False and forged["export_key_matches"] is False


def test_alert_channels_and_rules_logs_and_events(admin):
    channel = admin.create_alert_channel(
        "ops hook",
        {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "sixteen chars or more"},
    )
    assert channel["config"]["secret"] == {"set": True}
    assert "sixteen chars" not in str(admin.list_alert_channels())
    # The server calls only public addresses unless told otherwise: loopback is refused.
    tested = admin.test_alert_channel(channel["id"])
    assert tested["ok"] is False and "loopback" in tested["error"]
    rule = admin.create_alert_rule(
        {"name": "edge down", "kind": "agent_offline", "after_secs": 120,
         "severity": "critical", "enabled": True},
        channels=[channel["id"]],
    )
    assert rule["channels"] == [channel["id"]]
    assert [r["rule"]["name"] for r in admin.list_alert_rules()] == ["edge down"]
    with pytest.raises(infrapilot.ApiError) as caught:
        admin.create_alert_rule({"name": "x", "kind": "cpu_above", "percent": -1, "samples": 1,
                                 "severity": "info", "enabled": True})
    assert [e["field"] for e in caught.value.errors] == ["rule.percent"]
    assert admin.list_alerts(status="firing")["items"] == []
    assert admin.query_logs(container=["web", "db"], level="error", limit=10)["items"] == []
    with pytest.raises(infrapilot.ApiError) as caught:
        admin.query_logs(level="loud")
    assert [e["field"] for e in caught.value.errors] == ["level"]
    assert isinstance(admin.list_events(type="agent.online")["items"], list)
    admin.delete_alert_rule(rule["rule"]["id"])
    admin.delete_alert_channel(channel["id"])
    assert admin.list_alert_channels() == []


def test_policies_are_listed_and_deleted(admin):
    created = admin.create_policy_from_template({"template": "no_latest_tag"})
    listed = [p["policy"]["id"] for p in admin.list_policies(limit=200)["items"]]
    assert created["policy"]["id"] in listed
    assert admin.list_violations(status="open")["items"] == []
    admin.delete_policy(created["policy"]["id"])
    listed = [p["policy"]["id"] for p in admin.list_policies(limit=200)["items"]]
    assert created["policy"]["id"] not in listed
