"""`ggroute route`, `run` and `eval routing` through typer's CliRunner on the shipped config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ggroute.cli.app import app
from ggroute.models.config import packaged_default_config


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    data = json.loads(packaged_default_config().read_text(encoding="utf-8"))
    data["log_file"] = str(tmp_path / "requests.jsonl")
    data["models"]["coder"]["max_tokens"] = 24
    data["models"]["algorithm"]["max_tokens"] = 24
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def labeled(tmp_path: Path) -> Path:
    """Four unambiguous labeled tasks, two per route."""
    rows = [
        {"task": "Topological sort of a dependency graph", "route": "algorithm"},
        {"task": "Detect a cycle in a directed graph", "route": "algorithm"},
        {"task": "Write a GitHub Actions workflow that runs pytest", "route": "coder"},
        {"task": "Add a REST endpoint that deletes a user by id", "route": "coder"},
    ]
    path = tmp_path / "dev.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def invoke(*args: str, stdin: str | None = None):  # noqa: ANN201
    return CliRunner().invoke(app, list(args), input=stdin)


@pytest.mark.slow
def test_route_json_has_every_probability(config_path: Path) -> None:
    result = invoke("route", "Detect a cycle in a directed graph", "-c", str(config_path), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["route"] == "algorithm"
    assert set(payload["probabilities"]) == {"coder", "algorithm"}
    assert payload["latency_ms"] > 0


@pytest.mark.slow
def test_run_json_adds_route_fields_and_logs_them(config_path: Path, tmp_path: Path) -> None:
    result = invoke("run", "Write a Dockerfile for a Django app", "-c", str(config_path), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["route"] == "coder" and payload["model"] == "coder"
    assert payload["reason"] == "classified"
    assert 0.5 <= payload["confidence"] <= 1.0
    assert payload["route_latency_ms"] > 0
    assert 0 < payload["usage"]["completion_tokens"] <= 24
    lines = (tmp_path / "requests.jsonl").read_text().splitlines()
    assert len(lines) == 1
    logged = json.loads(lines[0])
    assert logged["route"] == "coder" and logged["reason"] == "classified"
    assert logged["route_latency_ms"] == payload["route_latency_ms"]


@pytest.mark.slow
def test_run_streams_with_header_and_footer(config_path: Path) -> None:
    result = invoke("run", "Write a Dockerfile for a Django app", "-c", str(config_path), "--route", "coder")
    assert result.exit_code == 0, result.output
    assert "route=coder confidence=- model=coder (forced by --route" in result.stderr
    assert "decode" in result.stderr and "tok/s" in result.stderr
    assert result.stdout.strip()


def test_unknown_route_lists_routes(config_path: Path) -> None:
    result = invoke("run", "anything", "-c", str(config_path), "--route", "nope")
    assert result.exit_code == 2
    assert "unknown route 'nope': the routes are coder, algorithm" in result.stderr


@pytest.mark.parametrize("command", ["run", "route"])
def test_empty_task_is_a_usage_error(config_path: Path, command: str) -> None:
    result = invoke(command, "  ", "-c", str(config_path))
    assert result.exit_code == 2
    assert "task is empty" in result.stderr


def test_config_without_router_section(tmp_path: Path) -> None:
    path = tmp_path / "single.json"
    path.write_text(json.dumps({"models": {"coder": {"max_tokens": 8}}}))
    result = invoke("run", "hello", "-c", str(path))
    assert result.exit_code == 2
    assert "no `router` section" in result.stderr


@pytest.mark.slow
def test_eval_routing_json(config_path: Path, labeled: Path) -> None:
    result = invoke("eval", "routing", str(labeled), "-c", str(config_path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 4
    assert report["accuracy"] == 1.0
    assert report["fallbacks"] == 0
    assert report["latency_ms"]["p50"] > 0 and report["latency_ms"]["p95"] >= report["latency_ms"]["p50"]
    assert report["confusion"]["coder"]["coder"] == 2


def test_eval_routing_bad_line_names_file_and_line(config_path: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"task": "a", "route": "coder"}\n{"task": "b", "route": "frontend"}\n')
    result = invoke("eval", "routing", str(data), "-c", str(config_path))
    assert result.exit_code == 2
    assert f"{data}:2: route 'frontend' is not one of coder, algorithm" in result.stderr


@pytest.mark.slow
def test_eval_routing_fit_prints_a_calibration_block(config_path: Path, labeled: Path) -> None:
    result = invoke("eval", "routing", str(labeled), "-c", str(config_path), "--json", "--fit")
    assert result.exit_code == 0, result.output
    fit = json.loads(result.stdout)["fit"]
    assert fit["n"] == 4
    assert set(fit["calibration"]["offsets"]) == {"coder", "algorithm"}
    assert fit["calibration"]["offsets"]["coder"] == 0.0
    assert fit["accuracy_in_sample"] == 1.0
