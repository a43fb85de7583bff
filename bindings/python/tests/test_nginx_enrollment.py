"""The nginx renderer and enrollment tokens from Python."""

import pytest

import infrapilot

HOST = {
    "id": "00000000-0000-0000-0000-000000000007",
    "domains": ["app.example.com", "www.app.example.com"],
    "upstream": "http://web:8080",
    "ssl": {"mode": "none"},
}

TOKEN = "IPT1." + "ab" * 32 + ".0123456789abcdef." + "A" * 42 + "E"


def test_a_proxy_host_renders_to_its_config_file():
    rendered = infrapilot.render_proxy_host(HOST)
    [conf] = rendered["files"]
    assert conf["path"] == "/etc/infrapilot/nginx/hosts/proxy-00000000-0000-0000-0000-000000000007.conf"
    assert "server_name app.example.com www.app.example.com;" in conf["contents"]
    assert rendered["required_files"] == []
    infrapilot.validate_proxy_host(HOST)


def test_a_custom_layout_moves_the_files():
    layout = dict(infrapilot.default_layout(), conf_dir="/opt/nginx")
    rendered = infrapilot.render_proxy_host(HOST, layout)
    assert rendered["files"][0]["path"].startswith("/opt/nginx/hosts/")


def test_a_refused_field_is_named():
    bad = dict(HOST, domains=["ok.example.com", "bad domain!"])
    with pytest.raises(infrapilot.InvalidInputError) as caught:
        infrapilot.validate_proxy_host(bad)
    assert caught.value.field == "domains[1]"
    with pytest.raises(infrapilot.InvalidInputError) as caught:
        infrapilot.render_proxy_host(dict(HOST, upstream="http://web:8080; evil"))
    assert caught.value.field == "upstream"


def test_an_enrollment_token_shows_its_public_parts_only():
    info = infrapilot.inspect_enrollment_token(TOKEN)
    assert info == {"version": 1, "ca_fingerprint": "ab" * 32, "public_id": "0123456789abcdef"}


def test_a_bad_token_is_refused_without_echoing_the_secret():
    secret = "S3cr3t" * 7
    with pytest.raises(infrapilot.EnrollmentTokenError) as caught:
        infrapilot.inspect_enrollment_token("IPT1." + "ab" * 32 + ".0123456789abcdef." + secret)
    assert secret not in str(caught.value)
    assert "43 base64url" in str(caught.value)
    with pytest.raises(infrapilot.EnrollmentTokenError, match="version 2"):
        infrapilot.inspect_enrollment_token("IPT2.x.y.z")


def test_a_bad_public_key_is_refused():
    with pytest.raises(infrapilot.InvalidKeyError):
        infrapilot.verify_audit_export({"org": "x", "entries": [], "checkpoints": []}, "zz")
