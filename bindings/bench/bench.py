"""Per-decision cost through the Python bindings; compare with bench_decisions (Rust)."""

import json
import pathlib
import time

import infrapilot

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
ITERATIONS = 200_000

engine = infrapilot.PolicyEngine((FIXTURES / "policies.json").read_text())
cases = json.loads((FIXTURES / "cases.json").read_text())
for name in ["hardened", "privileged_root_latest"]:
    case = cases[name]
    args = (case["resource"], case["action"], case["context"])
    for _ in range(ITERATIONS // 10):
        engine.evaluate(*args)
    start = time.perf_counter_ns()
    for _ in range(ITERATIONS):
        engine.evaluate(*args)
    ns = (time.perf_counter_ns() - start) / ITERATIONS
    print(f"python {name:<24} {ns:>9.0f} ns/decision")
