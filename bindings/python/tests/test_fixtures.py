"""The shared fixtures give the decisions in bindings/fixtures/expected.json, as in Rust and Node."""

import infrapilot


def summary(evaluation):
    return {
        "decision": evaluation["decision"],
        "violations": [v["policy_name"] for v in evaluation["violations"]],
        "diagnostics": [d["code"] for d in evaluation["diagnostics"]],
    }


def test_every_case_gives_the_expected_decision(fixtures):
    engine = infrapilot.PolicyEngine(fixtures["policies"])
    expected = fixtures["expected"]["cases"]
    assert set(expected) == set(fixtures["cases"])
    for name, case in fixtures["cases"].items():
        answer = engine.evaluate(case["resource"], case["action"], case["context"])
        assert summary(answer) == expected[name], name


def test_the_compose_file_gives_the_expected_decisions(fixtures):
    answer = infrapilot.evaluate_compose(fixtures["compose"], fixtures["policies"], {"now": 1700000000})
    services = {s["service"]: summary(s) for s in answer["services"]}
    assert {"decision": answer["decision"], "services": services} == fixtures["expected"]["compose"]


def test_json_text_and_python_values_give_the_same_answer(fixtures):
    import json

    from_text = infrapilot.PolicyEngine(json.dumps(fixtures["policies"]))
    from_values = infrapilot.PolicyEngine(fixtures["policies"])
    case = fixtures["cases"]["privileged_root_latest"]
    assert from_text.evaluate(json.dumps(case["resource"]), "create", case["context"]) == from_values.evaluate(
        case["resource"], "create", case["context"]
    )
