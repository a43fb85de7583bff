"""The policy engine from Python: answers, diagnostics and errors."""

from concurrent.futures import ThreadPoolExecutor

import pytest

import infrapilot

PRIVILEGED = {"image": "nginx:1.25", "host_config": {"privileged": True}}


def test_an_answer_carries_the_violation_and_its_evidence():
    engine = infrapilot.PolicyEngine([{"template": "no_privileged_containers"}])
    answer = engine.evaluate(PRIVILEGED, "create", {"now": 0})
    assert answer["decision"] == "block"
    [violation] = answer["violations"]
    assert violation["policy_name"] == "no_privileged_containers"
    assert violation["evidence"] == [{"path": "host_config.privileged", "actual": True}]
    assert answer["diagnostics"] == []


def test_a_type_mismatch_is_a_diagnostic_not_an_error():
    policy = {
        "id": "00000000-0000-4000-8000-000000000001",
        "name": "big",
        "action": "warn",
        "condition": {"field": "host_config.memory", "operator": "greater_than", "value": 1},
    }
    answer = infrapilot.PolicyEngine([policy]).evaluate({"host_config": {"memory": "1g"}})
    assert answer["decision"] == "allow"
    assert [d["code"] for d in answer["diagnostics"]] == ["type_mismatch"]


def test_an_invalid_policy_set_raises_with_pointers_into_the_set():
    bad = {
        "id": "00000000-0000-4000-8000-000000000001",
        "name": "bad regex",
        "action": "block",
        "condition": {"any": [{"field": "image", "operator": "matches", "value": "("}]},
    }
    with pytest.raises(infrapilot.PolicyError) as caught:
        infrapilot.PolicyEngine([{"template": "no_host_network"}, bad])
    assert isinstance(caught.value, infrapilot.InfraPilotError)
    assert caught.value.kind == "invalid_policy"
    assert caught.value.diagnostics[0]["pointer"] == "/1/condition/any/0/value"
    assert caught.value.diagnostics[0]["code"] == "invalid_regex"


def test_an_unknown_template_names_the_templates():
    with pytest.raises(infrapilot.PolicyError, match="no_root_containers"):
        infrapilot.PolicyEngine([{"template": "no_such_template"}])


def test_validate_locates_every_problem():
    answer = infrapilot.validate_policy(
        {"id": "not-a-uuid", "name": "x", "action": "explode", "condition": {"any": []}, "colour": 1}
    )
    assert answer["valid"] is False
    pointers = {d["pointer"] for d in answer["diagnostics"]}
    assert {"/id", "/action", "/colour", "/condition"} <= pointers
    warnings = [d for d in answer["diagnostics"] if d["severity"] == "warning"]
    assert [w["code"] for w in warnings] == ["never_matches"]


def test_a_valid_document_and_a_template_reference_validate():
    assert infrapilot.validate_policy({"template": "max_container_age", "days": 7}) == {
        "valid": True,
        "diagnostics": [],
    }
    assert infrapilot.validate_policy({"template": "max_container_age", "days": "x"})["valid"] is False


def test_templates_are_listed_with_their_policy():
    templates = {t["name"]: t for t in infrapilot.list_templates()}
    assert len(templates) == 11
    assert templates["no_exec_production"]["parameters"] == {"environments": ["production"]}
    assert templates["no_root_containers"]["action"] == "block"
    engine = infrapilot.PolicyEngine([t["policy"] for t in templates.values()])
    assert len(engine) == 11


def test_bad_arguments_raise_invalid_input_naming_the_field():
    engine = infrapilot.PolicyEngine([])
    with pytest.raises(infrapilot.InvalidInputError) as caught:
        engine.evaluate({}, "launch")
    assert caught.value.field == "action"
    with pytest.raises(infrapilot.InvalidInputError) as caught:
        engine.evaluate({}, "create", {"agent_labels": {"env": 3}})
    assert caught.value.field.startswith("context.agent_labels")
    with pytest.raises(infrapilot.InvalidJsonError):
        infrapilot.PolicyEngine("[{")
    with pytest.raises(TypeError):
        engine.evaluate({"x": object()})


def test_exec_in_production_is_blocked_through_the_env_label():
    engine = infrapilot.PolicyEngine([{"template": "no_exec_production", "environments": ["production"]}])
    assert engine.evaluate({}, "exec", {"agent_labels": {"env": "production"}})["decision"] == "block"
    assert engine.evaluate({}, "exec", {"environment": "staging"})["decision"] == "allow"


def test_evaluations_run_in_parallel_threads_with_the_same_answers(fixtures):
    engine = infrapilot.PolicyEngine(fixtures["policies"])
    case = fixtures["cases"]["privileged_root_latest"]
    expected = engine.evaluate(case["resource"], case["action"], case["context"])
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(
            pool.map(lambda _: engine.evaluate(case["resource"], case["action"], case["context"]), range(200))
        )
    assert all(a == expected for a in answers)


def test_compose_services_map_to_the_container_shape(fixtures):
    resources = infrapilot.compose_resources(fixtures["compose"])
    web = resources["web"]
    assert web["config"]["user"] == "101:101"
    assert web["config"]["healthcheck"]["test"] == ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]
    assert web["config"]["healthcheck"]["interval"] == 30
    assert web["host_config"]["restart_policy"] == {"name": "unless-stopped"}
    assert web["host_config"]["memory"] == 256 * 1024 * 1024
    assert web["host_config"]["nano_cpus"] == 500_000_000
    assert web["mounts"] == [{"type": "bind", "source": "./site", "destination": "/usr/share/nginx/html", "rw": False}]
    assert web["labels"] == {"traefik.enable": "true"}
    assert resources["db"]["host_config"]["memory"] == 1024**3
    assert resources["db"]["config"]["healthcheck"]["interval"] == 90
    assert resources["worker"]["host_config"]["restart_policy"] == {"name": "on-failure", "maximum_retry_count": 5}
    assert resources["worker"]["config"]["healthcheck"] == {"test": ["NONE"]}


def test_compose_errors_locate_the_problem():
    with pytest.raises(infrapilot.ComposeError) as caught:
        infrapilot.compose_resources("services:\n  web:\n    image: [unclosed\n")
    assert caught.value.line is not None
    with pytest.raises(infrapilot.ComposeError) as caught:
        infrapilot.compose_resources("services:\n  web:\n    mem_limit: lots\n")
    assert caught.value.field == "services.web.mem_limit"
    with pytest.raises(infrapilot.ComposeError, match="services"):
        infrapilot.compose_resources("version: '3'\n")
