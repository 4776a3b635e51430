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

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k not in ("label_logits", "labels")}


def evaluate_routing(router: Router, rows: list[LabeledTask]) -> RoutingReport:
    routes = list(router.require_config().routes)
    confusion = {e: {p: 0 for p in routes} for e in routes}
    latencies: list[float] = []
    per_token_ms: list[float] = []
    fallbacks = 0
    misses: list[dict[str, object]] = []
    logits: list[list[float]] = []
    for index, row in enumerate(rows):
        outcome = router.decide(row.task)
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
    return RoutingReport(len(rows), round(correct / len(rows), 4), fallbacks, latency, per_route, confusion, misses,
                         logits, [routes.index(row.route) for row in rows])


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
