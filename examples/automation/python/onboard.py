#!/usr/bin/env python3
"""An automation script over what the API offers today: sign in (or use an API token),
create an enrollment token for a new host, list the organization's members, and verify the
audit log on the server and offline.

    pip install ./bindings/python
    INFRAPILOT_URL=http://127.0.0.1:8080 INFRAPILOT_TOKEN=ipat_... \
        python3 examples/automation/python/onboard.py edge-01

Credentials: INFRAPILOT_TOKEN (an API token), or INFRAPILOT_EMAIL and INFRAPILOT_PASSWORD.
INFRAPILOT_AUDIT_PUBLIC_KEY (hex) pins the audit key; without it the key in the export is
used. Exits 1 when the audit chain does not verify, 2 on any other error.
"""

import os
import sys

import infrapilot


def connect():
    client = infrapilot.Client(os.environ.get("INFRAPILOT_URL", "http://127.0.0.1:8080"))
    token = os.environ.get("INFRAPILOT_TOKEN")
    if token:
        client.set_token(token)
    else:
        answer = client.login(os.environ["INFRAPILOT_EMAIL"], os.environ["INFRAPILOT_PASSWORD"])
        if answer["mfa_required"]:
            client.login_mfa(answer["mfa_token"], input("TOTP code: "))
    return client


def main(argv):
    host = argv[1] if len(argv) > 1 else "new-host"
    try:
        client = connect()
        created = client.create_enrollment_token(
            f"enroll {host}", labels={"host": host}, expires_in_secs=3600, max_uses=1
        )
        info = infrapilot.inspect_enrollment_token(created["token"])
        print(f"enrollment token {info['public_id']} for {host} (CA {info['ca_fingerprint'][:16]}…)")
        print(f"install with: {created['install_command']}")

        print("members:")
        cursor = None
        while True:
            page = client.list_members(limit=100, cursor=cursor)
            for m in page["items"]:
                print(f"  {m['role']:<8} {m['email']}")
            cursor = page.get("next_cursor")
            if not cursor:
                break

        online = client.verify_audit()
        offline = client.verify_audit_offline(os.environ.get("INFRAPILOT_AUDIT_PUBLIC_KEY"))
        print(f"audit: {offline['entries']} entries, server says "
              f"{'intact' if online['broken'] is None else 'BROKEN'}, offline check says "
              f"{'intact' if offline['ok'] else 'BROKEN: ' + offline['broken']['message']}")
        return 0 if offline["ok"] and online["broken"] is None else 1
    except KeyError as err:
        print(f"onboard: set INFRAPILOT_TOKEN, or {err.args[0]}", file=sys.stderr)
        return 2
    except infrapilot.ApiError as err:
        fields = "; ".join(f"{e['field']}: {e['reason']}" for e in err.errors)
        print(f"onboard: {err.status} {err.detail} {fields}".rstrip(), file=sys.stderr)
        return 2
    except infrapilot.InfraPilotError as err:
        print(f"onboard: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
