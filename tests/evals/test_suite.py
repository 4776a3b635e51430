"""Suite files: schema validation and the checks against a config (pure logic: no model is loaded)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ggroute.core.errors import SuiteFileError
from ggroute.evals.suite import Suite, check_against_config, load_suite
from tests.conftest import SHIPPED, load

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "suites"


def write_suite(tmp_path: Path, data: object, name: str = "s.suite.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def suite_data(*cases: dict, **top: object) -> dict:
    return {"name": "t", "phase": 2, **top, "cases": list(cases)}


def problems(tmp_path: Path, data: object) -> str:
    with pytest.raises(SuiteFileError) as info:
        load_suite(write_suite(tmp_path, data))
    return str(info.value)


def test_valid_suite_loads_and_normalizes_single_strings(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, suite_data(
        {"id": "a", "task": "say hi", "checks": {"contains": "hi", "regex": "h.", "finish_reason": "stop"}},
        {"id": "b", "task": "route me", "route": None, "expect_route": "coder", "max_tokens": 4},
        defaults={"route": "coder", "max_tokens": 16},
    )))
    first, second = suite.cases
    assert first.checks.contains == ["hi"] and first.checks.regex == ["h."]
    assert first.checks.finish_reason == ["stop"]
    assert suite.target(first).route == "coder" and suite.target(first).max_tokens == 16
    assert second.max_tokens == 4 and suite.generate is True
    assert suite.target(second).route is None  # "route": null: this case goes through the router


def test_case_route_or_model_replaces_the_default_target(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, suite_data(
        {"id": "a", "task": "x", "model": "algorithm", "checks": {"contains": "x"}},
        {"id": "b", "task": "x", "checks": {"contains": "x"}},
        defaults={"route": "coder", "timeout_s": 5},
    )))
    a, b = (suite.target(c) for c in suite.cases)
    assert (a.route, a.model, a.timeout_s) == (None, "algorithm", 5)
    assert (b.route, b.model) == ("coder", None)


def test_errors_name_file_case_id_and_field(tmp_path: Path) -> None:
    message = problems(tmp_path, suite_data(
        {"id": "ok", "task": "x", "checks": {"contanis": "x"}},
        {"id": "blank", "task": "   ", "checks": {"regex": 3}},
        {"task": "no id", "checks": {"max_seconds": -1}},
    ))
    assert str(tmp_path / "s.suite.json") in message
    assert "case 'ok': checks.contanis: unknown key" in message
    assert "case 'blank': task: the task is blank" in message
    assert "case 'blank': checks.regex: must be a string or a list of strings (got 3)" in message
    assert "case #3 (no valid id): id: Field required" in message
    assert "case #3 (no valid id): checks.max_seconds: Input should be greater than 0" in message


@pytest.mark.parametrize(("data", "expected"), [
    ({"phase": 1, "cases": []}, "name: Field required"),
    (suite_data(), "cases: List should have at least 1 item"),
    (suite_data({"id": "a", "task": "x"}, phase=0), "phase: Input should be greater than or equal to 1"),
    (suite_data({"id": "a", "task": "x"}, extra=1), "extra: unknown key"),
    (suite_data({"id": "a b", "task": "x", "expect_route": "coder"}), "case 'a b': id: String should match"),
    (suite_data({"id": "a", "task": "x", "checks": {"finish_reason": "done"}}), "checks.finish_reason.0: Input"),
    (suite_data({"id": "a", "task": "x", "checks": {"contains": [""]}}), "must not contain an empty string"),
    (suite_data({"id": "a", "task": "x", "route": "coder", "model": "coder", "checks": {"contains": "x"}}),
     "case 'a': (top level): give `route` or `model`, not both"),
    (suite_data({"id": "a", "task": "x", "checks": {"python_timeout_s": 3}}),
     "python_timeout_s is set but there is no `python` check"),
])
def test_schema_errors(tmp_path: Path, data: dict, expected: str) -> None:
    assert expected in problems(tmp_path, data)


def test_duplicate_case_ids(tmp_path: Path) -> None:
    case = {"id": "same", "task": "x", "expect_route": "coder"}
    assert "case id 'same' is used twice" in problems(tmp_path, suite_data(case, case))


def test_cases_that_cannot_fail_are_rejected(tmp_path: Path) -> None:
    message = problems(tmp_path, suite_data(
        {"id": "nothing", "task": "x"},
        {"id": "forced", "task": "x", "route": "coder", "expect_route": "coder"},
        {"id": "by-default", "task": "x", "expect_route": "coder", "checks": {"contains": "x"}},
        defaults={"model": "coder"},
    ))
    assert "case 'nothing': checks: the case checks nothing; add checks or expect_route" in message
    assert "case 'forced': expect_route: the case skips the router (route 'coder')" in message
    assert "case 'by-default': expect_route: the case skips the router (model 'coder')" in message


def test_routing_only_suite_rules(tmp_path: Path) -> None:
    message = problems(tmp_path, suite_data(
        {"id": "checks", "task": "x", "expect_route": "coder", "checks": {"contains": "x"}},
        {"id": "no-expect", "task": "x"},
        {"id": "limits", "task": "x", "expect_route": "coder", "max_tokens": 3},
        generate=False,
    ))
    assert "case 'checks': checks: a routing-only suite (generate: false) cannot check output" in message
    assert "case 'no-expect': expect_route: required when generate is false" in message
    assert "case 'limits': max_tokens: has no effect when generate is false" in message
    defaults = problems(tmp_path, suite_data({"id": "a", "task": "x", "expect_route": "coder"}, generate=False,
                                             defaults={"route": "coder"}))
    assert "defaults.route has no effect when generate is false" in defaults


@pytest.mark.parametrize(("text", "expected"), [
    ('{"name": "t",\n "phase": }', "invalid JSON at line 2, column 11"),
    ("[1, 2]", "(top level): Input should be a valid dictionary"),
    # Found by tests/fuzz: json.loads raised RecursionError and ValueError on these (a traceback in the CLI).
    ('{"name": "t", "phase": 1, "cases": ' + "[" * 50_000 + "]" * 50_000 + "}", "invalid JSON: nested too deeply"),
    ('{"name": "t", "phase": 1' + "0" * 5000 + "}", "invalid JSON: a number with more than 4300 digits"),
    ('{"name": "t",\n "phase": 1,\n "name": "u"}',
     "duplicate key 'name' at line 3, column 2: the same object has it at line 1, column 2"),
], ids=["invalid", "not an object", "deep nesting", "long number", "repeated key"])
def test_not_a_suite_object(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problems(tmp_path, text)


def test_a_case_repeating_a_key_is_refused(tmp_path: Path) -> None:
    text = json.dumps(suite_data({"id": "a", "task": "x", "checks": {"contains": "x"}}), indent=1)
    text = text.replace('"contains": "x"', '"contains": "x",\n "contains": "y"')
    message = problems(tmp_path, text)
    assert "duplicate key 'contains' at line 10, column 2: the same object has it at line 9, column 5" in message


def test_bytes_that_are_not_utf8_are_refused_naming_line_and_column(tmp_path: Path) -> None:
    # Refused, not replaced: a U+FFFD in an expected string would make a check fail for a reason nobody wrote.
    path = tmp_path / "s.suite.json"
    path.write_bytes(b'{"name": "t", "phase": 2, "cases": [\n {"id": "a", "task": "caf\xe9", "checks": {}}]}')
    with pytest.raises(SuiteFileError) as info:
        load_suite(path)
    assert str(info.value) == f"{path}: suite file is not UTF-8: line 2, column 26 (byte 0xe9); save it as UTF-8"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteFileError, match="suite file not found"):
        load_suite(tmp_path / "nope.suite.json")


def test_unknown_routes_and_models_against_the_config(tmp_path: Path, routed_config: Callable[..., Path]) -> None:
    path = write_suite(tmp_path, suite_data(
        {"id": "r", "task": "x", "route": "writer", "checks": {"contains": "x"}},
        {"id": "e", "task": "x", "expect_route": "poetry"},
        {"id": "m", "task": "x", "model": "gpt", "checks": {"contains": "x"}},
        {"id": "fine", "task": "x", "expect_route": "algorithm"},
    ))
    with pytest.raises(SuiteFileError) as info:
        check_against_config(path, load_suite(path), load(routed_config()))
    message = str(info.value)
    assert "case 'r': route: unknown route 'writer': the routes are coder, algorithm" in message
    assert "case 'e': expect_route: unknown route 'poetry'" in message
    assert "case 'm': model: unknown model 'gpt'" in message
    assert "'fine'" not in message


def test_a_config_without_router_can_only_run_model_cases(tmp_path: Path, routed_config: Callable[..., Path]) -> None:
    config = load(routed_config(lambda data: data.pop("router")))
    path = write_suite(tmp_path, suite_data(
        {"id": "m", "task": "x", "model": "coder", "checks": {"contains": "x"}},
        {"id": "routed", "task": "x", "checks": {"contains": "x"}},
    ))
    with pytest.raises(SuiteFileError, match="case 'routed': the config has no `router` section"):
        check_against_config(path, load_suite(path), config)


@pytest.mark.parametrize("name", ["phase1.suite.json", "phase2.suite.json", "phase3.suite.json"])
def test_shipped_example_suites_are_valid(name: str, tmp_path: Path) -> None:
    path = EXAMPLES / name
    suite = load_suite(path)
    assert isinstance(suite, Suite) and suite.phase == int(name[5])
    config = tmp_path / "config.json"
    config.write_text(json.dumps(SHIPPED))
    check_against_config(path, suite, load(config))
    if suite.phase == 1:
        assert suite.generate is False and len(suite.cases) >= 20


def test_docs_embed_the_generated_field_reference() -> None:
    from ggroute.evals.suite_docs import markdown_reference

    docs = (EXAMPLES.parent / "suites.md").read_text(encoding="utf-8")
    embedded = docs.split("<!-- generated:start -->\n", 1)[1].split("<!-- generated:end -->", 1)[0]
    assert embedded == markdown_reference(), "regenerate the reference at the end of docs/suites.md"
