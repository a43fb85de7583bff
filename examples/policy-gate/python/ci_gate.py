#!/usr/bin/env python3
"""A CI gate: evaluate every service of a docker-compose file against a policy set and exit
non-zero when any service would be blocked.

    pip install ./bindings/python
    python3 examples/policy-gate/python/ci_gate.py examples/policy-gate/compose.yaml \
        examples/policy-gate/policies.json

Exit codes: 0 allow or warn, 1 block, 2 the gate itself could not run. DEPLOY_ENV (default
``production``) is the environment the stack deploys to.
"""

import os
import sys

import infrapilot


def main(argv):
    if len(argv) != 3:
        print("usage: ci_gate.py <compose.yaml> <policies.json>", file=sys.stderr)
        return 2
    compose_path, policies_path = argv[1], argv[2]
    try:
        with open(policies_path, encoding="utf-8") as f:
            engine = infrapilot.PolicyEngine(f.read())
        with open(compose_path, encoding="utf-8") as f:
            compose = f.read()
        context = {"agent_labels": {"env": os.environ.get("DEPLOY_ENV", "production")}}
        answer = engine.evaluate_compose(compose, "create", context)
    except infrapilot.PolicyError as err:
        for d in err.diagnostics:
            print(f"ci_gate: {policies_path}{d['pointer']}: {d['message']}", file=sys.stderr)
        return 2
    except (OSError, infrapilot.InfraPilotError) as err:
        print(f"ci_gate: {err}", file=sys.stderr)
        return 2
    for service in answer["services"]:
        print(f"{service['decision']:<5} {service['service']}")
        for v in service["violations"]:
            print(f"      {v['action']:<5} {v['policy_name']}: {v['message']}")
    print(f"decision: {answer['decision']}")
    return 1 if answer["decision"] == "block" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
