"""Fit the router's calibration (a logit scale and per-route offsets) on labeled tasks.

Minimises cross-entropy of softmax(scale * logits + offsets) over the labels: convex in (scale, offsets), so
plain gradient descent finds the optimum. Two-plus parameters per router, so it generalises from a few hundred
tasks; check it on tasks it was not fitted on (tests/data/routing_holdout.jsonl).
"""

from __future__ import annotations

import numpy as np

from ggroute.models.config import CalibrationConfig


def fit_calibration(logits: np.ndarray, labels: np.ndarray, routes: list[str], steps: int = 3000,
                    rate: float = 0.1) -> CalibrationConfig:
    scale, offsets = 1.0, np.zeros(logits.shape[1])
    onehot = np.eye(logits.shape[1])[labels]
    for _ in range(steps):
        scores = scale * logits + offsets
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=1, keepdims=True)
        residual = (probs - onehot) / len(labels)
        scale = max(1e-3, scale - rate * float((residual * logits).sum()))
        offsets -= rate * residual.sum(axis=0)
    offsets -= offsets[0]  # only differences matter; pin the first route at 0
    return CalibrationConfig(scale=round(scale, 4), offsets={r: round(float(o), 4) for r, o in zip(routes, offsets,
                                                                                                    strict=True)})


def accuracy(logits: np.ndarray, labels: np.ndarray, calibration: CalibrationConfig, routes: list[str]) -> float:
    offsets = np.array([calibration.offsets[r] for r in routes])
    predicted = np.argmax(calibration.scale * logits + offsets, axis=1)
    return float((predicted == labels).mean())
