"""Measure routing on a labeled JSONL file: accuracy, per-route precision/recall, confusion, latency."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ggroute.core.errors import UsageError
from ggroute.evals.routing_data import LabeledTask
from ggroute.models.config import CalibrationConfig
from ggroute.router.routing import Router


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class RoutingReport:
    n: int
    accuracy: float
    fallbacks: int
    latency_ms: dict[str, float]
    per_route: dict[str, dict[str, float]]
    confusion: dict[str, dict[str, int]]  # expected -> predicted -> count
    misses: list[dict[str, object]]
    label_logits: list[list[float]]  # per row, in route order; empty rows where the router did not score
    labels: list[int]
    confidence: dict[str, float | int]  # how far confidence can be trusted (confidence_quality)
    by_source: dict[str, dict[str, float | int]]  # source style -> n, accuracy (rows without a source: none)

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k not in ("label_logits", "labels", "by_source")}


def expected_calibration_error(confidences: list[float], correct: list[bool], bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by how many decisions fall in each."""
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [i for i, c in enumerate(confidences) if low < c <= high or (b == 0 and c == 0)]
        if inside:
            accuracy = sum(correct[i] for i in inside) / len(inside)
            mean_confidence = sum(confidences[i] for i in inside) / len(inside)
            total += len(inside) / len(confidences) * abs(accuracy - mean_confidence)
    return round(total, 4)


def confidence_quality(confidences: list[float], correct: list[bool]) -> dict[str, float | int]:
    """Expected calibration error and the share of all decisions that were wrong at confidence above 0.9."""
    if not confidences:
        return {"scored": 0, "expected_calibration_error": 0.0, "wrong_above_0_9": 0.0}
    wrong_sure = sum(1 for c, ok in zip(confidences, correct, strict=True) if c > 0.9 and not ok)
    return {"scored": len(confidences), "expected_calibration_error": expected_calibration_error(confidences, correct),
            "wrong_above_0_9": round(wrong_sure / len(confidences), 4)}


def evaluate_routing(router: Router, rows: list[LabeledTask]) -> RoutingReport:
    routes = list(router.require_config().routes)
    confusion = {e: {p: 0 for p in routes} for e in routes}
    latencies: list[float] = []
    per_token_ms: list[float] = []
    fallbacks = 0
    misses: list[dict[str, object]] = []
    logits: list[list[float]] = []
    scored: list[tuple[float, bool]] = []
    per_source: dict[str, list[bool]] = {}
    for index, row in enumerate(rows):
        outcome = router.decide(row.task)
        if outcome.confidence is not None and outcome.reason == "classified":
            scored.append((outcome.confidence, outcome.route == row.route))
        if row.source is not None:
            per_source.setdefault(row.source, []).append(outcome.route == row.route)
        logits.append([outcome.label_logits[r] for r in routes] if outcome.label_logits else [])
        confusion[row.route][outcome.route] += 1
        if index > 0:  # the first decision also builds the cached prefix
            latencies.append(outcome.latency_ms)
            if outcome.evaluated_tokens:
                per_token_ms.append(outcome.latency_ms / outcome.evaluated_tokens)
        if outcome.reason != "classified":
            fallbacks += 1
        if outcome.route != row.route:
            misses.append({"task": row.task[:200], "expected": row.route, "got": outcome.route,
                           "confidence": outcome.confidence, "reason": outcome.reason})
    correct = sum(confusion[r][r] for r in routes)
    per_route = {}
    for r in routes:
        predicted = sum(confusion[e][r] for e in routes)
        actual = sum(confusion[r].values())
        per_route[r] = {
            "precision": round(confusion[r][r] / predicted, 4) if predicted else 0.0,
            "recall": round(confusion[r][r] / actual, 4) if actual else 0.0,
            "support": actual,
        }
    latency = {"p50": round(statistics.median(latencies), 2) if latencies else 0.0,
               "p95": round(percentile(latencies, 0.95), 2) if latencies else 0.0,
               "per_evaluated_token_p50": round(statistics.median(per_token_ms), 2) if per_token_ms else 0.0}
    by_source: dict[str, dict[str, float | int]] = {
        source: {"n": len(hits), "accuracy": round(sum(hits) / len(hits), 4)}
        for source, hits in sorted(per_source.items())
    }
    quality = confidence_quality([c for c, _ in scored], [ok for _, ok in scored])
    return RoutingReport(len(rows), round(correct / len(rows), 4), fallbacks, latency, per_route, confusion, misses,
                         logits, [routes.index(row.route) for row in rows], quality, by_source)


@dataclass(frozen=True)
class FitResult:
    """A router calibration fitted on the tasks of a report, and its accuracy on those same tasks."""

    calibration: CalibrationConfig
    n: int  # tasks the router scored (those it did not score are left out)
    accuracy_in_sample: float  # on the tasks it was fitted on: check it on others before trusting it


def fit_from_report(report: RoutingReport, routes: list[str]) -> FitResult:
    """Fit router.calibration on the label logits of `report`; UsageError when some route has no scored task."""
    import numpy as np  # lazily: `ggroute --help` must not pay for numpy

    from ggroute.router.calibrate import accuracy, fit_calibration

    scored = [(row, label) for row, label in zip(report.label_logits, report.labels, strict=True) if row]
    if len({label for _, label in scored}) < len(routes) or len(scored) < 2 * len(routes):
        raise UsageError(f"--fit needs tasks the router scored for every route ({', '.join(routes)})")
    logits = np.array([row for row, _ in scored])
    labels = np.array([label for _, label in scored])
    calibration = fit_calibration(logits, labels, routes)
    return FitResult(calibration, len(scored), round(accuracy(logits, labels, calibration, routes), 4))
