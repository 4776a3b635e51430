"""`ggroute route`, `run` and `eval routing` through typer's CliRunner on the shipped config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ggroute.cli.app import app
from tests.conftest import SHIPPED


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    data = json.loads(json.dumps(SHIPPED))
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


def invoke(*args: str, stdin: str | None = None) -> Result:
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


def _corpus_sample(path: Path, per_route: int) -> Path:
    """The first `per_route` tasks of each route from the shipped corpus, with their styles."""
    corpus = Path(__file__).resolve().parents[2] / "router" / "data" / "corpus"
    rows: dict[str, list[str]] = {"coder": [], "algorithm": []}
    for file in sorted(corpus.glob("*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if len(rows[row["route"]]) < per_route:
                rows[row["route"]].append(line)
    path.write_text("\n".join(rows["coder"] + rows["algorithm"]) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_router_train_writes_a_head_that_the_config_then_routes_with(config_path: Path, tmp_path: Path) -> None:
    labeled = _corpus_sample(tmp_path / "labeled.jsonl", per_route=25)
    head = tmp_path / "my-head.json"
    result = invoke("router", "train", str(labeled), "--out", str(head), "--config", str(config_path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["n"], report["per_route"]) == (50, {"coder": 25, "algorithm": 25})
    assert report["accuracy_in_sample"] >= 0.9
    assert 0 <= report["accuracy_cross_validated"] <= 1
    assert json.loads(head.read_text(encoding="utf-8"))["routes"] == ["coder", "algorithm"]

    data = json.loads(config_path.read_text(encoding="utf-8"))
    data["router"]["head"] = "my-head.json"  # relative to the config's folder
    config_path.write_text(json.dumps(data), encoding="utf-8")
    routed = invoke("route", "Topological sort of a dependency graph", "--config", str(config_path), "--json")
    assert routed.exit_code == 0, routed.output
    assert json.loads(routed.stdout)["reason"] == "classified"


@pytest.mark.slow
def test_router_train_with_too_few_examples_says_how_many(config_path: Path, tmp_path: Path) -> None:
    labeled = _corpus_sample(tmp_path / "labeled.jsonl", per_route=5)
    result = invoke("router", "train", str(labeled), "--out", str(tmp_path / "h.json"), "--config", str(config_path))
    assert result.exit_code == 2
    assert "at least 20 labeled tasks per route: 'coder' has 5, 'algorithm' has 5" in result.output
    assert not (tmp_path / "h.json").exists()


def test_router_train_needs_out_and_an_existing_folder_before_any_work(config_path: Path, tmp_path: Path) -> None:
    labeled = _corpus_sample(tmp_path / "labeled.jsonl", per_route=1)
    result = invoke("router", "train", str(labeled), "--config", str(config_path))
    assert result.exit_code == 2 and "--out FILE is required" in result.output
    result = invoke("router", "train", str(labeled), "--out", str(tmp_path / "no" / "h.json"), "--config",
                    str(config_path))
    assert result.exit_code == 2 and f"folder {tmp_path / 'no'} does not exist" in " ".join(result.output.split())
    assert not (tmp_path / "no").exists()


def test_router_train_with_unknown_features_names_the_choices(config_path: Path, tmp_path: Path) -> None:
    result = invoke("router", "train", str(tmp_path), "--features", "bogus", "--config", str(config_path))
    assert result.exit_code == 2
    assert "error: --features must be last, mean, last+mean (got 'bogus')" in result.stderr
    assert "Value error" not in result.output


@pytest.mark.slow
def test_eval_routing_by_source_reports_each_style(config_path: Path, tmp_path: Path) -> None:
    labeled = _corpus_sample(tmp_path / "labeled.jsonl", per_route=3)
    result = invoke("eval", "routing", str(labeled), "--by-source", "--json", "--config", str(config_path))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sum(s["n"] for s in report["by_source"].values()) == 6
    assert set(report["confidence"]) == {"scored", "expected_calibration_error", "wrong_above_0_9"}


@pytest.mark.slow
def test_the_readme_example_ends_without_a_thousand_token_loop(config_path: Path) -> None:
    data = json.loads(config_path.read_text(encoding="utf-8"))
    data["models"]["algorithm"]["max_tokens"] = 1024  # the shipped limit
    config_path.write_text(json.dumps(data), encoding="utf-8")
    result = invoke("run", "Find the shortest path between two cities given road lengths", "--json",
                    "--config", str(config_path))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["route"] == "algorithm"
    assert payload["finish_reason"] in ("stop", "repetition")
    assert payload["usage"]["completion_tokens"] < 200
    if payload["finish_reason"] == "repetition":
        assert payload["repetition"]["tokens_saved"] > 800


def test_run_json_lists_generate_fields_then_the_routing_fields(config_path: Path) -> None:
    result = invoke("run", "--route", "coder", "Write a function that adds two numbers", "--config", str(config_path),
                    "--json", "--code")
    assert result.exit_code == 0, result.output
    keys = list(json.loads(result.stdout))
    assert keys.index("code_parses") < keys.index("route")  # json-output.md: generate's fields (code ones too) first
    assert keys[-5:] == ["route", "confidence", "reason", "route_latency_ms", "probabilities"]
