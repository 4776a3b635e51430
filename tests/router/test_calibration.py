"""Calibration: the fit (pure), its validation in config, and its use by the real router."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ggroute.core.errors import ConfigError
from ggroute.models.config import CalibrationConfig
from ggroute.router.calibrate import accuracy, fit_calibration
from ggroute.router.pipeline import Pipeline
from tests.conftest import LABEL_LOGIT_CALIBRATION, label_logit_router, load


def test_fit_recovers_a_shifted_boundary() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=400)
    # Route 1's logit is biased up by 2: uncalibrated argmax calls almost everything route 1.
    margin = np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 0.5, size=400) + 2.0
    logits = np.stack([np.zeros(400), margin], axis=1)
    routes = ["coder", "algorithm"]
    assert accuracy(logits, labels, CalibrationConfig(offsets={"coder": 0.0, "algorithm": 0.0}), routes) < 0.6
    fitted = fit_calibration(logits, labels, routes)
    assert fitted.offsets["coder"] == 0.0
    assert fitted.offsets["algorithm"] / fitted.scale == pytest.approx(-2.0, abs=0.3)
    assert accuracy(logits, labels, fitted, routes) > 0.95


def test_calibration_offsets_must_name_exactly_the_routes(routed_config) -> None:
    def edit(data: dict) -> None:
        label_logit_router(data, {"scale": 1.0, "offsets": {"coder": 0.0}})

    with pytest.raises(ConfigError, match="calibration.offsets must name exactly the routes"):
        load(routed_config(edit))


@pytest.mark.slow
def test_configured_calibration_is_what_the_router_applies(routed_config) -> None:
    with Pipeline(load(routed_config(lambda data: label_logit_router(data, LABEL_LOGIT_CALIBRATION)))) as pipeline:
        outcome = pipeline.route("Serialize a binary tree to a string and back")
    calibration = LABEL_LOGIT_CALIBRATION
    scores = {r: calibration["scale"] * x + calibration["offsets"][r] for r, x in outcome.label_logits.items()}
    top = max(scores.values())
    total = sum(math.exp(s - top) for s in scores.values())
    for route, score in scores.items():
        assert outcome.probabilities[route] == pytest.approx(math.exp(score - top) / total, abs=1e-3)


@pytest.mark.slow
def test_without_calibration_content_free_inputs_are_used(routed_config) -> None:
    with Pipeline(load(routed_config(label_logit_router))) as pipeline:
        outcome = pipeline.route("Find the minimum spanning tree of a weighted graph")
        classifier = pipeline.router._classifier
    assert classifier is not None and classifier.scale == 1.0
    assert sum(outcome.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert outcome.probabilities != outcome.label_logits
    assert outcome.route == "algorithm"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_label_logits_are_an_error_not_a_uniform_guess(bad: float) -> None:
    from ggroute.core.errors import RouterModelError
    from ggroute.router.classify import _softmax

    with pytest.raises(RouterModelError, match="non-finite label logits"):
        _softmax(np.array([1.0, bad]))


def test_a_router_model_error_routes_to_the_default_with_the_reason(routed_config, monkeypatch) -> None:
    from ggroute.core.errors import RouterModelError
    from ggroute.router import routing

    def broken(self: routing.Router, task: str, started: float) -> None:
        raise RouterModelError("the router model returned non-finite label logits ([nan, 1.0])")

    monkeypatch.setattr(routing.Router, "_classify", broken)
    with Pipeline(load(routed_config())) as pipeline:
        outcome = pipeline.route("Write a Dockerfile")
    assert outcome.route == "coder" and outcome.confidence is None
    assert outcome.reason.startswith("router model unavailable: the router model returned non-finite label logits")
