"""`ggroute eval suite` through typer's CliRunner, on the real models (one thread, short generations)."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ggroute.cli.app import app
from tests.conftest import small_routed_config

PARIS = "What is the capital of France? Answer in one word."
ADD = "Write a Python function add(a, b) that returns the sum of a and b."


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["eval", "suite", *args])


def assert_exit(result: Result, code: int) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return small_routed_config(tmp_path / "config.json")


def write(tmp_path: Path, name: str, *cases: dict, **top: object) -> Path:
    path = tmp_path / name
    data = {"name": name.split(".")[0], "phase": 2, **top, "cases": list(cases)}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.slow
def test_mixed_suite_exits_1_with_json_totals_and_report(tmp_path: Path, config: Path) -> None:
    suite = write(
        tmp_path, "mixed.suite.json",
        {"id": "paris", "task": PARIS, "checks": {"contains": "Paris", "finish_reason": "stop"}},
        {"id": "berlin", "task": PARIS, "checks": {"contains": "Berlin"}},
        {"id": "add", "task": ADD, "max_tokens": 64, "checks": {"python": "assert add(2, 3) == 5"}},
        {"id": "bad-regex", "task": PARIS, "checks": {"regex": "(Paris"}},
        defaults={"route": "coder", "max_tokens": 16},
    )
    report = tmp_path / "report.json"
    result = invoke(str(suite), "-c", str(config), "--json", "--report", str(report))
    assert_exit(result, 1)
    payload = json.loads(result.stdout)
    assert json.loads(report.read_text()) == payload
    totals = payload["totals"]
    assert (totals["cases"], totals["passed"], totals["failed"]) == (4, 2, 2)
    assert totals["route_accuracy"] is None and totals["route_checked"] == 0
    assert totals["decode_tokens_per_s_median"] > 0
    cases = {c["id"]: c for c in payload["cases"]}
    assert cases["paris"]["passed"] and cases["add"]["passed"]
    assert [c["detail"] for c in cases["berlin"]["checks"] if not c["passed"]] == ["output must contain 'Berlin'"]
    regex = [c for c in cases["bad-regex"]["checks"] if not c["passed"]]
    assert regex[0]["name"] == "regex" and "does not compile" in regex[0]["detail"]
    assert "FAIL mixed: berlin" in result.stderr  # the progress lines
    assert result.stderr.startswith("sandbox: bwrap ")  # how generated code runs, also with --json (sandbox.md)


@pytest.mark.slow
def test_all_passing_suites_exit_0_with_table(tmp_path: Path, config: Path) -> None:
    routing = write(tmp_path, "routing.suite.json",
                    {"id": "graph", "task": "Detect a cycle in a directed graph", "expect_route": "algorithm"},
                    {"id": "docker", "task": "Write a Dockerfile for a Django app", "expect_route": "coder"},
                    phase=1, generate=False)
    gen = write(tmp_path, "gen.suite.json", {"id": "paris", "task": PARIS, "checks": {"contains": "Paris"}},
                defaults={"route": "coder", "max_tokens": 16})
    result = invoke(str(routing), str(gen), "-c", str(config))
    assert_exit(result, 0)
    for word in ("Suite results", "graph", "docker", "paris", "algorithm", "coder", "pass"):
        assert word in result.stdout
    assert "passed 3/3, failed 0, route accuracy 1.000 (2/2)" in result.stdout


@pytest.mark.slow
def test_phase_runs_only_that_phase(tmp_path: Path, config: Path) -> None:
    routing = write(tmp_path, "routing.suite.json",
                    {"id": "graph", "task": "Detect a cycle in a directed graph", "expect_route": "algorithm"},
                    phase=1, generate=False)
    gen = write(tmp_path, "gen.suite.json", {"id": "berlin", "task": PARIS, "checks": {"contains": "Berlin"}},
                defaults={"route": "coder", "max_tokens": 8})
    result = invoke(str(routing), str(gen), "-c", str(config), "--phase", "1", "--json")
    assert_exit(result, 0)
    payload = json.loads(result.stdout)
    assert [s["name"] for s in payload["suites"]] == ["routing"]
    assert payload["totals"]["route_accuracy"] == 1.0
    none = invoke(str(routing), str(gen), "-c", str(config), "--phase", "7")
    assert_exit(none, 2)
    assert "no suite of phase 7 among the 2 file(s) given" in none.stderr


def test_invalid_suites_exit_2_naming_file_case_and_field(tmp_path: Path, config: Path) -> None:
    bad = write(tmp_path, "bad.suite.json", {"id": "c1", "task": "x", "checks": {"regx": "a"}})
    broken = tmp_path / "broken.suite.json"
    broken.write_text("{not json")
    result = invoke(str(bad), str(broken), str(tmp_path / "missing.json"), "-c", str(config))
    assert_exit(result, 2)
    assert f"{bad}: 1 problem(s) in suite:" in result.stderr
    assert "case 'c1': checks.regx: unknown key" in result.stderr
    assert f"{broken}: invalid JSON at line 1, column 2" in result.stderr
    assert "missing.json: suite file not found" in result.stderr


def test_unknown_route_in_suite_exits_2(tmp_path: Path, config: Path) -> None:
    suite = write(tmp_path, "r.suite.json", {"id": "c1", "task": "x", "expect_route": "poetry"})
    result = invoke(str(suite), "-c", str(config))
    assert_exit(result, 2)
    assert "case 'c1': expect_route: unknown route 'poetry': the routes are coder, algorithm" in result.stderr


def test_bad_report_path_exits_2_before_running(tmp_path: Path, config: Path) -> None:
    suite = write(tmp_path, "r.suite.json", {"id": "c1", "task": "x", "expect_route": "coder"})
    result = invoke(str(suite), "-c", str(config), "--report", str(tmp_path / "no" / "such" / "r.json"))
    assert_exit(result, 2)
    assert "does not exist" in result.stderr


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A PATH without bwrap, as on a machine where bubblewrap is not installed."""
    from ggroute.evals import bwrap

    monkeypatch.setenv("PATH", "/nonexistent")
    bwrap.find_bwrap.cache_clear()
    yield
    monkeypatch.undo()
    bwrap.find_bwrap.cache_clear()


def test_python_checks_without_bwrap_exit_2_before_any_model_loads(tmp_path: Path, config: Path,
                                                                     no_bwrap: None) -> None:
    suite = write(tmp_path, "p.suite.json", {"id": "add", "task": ADD, "checks": {"python": "assert add(2, 3) == 5"}},
                  defaults={"route": "coder"})
    started = time.monotonic()
    result = invoke(str(suite), "-c", str(config))
    assert_exit(result, 2)
    assert time.monotonic() - started < 5  # refused up front, not after loading and generating
    assert "bwrap (bubblewrap) is not installed" in result.stderr
    assert "apt-get install bubblewrap" in result.stderr and "--unsafe-no-sandbox" in result.stderr


@pytest.mark.slow
def test_routing_only_suite_needs_no_sandbox(tmp_path: Path, config: Path, no_bwrap: None) -> None:
    suite = write(tmp_path, "r.suite.json", {"id": "c1", "task": "Sort a list with merge sort in O(n log n)",
                                             "expect_route": "algorithm"}, generate=False)
    result = invoke(str(suite), "-c", str(config))
    assert_exit(result, 0)
    assert "unsafe" not in result.stderr


@pytest.mark.slow
def test_unsafe_no_sandbox_runs_and_warns(tmp_path: Path, config: Path, no_bwrap: None) -> None:
    suite = write(tmp_path, "p.suite.json",
                  {"id": "add", "task": ADD, "max_tokens": 64, "checks": {"python": "assert add(2, 3) == 5"}},
                  defaults={"route": "coder"})
    result = invoke(str(suite), "-c", str(config), "--unsafe-no-sandbox", "--json")
    assert "Traceback" not in result.output
    assert "WITHOUT isolation" in result.stderr
    checks = json.loads(result.stdout)["cases"][0]["checks"]
    assert [c["name"] for c in checks] == ["python"]  # the check ran (pass or fail is the model's business)
    assert "sandbox" not in checks[0]["detail"]


def test_bad_config_exits_2(tmp_path: Path) -> None:
    suite = write(tmp_path, "r.suite.json", {"id": "c1", "task": "x", "expect_route": "coder"})
    result = invoke(str(suite), "-c", str(tmp_path / "nope.json"))
    assert_exit(result, 2)
    assert "config file not found" in result.stderr


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_reports_what_ran(tmp_path: Path, config: Path) -> None:
    story = "Write a very long and detailed story about a dragon who learns to code. Make it at least 3000 words."
    suite = write(tmp_path, "long.suite.json",
                  {"id": "paris", "task": PARIS, "checks": {"contains": "Paris"}},
                  {"id": "story", "task": story, "max_tokens": 2000, "timeout_s": 600,
                   "checks": {"contains": "dragon"}},
                  {"id": "never", "task": PARIS, "checks": {"contains": "Paris"}},
                  defaults={"route": "coder", "max_tokens": 16})
    script = Path(sys.executable).parent / "ggroute"
    command = str(script) if script.is_file() else (shutil.which("ggroute") or "ggroute")
    proc = subprocess.Popen([command, "eval", "suite", str(suite), "-c", str(config), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        seen, deadline = b"", time.monotonic() + 90
        while b"paris" not in seen and time.monotonic() < deadline:  # the first case's PASS line
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 4096)  # type: ignore[union-attr]
                if not chunk:
                    break
                seen += chunk
        assert b"PASS long: paris" in seen, seen.decode(errors="replace")
        time.sleep(2)  # the story case is generating now
        assert proc.poll() is None, "the run ended before Ctrl+C could be sent"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr.decode(errors="replace")
    assert b"interrupted" in stderr and b"Traceback" not in stderr
    payload = json.loads(stdout)
    assert [c["id"] for c in payload["cases"]] == ["paris", "story"]
    story_case = payload["cases"][1]
    assert story_case["finish_reason"] == "cancelled" and not story_case["passed"]
    assert "generation was cancelled" in [c["detail"] for c in story_case["checks"]][0]
