"""Train a route head from labeled files: the router model's features for every task, then the head.

Also reports how well it does on tasks it was not trained on: k-fold cross-validation over the tasks, and, when
the tasks carry at least two source styles, leave-one-source-out (train on every style but one, test on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ggroute.evals.routing_data import read_labeled_files
from ggroute.router.head import DEFAULT_L2, FeatureKind, RouteHead, check_examples_per_route, train_head
from ggroute.router.routing import Router

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
FOLDS = 5


@dataclass(frozen=True)
class TrainedHead:
    head: RouteHead
    n: int
    per_route: dict[str, int]
    accuracy_in_sample: float
    accuracy_cross_validated: float  # FOLDS-fold, on tasks each fold's head was not trained on
    by_source_held_out: dict[str, float]  # leave-one-source-out accuracy per style; empty with one style
    by_source_not_held_out: dict[str, str]  # styles that could not be left out, and why


def train_route_head(router: Router, paths: list[Path], kind: FeatureKind = "last+mean",
                     l2: float = DEFAULT_L2) -> TrainedHead:
    config = router.require_config()
    routes = list(config.routes)
    rows = read_labeled_files(paths, routes)
    labels = np.array([routes.index(row.route) for row in rows], dtype=np.int64)
    check_examples_per_route(labels, routes)  # before the router reads every task, not after
    features = router.task_features([row.task for row in rows])
    x = np.array([f.vector(kind) for f in features])
    identity = router.head_identity()
    head = train_head(x, labels, routes, identity, kind=kind, l2=l2)
    sources = np.array([row.source or "" for row in rows])
    held_out, not_held_out = _leave_one_source_out(x, labels, sources, routes, kind, l2)
    return TrainedHead(
        head=head,
        n=len(rows),
        per_route={r: int((labels == i).sum()) for i, r in enumerate(routes)},
        accuracy_in_sample=_accuracy(head.probabilities(x), labels),
        accuracy_cross_validated=_cross_validated(x, labels, routes, kind, l2),
        by_source_held_out=held_out,
        by_source_not_held_out=not_held_out,
    )


def _accuracy(probabilities: FloatArray, labels: IntArray) -> float:
    return round(float((probabilities.argmax(axis=1) == labels).mean()), 4)


def _cross_validated(x: FloatArray, labels: IntArray, routes: list[str], kind: FeatureKind, l2: float) -> float:
    folds = np.arange(len(labels)) % FOLDS
    np.random.default_rng(0).shuffle(folds)
    predicted = np.zeros((len(labels), len(routes)))
    for fold in range(FOLDS):
        test = folds == fold
        head = train_head(x[~test], labels[~test], routes, {}, kind=kind, l2=l2, min_examples=1)
        predicted[test] = head.probabilities(x[test])
    return _accuracy(predicted, labels)


def _leave_one_source_out(x: FloatArray, labels: IntArray, sources: npt.NDArray[np.str_], routes: list[str],
                          kind: FeatureKind, l2: float) -> tuple[dict[str, float], dict[str, str]]:
    """Accuracy per style when it is left out of training; and the styles that cannot be left out, with why."""
    names = sorted(set(sources.tolist()))
    if len(names) < 2:
        return {}, {}
    scores: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name in names:
        test = sources == name
        missing = [r for i, r in enumerate(routes) if not (labels[~test] == i).any()]
        if missing:  # the other styles hold no example of some route: nothing to learn it from
            skipped[name] = (f"the other styles have no example of route {', '.join(map(repr, missing))}: give "
                             "that route's examples more than one source to see how it does on unseen styles")
            continue
        head = train_head(x[~test], labels[~test], routes, {}, kind=kind, l2=l2, min_examples=1)
        scores[name] = _accuracy(head.probabilities(x[test]), labels[test])
    return scores, skipped
