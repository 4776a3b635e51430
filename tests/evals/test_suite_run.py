"""Running suite cases: the checks on their own (real sandbox, given text), then cases on the real models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ggroute.evals.suite import Suite
from ggroute.evals.suite_run import build_report, python_check, regex_check, run_case, summarize
from ggroute.router.pipeline import Pipeline
from tests.conftest import load, small_routed_config

ADD_TASK = "Write a Python function add(a, b) that returns the sum of a and b."
ADD_CODE = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nIt adds the numbers."


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    config = small_routed_config(tmp_path_factory.mktemp("suite-run") / "config.json")
    with Pipeline(load(config)) as pipe:
        yield pipe


def test_python_check_runs_extracted_code_then_the_test() -> None:
    result = python_check(ADD_CODE, "assert add(2, 3) == 5", timeout_s=10)
    assert result.passed, result.detail


def test_python_check_failure_points_at_the_test_line() -> None:
    result = python_check(ADD_CODE, "assert add(1, 1) == 2\nassert add(2, 3) == 6", timeout_s=10)
    assert not result.passed
    assert result.detail == "exit code 1: AssertionError (in the test, line 2: assert add(2, 3) == 6)"
    assert "AssertionError" in result.stderr


def test_python_check_blames_generated_code_that_does_not_compile() -> None:
    result = python_check("```python\ndef add(a, b)\n    return a + b\n```", "assert add(2, 3) == 5", timeout_s=10)
    assert not result.passed
    assert result.detail.startswith("exit code 1: SyntaxError")
    assert "(in the generated code, line 1: def add(a, b))" in result.detail


def test_python_check_whose_test_does_not_compile_fails_with_the_reason() -> None:
    result = python_check(ADD_CODE, "assert add(2, 3) == = 5", timeout_s=10)
    assert not result.passed
    assert result.detail.startswith("the check's test code does not compile: invalid syntax (line 1)")


@pytest.mark.slow  # waits out a time limit
def test_python_check_times_out() -> None:
    result = python_check("while True:\n    pass", "pass", timeout_s=1)
    assert not result.passed and "timed out after 1.0 s" in result.detail


def test_regex_check() -> None:
    assert regex_check(r"def add\(a, b\)", ADD_CODE).passed
    assert not regex_check(r"(?i)subtract", ADD_CODE).passed
    bad = regex_check("def add(", ADD_CODE)
    assert not bad.passed
    assert bad.detail.startswith("regex 'def add(' does not compile: missing ), unterminated subpattern")
    assert regex_check(r"\b56\b", "5600").detail == r"output must match regex '\b56\b'"  # not repr's \\b


def suite(*cases: dict, **top: object) -> Suite:
    return Suite.model_validate({"name": "unit", "phase": 2, **top, "cases": list(cases)})


@pytest.mark.slow
def test_generation_checks_pass_and_fail_on_the_real_model(pipeline: Pipeline) -> None:
    s = suite(
        {"id": "paris", "task": "What is the capital of France? Answer in one word.",
         "checks": {"contains": "Paris", "not_contains": "Berlin", "regex": "(?i)capital", "finish_reason": "stop",
                    "max_seconds": 120}},
        {"id": "wrong", "task": "What is the capital of France? Answer in one word.",
         "checks": {"contains": ["Paris", "Berlin"], "regex": "[unclosed", "finish_reason": "length"}},
        defaults={"route": "coder", "max_tokens": 24},
    )
    paris, wrong = (run_case(pipeline, Path("unit.json"), s, case) for case in s.cases)
    assert paris.passed, paris.failures
    assert paris.route == "coder" and paris.route_reason == "route given by the suite"
    assert paris.finish_reason == "stop" and paris.completion_tokens > 0 and paris.seconds > 0
    assert not wrong.passed
    failed = {(c.name, c.detail.split(":")[0]) for c in wrong.failures}
    assert failed == {("contains", "output must contain 'Berlin'"), ("regex", "regex '[unclosed' does not compile"),
                      ("finish_reason", "finish_reason 'stop', expected length")}


@pytest.mark.slow
def test_python_checks_on_generated_code(pipeline: Pipeline) -> None:
    s = suite(
        {"id": "add-ok", "task": ADD_TASK, "checks": {"python": "assert add(2, 3) == 5"}},
        {"id": "add-wrong-test", "task": ADD_TASK, "checks": {"python": "assert add(2, 3) == 6"}},
        {"id": "test-typo", "task": ADD_TASK, "checks": {"python": "assert add(2, 3) == = 5"}},
        defaults={"route": "coder", "max_tokens": 64},
    )
    ok, wrong, typo = (run_case(pipeline, Path("unit.json"), s, case) for case in s.cases)
    assert "def add" in (ok.output or "")
    assert ok.passed, ok.failures
    assert [c.detail for c in wrong.failures] == [
        "exit code 1: AssertionError (in the test, line 1: assert add(2, 3) == 6)"]
    assert typo.failures[0].detail.startswith("the check's test code does not compile")


@pytest.mark.slow
def test_routing_only_case_and_report_totals(pipeline: Pipeline) -> None:
    s = suite(
        {"id": "graph", "task": "Detect a cycle in a directed graph", "expect_route": "algorithm"},
        {"id": "docker", "task": "Write a Dockerfile for a Django app", "expect_route": "coder"},
        {"id": "mislabeled", "task": "Write a Dockerfile for a Django app", "expect_route": "algorithm"},
        generate=False,
    )
    results = [run_case(pipeline, Path("unit.json"), s, case) for case in s.cases]
    assert [r.passed for r in results] == [True, True, False]
    assert results[2].failures[0].detail.startswith("expected route 'algorithm', got 'coder' (classified)")
    assert all(r.output is None and r.decode_tokens_per_s is None for r in results)
    totals = summarize(results)
    assert totals["passed"] == 2 and totals["failed"] == 1
    assert totals["route_checked"] == 3 and totals["route_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert totals["decode_tokens_per_s_median"] is None
    report = build_report([(Path("unit.json"), s, results)], config="c.json")
    assert report["suites"][0]["name"] == "unit" and report["totals"] == totals
    assert [c["id"] for c in report["cases"]] == ["graph", "docker", "mislabeled"]
    assert report["cases"][2]["passed"] is False


@pytest.mark.slow
def test_generation_error_fails_the_case_with_the_message(pipeline: Pipeline) -> None:
    s = suite({"id": "huge", "task": "word " * 5000, "checks": {"contains": "x"}}, defaults={"route": "coder"})
    result = run_case(pipeline, Path("unit.json"), s, s.cases[0])
    assert not result.passed
    assert result.failures[0].name == "error"
    assert "context_size" in result.failures[0].detail
