"""Routing with the real router model (SmolLM2 from the shipped config)."""

from __future__ import annotations

import json

import pytest

from ggroute.core.errors import ConfigError, UsageError
from ggroute.models.config import RouterConfig, parse_config
from ggroute.router.pipeline import Pipeline
from ggroute.router.routing import RouteOutcome
from tests.conftest import SHIPPED, label_logit_router, load

CLEAR_CASES = [
    ("Find the shortest path between two nodes in a weighted graph with Dijkstra's algorithm", "algorithm"),
    ("Compute the longest common subsequence of two strings with dynamic programming", "algorithm"),
    ("Write a Dockerfile for a Django app served by gunicorn", "coder"),
    ("Add a REST endpoint to our Flask app that deletes a user by id", "coder"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("task", "expected"), CLEAR_CASES)
def test_clear_cases_route_as_expected(shipped_pipeline: Pipeline, task: str, expected: str) -> None:
    outcome = shipped_pipeline.route(task)
    assert outcome.route == expected
    assert outcome.reason == "classified"
    assert outcome.model == expected  # shipped routes run on the model of the same name


@pytest.mark.slow
def test_calibrated_probabilities_sum_to_one(shipped_pipeline: Pipeline) -> None:
    outcome = shipped_pipeline.route("Reverse a singly linked list in place")
    assert set(outcome.probabilities) == {"coder", "algorithm"}
    assert sum(outcome.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert outcome.confidence == pytest.approx(max(outcome.probabilities.values()), abs=1e-3)


@pytest.mark.slow
def test_prefix_kv_state_is_reused(shipped_pipeline: Pipeline) -> None:
    first = shipped_pipeline.route("Implement binary search over a sorted array")
    second = shipped_pipeline.route("Write a bash script that rotates nginx logs")
    classifier = shipped_pipeline.router._classifier
    assert classifier is not None
    prefix = len(classifier.prefix_tokens)
    # Only the task and the "Category:" suffix are evaluated; the few-shot prefix comes from the KV cache.
    assert second.evaluated_tokens < prefix
    assert first.evaluated_tokens < prefix


@pytest.mark.slow
def test_long_task_is_cut_to_fit_and_still_routed(shipped_pipeline: Pipeline) -> None:
    code = "def handler(event):\n    return process(event)\n" * 600  # far beyond the router's 2048 tokens
    outcome = shipped_pipeline.route("Fix the bug in this Lambda handler:\n" + code)
    assert outcome.truncated is True
    assert outcome.route in {"coder", "algorithm"}
    assert outcome.reason == "classified"


@pytest.mark.slow
def test_task_over_max_task_tokens_is_cut_to_head_and_tail(shipped_pipeline: Pipeline) -> None:
    classifier = shipped_pipeline.router._classifier
    assert classifier is not None
    limit = shipped_pipeline.router.require_config().max_task_tokens
    words = " ".join(f"step{i}" for i in range(200))  # well inside the context, far over max_task_tokens
    outcome = shipped_pipeline.route(f"Refactor this deployment script: {words}")
    assert outcome.truncated is True
    assert outcome.evaluated_tokens <= limit + len(classifier.suffix_tokens)
    short = shipped_pipeline.route("Write a bash script that rotates nginx logs")
    assert short.truncated is False


@pytest.mark.slow
def test_low_confidence_uses_default_route_and_says_why(routed_config) -> None:
    def edit(data: dict) -> None:
        data["router"]["min_confidence"] = 1.0
        data["router"]["default_route"] = "algorithm"

    with Pipeline(load(routed_config(edit))) as pipeline:
        outcome = pipeline.route("Write a Dockerfile for a Django app")
    assert outcome.route == "algorithm"
    assert "below min_confidence 1.0: using default_route" in outcome.reason
    assert outcome.confidence is not None


def test_missing_router_model_falls_back_with_reason(routed_config, tmp_path) -> None:
    def edit(data: dict) -> None:
        data["models"]["router"]["path"] = str(tmp_path / "missing.gguf")

    with Pipeline(load(routed_config(edit))) as pipeline:
        outcome = pipeline.route("Find the shortest path in a graph")
    assert outcome.route == "coder"
    assert outcome.confidence is None
    assert "router model unavailable" in outcome.reason and "not found" in outcome.reason


def test_router_over_budget_falls_back(routed_config) -> None:
    def edit(data: dict) -> None:
        data["models"]["router"]["context_size"] = 32768
        data["memory_budget_mb"] = 400

    with Pipeline(load(routed_config(edit))) as pipeline:
        outcome = pipeline.route("Find the shortest path in a graph")
    assert outcome.route == "coder"
    assert "router model unavailable" in outcome.reason and "budget" in outcome.reason


@pytest.mark.slow
def test_router_timeout_falls_back(routed_config) -> None:
    def edit(data: dict) -> None:
        data["models"]["router"]["timeout_s"] = 0.001

    with Pipeline(load(routed_config(edit))) as pipeline:
        outcome = pipeline.route("Find the shortest path in a graph")
    assert outcome.route == "coder"
    assert "timed out" in outcome.reason


def test_forced_route_and_unknown_route(shipped_pipeline: Pipeline) -> None:
    forced = shipped_pipeline.route("Write a Dockerfile", forced_route="algorithm")
    assert forced == RouteOutcome("algorithm", "algorithm", None, "forced by --route", 0.0)
    with pytest.raises(UsageError, match="unknown route 'nope': the routes are coder, algorithm"):
        shipped_pipeline.route("x", forced_route="nope")


def test_empty_task_is_a_usage_error(shipped_pipeline: Pipeline) -> None:
    with pytest.raises(UsageError, match="empty"):
        shipped_pipeline.route("   \n")


@pytest.mark.slow
def test_third_route_by_config_only(routed_config) -> None:
    def edit(data: dict) -> None:
        label_logit_router(data)  # the shipped head knows two routes; content-free calibration needs no fit
        data["router"]["routes"]["general"] = {
            "model": "coder",
            "description": "questions about concepts, explanations, career and tooling advice, no code to write",
            "examples": [
                "What is the difference between a process and a thread?",
                "Explain what a REST API is",
                "Which laptop should I buy for programming?",
                "How do I prepare for a job interview as a junior developer?",
            ],
        }
        data["router"]["min_confidence"] = 0.34  # three routes: chance is 1/3

    with Pipeline(load(routed_config(edit))) as pipeline:
        outcome = pipeline.route("Should I learn Rust or Go first?")
    assert set(outcome.probabilities) == {"coder", "algorithm", "general"}
    assert sum(outcome.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert outcome.route == "general"


@pytest.mark.slow
def test_a_route_head_trained_for_other_routes_is_refused_not_used(routed_config) -> None:
    def edit(data: dict) -> None:
        data["router"]["routes"]["general"] = {"model": "coder", "description": "questions about concepts"}

    with Pipeline(load(routed_config(edit))) as pipeline, pytest.raises(ConfigError, match="retrain it"):
        pipeline.route("Should I learn Rust or Go first?")


@pytest.mark.slow
def test_a_route_head_for_other_examples_is_refused_not_used(routed_config) -> None:
    def edit(data: dict) -> None:
        data["router"]["routes"]["coder"]["examples"].append("Write a Makefile for a C project")

    with Pipeline(load(routed_config(edit))) as pipeline, pytest.raises(ConfigError, match="prefix_sha256"):
        pipeline.route("Write a Dockerfile")


@pytest.mark.slow
def test_the_field_report_request_routes_to_coder(shipped_pipeline: Pipeline) -> None:
    # The example request of ../shared/reference/cpu-router-field-report.md (issue 10).
    outcome = shipped_pipeline.route("Create functions for add, subtract, multiply, and divide")
    assert (outcome.route, outcome.reason) == ("coder", "classified")


@pytest.mark.slow
def test_the_bf16_head_routes_the_router_with_bf16_weights(routed_config) -> None:
    """router-head.json, for the shipped router with `"weights_type": "bf16"` (docs/routing.md), matches it: a
    change to the router's prefix or model must retrain it too, or this fails."""
    def edit(data: dict) -> None:
        data["models"]["router"]["weights_type"] = "bf16"
        data["router"]["head"] = "pkg:ggroute.models/router-head.json"

    with Pipeline(load(routed_config(edit))) as pipeline:
        for task, expected in [*CLEAR_CASES, ("Create functions for add, subtract, multiply, and divide", "coder")]:
            outcome = pipeline.route(task)
            assert (outcome.route, outcome.reason) == (expected, "classified"), task


def test_prefix_starts_with_the_configured_instruction() -> None:
    from ggroute.router.classify import build_prefix

    data = json.loads(json.dumps(SHIPPED["router"]))
    data["instruction"] = "Sort these   tasks\ninto two piles."
    prefix = build_prefix(RouterConfig.model_validate(data))
    assert prefix.startswith("Sort these tasks into two piles.\n\nCategories:\n- coder: ")
    assert prefix.endswith("Category: algorithm\nTask:")


def test_route_naming_unknown_model_is_a_config_error(routed_config) -> None:
    def edit(data: dict) -> None:
        data["router"]["routes"]["coder"]["model"] = "gpt-9"

    path = routed_config(edit)
    with pytest.raises(ConfigError, match="route 'coder' names model 'gpt-9'"):
        parse_config(path.read_text(), path)


@pytest.mark.slow
def test_routes_sharing_a_first_token_are_rejected(routed_config) -> None:
    def edit(data: dict) -> None:
        label_logit_router(data)
        # For SmolLM2, " coder" and " cuda" both begin with the token " c".
        data["router"]["routes"]["cuda"] = {"model": "coder", "description": "GPU kernels"}

    with Pipeline(load(routed_config(edit))) as pipeline, pytest.raises(ConfigError, match="same token"):
        pipeline.route("Write a Dockerfile")
