#!/usr/bin/env python3
"""Day-two automation: list the agents, restart a container on one, and put a proxy host in
front of a service.

    pip install ./bindings/python
    INFRAPILOT_URL=http://127.0.0.1:8080 INFRAPILOT_TOKEN=ipat_... \
        python3 examples/automation/python/operate.py AGENT_ID CONTAINER app.example.com http://127.0.0.1:3000

CONTAINER may be `-` to restart nothing. Prints the proxy host's status (`applied`, or
`quarantined`/`failed` with nginx's own message). Exits 1 when nginx does not serve the host,
2 on any other error (a blocking policy included, with the policy's message).
"""

import os
import sys

import infrapilot


def main(argv):
    if len(argv) != 5:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: operate.py AGENT_ID CONTAINER|- DOMAIN UPSTREAM", file=sys.stderr)
        return 2
    agent_id, container, domain, upstream = argv[1:]
    try:
        client = infrapilot.Client(
            os.environ.get("INFRAPILOT_URL", "http://127.0.0.1:8080"),
            token=os.environ["INFRAPILOT_TOKEN"],
        )
        print("agents:")
        for agent in client.list_agents(limit=200)["items"]:
            print(f"  {agent['status']:<8} {agent['id']} {agent['name']}")
        if container != "-":
            answer = client.container_action(agent_id, container, "restart")
            print(f"restarted {container}: {answer['result']['state']}")
            for warning in answer["warnings"]:
                print(f"  policy warning: {warning['message']}")
        host = client.create_proxy_host(agent_id, {"domains": [domain], "upstream": upstream})
        print(f"proxy host {host['id']} for {domain} -> {upstream}: {host['status']}")
        if host.get("status_error"):
            print(f"  nginx: {host['status_error']}")
        return 0 if host["status"] == "applied" else 1
    except KeyError as err:
        print(f"operate: set {err.args[0]}", file=sys.stderr)
        return 2
    except infrapilot.ApiError as err:
        fields = "; ".join(f"{e['field']}: {e['reason']}" for e in err.errors)
        print(f"operate: {err.status} {err.detail} {fields}".rstrip(), file=sys.stderr)
        return 2
    except infrapilot.InfraPilotError as err:
        print(f"operate: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
