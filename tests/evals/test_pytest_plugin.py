"""The pytest plugin, run inside pytester sessions (in-process) against the real models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# pytester's in-process runs drop the modules each run imported, and numpy's C extension cannot be imported
# twice in one process: the engine (llama_cpp, which imports numpy) is imported once here, outside the runs.
import llama_cpp  # noqa: E402, F401
import pytest

from tests.conftest import small_routed_config

pytest_plugins = ["pytester"]

PARIS = "What is the capital of France? Answer in one word."
ADD = "Write a Python function add(a, b) that returns the sum of a and b."
SUITE = {
    "name": "plugin",
    "phase": 2,
    "defaults": {"route": "coder", "max_tokens": 16},
    "cases": [
        {"id": "paris", "task": PARIS, "checks": {"contains": "Paris"}},
        {"id": "berlin", "task": PARIS, "checks": {"contains": "Berlin", "finish_reason": "stop"}},
        {"id": "add", "task": ADD, "max_tokens": 64, "checks": {"python": "assert add(2, 3) == 6"}},
        {"id": "graph", "task": "Detect a cycle in a directed graph", "route": None, "max_tokens": 4,
         "expect_route": "algorithm"},
    ],
}


def write_suite(pytester: pytest.Pytester, name: str = "phase2.suite.json", data: object = SUITE) -> Path:
    path = pytester.path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def config(pytester: pytest.Pytester) -> Path:
    return small_routed_config(pytester.path / "ggroute-config.json")


@pytest.mark.slow
def test_cases_are_items_and_failures_say_what_failed(pytester: pytest.Pytester, config: Path) -> None:
    write_suite(pytester)
    result = pytester.runpytest("--ggroute-config", str(config), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    text = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*ggroute case 'berlin' of suite 'plugin' failed",
        f"task:   {PARIS}",
        "route:  coder (route given by the suite)",
        "failed checks:",
        "  contains: output must contain 'Berlin'",
        "output:",
        "*Paris*",
    ])
    assert "add: python: " not in text
    result.stdout.fnmatch_lines([
        "*ggroute case 'add' of suite 'plugin' failed",
        f"task:   {ADD}",
        "  python: exit code 1: AssertionError (in the test, line 1: assert add(2, 3) == 6)",
        "    | AssertionError",
    ])
    result.stdout.fnmatch_lines(["*phase2.suite.json::berlin*", "*phase2.suite.json::add*"])
    assert "pytest_plugin.py" not in text and "suite_run.py" not in text  # no traceback of ours
    result.stdout.fnmatch_lines(["ggroute sandbox: bwrap *namespaces*"])  # the header says how code is contained


@pytest.mark.slow
def test_unsafe_no_sandbox_option_runs_python_checks_and_warns(pytester: pytest.Pytester, config: Path) -> None:
    one = {**SUITE, "cases": [{"id": "add", "task": ADD, "max_tokens": 64,
                               "checks": {"python": "import os\nassert os.path.exists('/etc/passwd')\n"
                                                    "assert add(2, 3) == 6"}}]}
    write_suite(pytester, data=one)
    result = pytester.runpytest("--ggroute-config", str(config), "-p", "no:cacheprovider", "--unsafe-no-sandbox")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["ggroute: warning: --unsafe-no-sandbox: generated code runs WITHOUT isolation*"])
    # Unisolated, the host's /etc/passwd is visible: the failure is the model's assertion, one line later.
    result.stdout.fnmatch_lines(["*python: exit code 1: AssertionError (in the test, line 3: assert add(2, 3) == 6)"])


@pytest.mark.slow
def test_ini_setting_and_markers_select_cases(pytester: pytest.Pytester, config: Path) -> None:
    write_suite(pytester)
    pytester.makeini(f"[pytest]\nggroute_config = {config.name}\n")
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-m", "ggroute", "-k", "paris or graph")
    result.assert_outcomes(passed=2, deselected=3)
    plain = pytester.runpytest("-p", "no:cacheprovider", "-m", "not ggroute")
    plain.assert_outcomes(passed=1, deselected=4)


@pytest.mark.slow
def test_ggroute_suite_option_collects_any_name(pytester: pytest.Pytester, config: Path) -> None:
    custom = write_suite(pytester, "smoke.json", {**SUITE, "cases": SUITE["cases"][:1]})
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    alone = pytester.runpytest("--ggroute-config", str(config), "--ggroute-suite", str(custom),
                               "-p", "no:cacheprovider")
    alone.assert_outcomes(passed=1)  # no path arguments: only the suite runs
    both = pytester.runpytest(".", "--ggroute-config", str(config), "--ggroute-suite", str(custom),
                              "-p", "no:cacheprovider")
    both.assert_outcomes(passed=2)
    missing = pytester.runpytest("--ggroute-suite", "nope.json")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--ggroute-suite */nope.json: file not found*"])


def test_bad_suite_is_a_collection_error_with_the_message(pytester: pytest.Pytester, config: Path) -> None:
    write_suite(pytester, data={"name": "x", "phase": 2, "cases": [{"id": "c1", "task": "t", "checks": {"regx": 1}}]})
    result = pytester.runpytest("--ggroute-config", str(config), "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*1 problem(s) in suite:", "  case 'c1': checks.regx: unknown key*"])
    assert "Traceback" not in result.stdout.str()


def test_unknown_route_and_bad_config_fail_the_items(pytester: pytest.Pytester, config: Path) -> None:
    write_suite(pytester, data={"name": "x", "phase": 2, "cases": [{"id": "c1", "task": "t", "expect_route": "zz"}]})
    result = pytester.runpytest("--ggroute-config", str(config), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*case 'c1': expect_route: unknown route 'zz'*"])
    no_config = pytester.runpytest("--ggroute-config", "missing.json", "-p", "no:cacheprovider")
    no_config.assert_outcomes(failed=1)
    no_config.stdout.fnmatch_lines(["*missing.json: config file not found*"])


def test_plugin_is_registered_and_cheap_to_import() -> None:
    code = ("import sys, ggroute.evals.pytest_plugin as p; "
            "print(sorted(m for m in sys.modules if m.startswith(('ggroute.models', 'llama_cpp', 'pydantic'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("ggroute") == "ggroute.evals.pytest_plugin"


@pytest.mark.slow
def test_a_suite_path_argument_with_a_case_id(pytester: pytest.Pytester, config: Path) -> None:
    write_suite(pytester, "custom.suite.json")  # not phase*: collected because it is named on the command line
    result = pytester.runpytest("custom.suite.json::paris", "--ggroute-config", str(config), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
