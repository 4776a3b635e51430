"""Leave-one-source-out comparison of routing methods on the labeled corpus (router/data/corpus/).

For each source style: train on every other style, test on the one left out. Methods, all on the same forward
pass of the shipped router model over prefix + task + "Category:":
  label-logits   today's scoring: the route labels' next-token logits, calibration (scale, offsets) fitted
  head-last      logistic route head on the last token's hidden state
  head-mean      logistic route head on the mean hidden state over the task's tokens
  head-both      logistic route head on both, concatenated (what `ggroute router train` fits by default)
  knn            k nearest labeled tasks by cosine similarity of the standardised last hidden state
  head-*+T       (with --temperature) the head's logits divided by one temperature, fitted on the training
                 styles alone: each left out in turn, the head trained on the others, the temperature that
                 minimises the class-balanced log loss of those held-out logits
Prints per method: mean and worst style accuracy, expected calibration error (10 bins) and the share of all
decisions that were wrong with confidence above 0.9, over the held-out predictions; then each method trained on
the whole corpus and scored on tests/data/*.jsonl.

    python benchmarks/routing_loso.py [--config config.json] [--set router.routes.coder.examples=[] ...] [--l2 0.1]
        [--temperature] [--apart STYLE]

--apart STYLE also prints the held-out figures of that style alone and of all the other styles together, e.g.
to compare a corpus with a new style against the corpus before it on the styles both have.

Features are computed once per task and router setup (the head identity: model, settings, prefix) and cached in
$GGROUTE_CACHE_DIR/loso-features-HASH.npz.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from _overrides import load_with_overrides

from ggroute.evals.routing_data import LabeledTask, read_labeled, read_labeled_files
from ggroute.evals.routing_eval import confidence_quality
from ggroute.models.locate import cache_dir
from ggroute.router.calibrate import fit_calibration
from ggroute.router.head import DEFAULT_L2, FeatureKind, softmax_rows, train_head
from ggroute.router.pipeline import Pipeline

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]
# (training features, training labels, test features, training sources) -> (n_test, 2) probabilities
Method = Callable[[dict[str, FloatArray], IntArray, dict[str, FloatArray], StrArray], FloatArray]
ROOT = Path(__file__).resolve().parent.parent


def features_for(pipeline: Pipeline, tasks: list[LabeledTask]) -> dict[str, FloatArray]:
    rows = pipeline.router.task_features([t.task for t in tasks])
    return {
        "logits": np.array([r.label_logits for r in rows]),
        "last": np.array([r.hidden_last for r in rows]),
        "mean": np.array([r.hidden_mean for r in rows]),
    }


def cached_features(pipeline: Pipeline, tasks: list[LabeledTask], tag: str) -> dict[str, FloatArray]:
    setup = pipeline.router.head_identity()  # features from another prefix or model must not be reused
    key = hashlib.sha256(json.dumps([tag, setup, [t.task for t in tasks]]).encode()).hexdigest()[:16]
    path = cache_dir() / f"loso-features-{key}.npz"
    if path.is_file():
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    features = features_for(pipeline, tasks)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **features)  # type: ignore[arg-type]
    return features


_PARTS: dict[FeatureKind, list[str]] = {"last": ["last"], "mean": ["mean"], "last+mean": ["last", "mean"]}


def _head_logits(kind: FeatureKind, l2: float, train: dict[str, FloatArray], labels: IntArray,
                 test: dict[str, FloatArray]) -> FloatArray:
    head = train_head(np.hstack([train[p] for p in _PARTS[kind]]), labels, ["coder", "algorithm"], {}, kind=kind,
                      l2=l2, min_examples=1)
    return head.logits(np.hstack([test[p] for p in _PARTS[kind]]))


def _head(kind: FeatureKind, l2: float) -> Method:
    def method(train: dict[str, FloatArray], labels: IntArray, test: dict[str, FloatArray],
               sources: StrArray) -> FloatArray:
        return softmax_rows(_head_logits(kind, l2, train, labels, test))
    return method


def _tempered_head(kind: FeatureKind, l2: float) -> Method:
    def method(train: dict[str, FloatArray], labels: IntArray, test: dict[str, FloatArray],
               sources: StrArray) -> FloatArray:
        held_out = np.zeros((len(labels), 2))
        for source in sorted(set(sources)):
            inner = sources == source
            held_out[inner] = _head_logits(kind, l2, {k: v[~inner] for k, v in train.items()}, labels[~inner],
                                           {k: v[inner] for k, v in train.items()})
        return softmax_rows(_head_logits(kind, l2, train, labels, test) / _fit_temperature(held_out, labels))
    return method


def _fit_temperature(logits: FloatArray, labels: IntArray) -> float:
    """The temperature in 0.2-10 (200 steps, log-spaced) with the lowest class-balanced log loss."""
    weight = 1.0 / np.bincount(labels, minlength=2)[labels]
    rows = np.arange(len(labels))
    losses = [(float(-(weight * np.log(softmax_rows(logits / t)[rows, labels] + 1e-12)).sum()), float(t))
              for t in np.geomspace(0.2, 10.0, 200)]
    return min(losses)[1]


def label_logits(train: dict[str, FloatArray], labels: IntArray, test: dict[str, FloatArray],
                 sources: StrArray) -> FloatArray:
    calibration = fit_calibration(train["logits"], labels, ["coder", "algorithm"])
    offsets = np.array([calibration.offsets[r] for r in ("coder", "algorithm")])
    return softmax_rows(calibration.scale * test["logits"] + offsets)


def knn(train: dict[str, FloatArray], labels: IntArray, test: dict[str, FloatArray], sources: StrArray,
        k: int = 15) -> FloatArray:
    mean, scale = train["last"].mean(axis=0), train["last"].std(axis=0) + 1e-6
    a = (train["last"] - mean) / scale
    b = (test["last"] - mean) / scale
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    nearest = np.argsort(-(b @ a.T), axis=1)[:, :k]
    share_algorithm = labels[nearest].mean(axis=1)
    return np.stack([1 - share_algorithm, share_algorithm], axis=1)


def summarise(probs: FloatArray, labels: IntArray) -> dict[str, float]:
    predicted = probs.argmax(axis=1)
    quality = confidence_quality(probs.max(axis=1).tolist(), (predicted == labels).tolist())
    return {"accuracy": round(float((predicted == labels).mean()), 4),
            "ece": quality["expected_calibration_error"], "wrong_above_0.9": quality["wrong_above_0_9"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override, e.g. router.routes.coder.examples=[] (repeatable)")
    parser.add_argument("--l2", type=float, default=DEFAULT_L2)
    parser.add_argument("--apart", default=None, metavar="STYLE",
                        help="also summarise this style's held-out decisions and the other styles' apart")
    parser.add_argument("--temperature", action="store_true",
                        help="also each head with a temperature fitted leave-one-style-out on its training styles")
    args = parser.parse_args()
    routes = ["coder", "algorithm"]
    corpus = read_labeled_files([ROOT / "router" / "data" / "corpus"], routes)
    labels = np.array([routes.index(t.route) for t in corpus])
    sources = np.array([t.source for t in corpus])
    if args.apart is not None and args.apart not in set(sources):
        parser.error(f"--apart: no style '{args.apart}' in the corpus (styles: {', '.join(sorted(set(sources)))})")
    methods: dict[str, Method] = {"label-logits": label_logits, "head-last": _head("last", args.l2),
                                  "head-mean": _head("mean", args.l2), "head-both": _head("last+mean", args.l2),
                                  "knn": knn}
    if args.temperature:
        methods |= {f"head-{kind}+T": _tempered_head(kind, args.l2) for kind in ("mean", "last+mean")}
    with Pipeline(load_with_overrides(args.config, [*args.overrides, "router.head=null"])) as pipeline:
        features = cached_features(pipeline, corpus, "corpus")
        sets = {name: read_labeled(ROOT / "tests" / "data" / f"{name}.jsonl", routes)
                for name in ("routing_dev", "routing_holdout", "routing_fresh")}
        set_features = {name: cached_features(pipeline, tasks, name) for name, tasks in sets.items()}
    for name, method in methods.items():
        per_source: dict[str, float] = {}
        held_out = np.zeros((len(corpus), 2))
        for source in sorted(set(sources)):
            test = sources == source
            train_f = {k: v[~test] for k, v in features.items()}
            test_f = {k: v[test] for k, v in features.items()}
            held_out[test] = method(train_f, labels[~test], test_f, sources[~test])
            per_source[source] = round(float((held_out[test].argmax(axis=1) == labels[test]).mean()), 4)
        on_sets = {}
        for set_name, tasks in sets.items():
            set_labels = np.array([routes.index(t.route) for t in tasks])
            on_sets[set_name] = summarise(method(features, labels, set_features[set_name], sources),
                                          set_labels)["accuracy"]
        apart = {}
        if args.apart is not None:
            alone = sources == args.apart
            others = {s: a for s, a in per_source.items() if s != args.apart}
            apart = {"apart": {args.apart: summarise(held_out[alone], labels[alone]),
                               "others": {"loso_mean": round(float(np.mean(list(others.values()))), 4),
                                          "loso_worst": min(others.values()),
                                          **summarise(held_out[~alone], labels[~alone])}}}
        print(json.dumps({"method": name, "loso_mean": round(float(np.mean(list(per_source.values()))), 4),
                          "loso_worst": min(per_source.values()), **summarise(held_out, labels),
                          "per_source": per_source, **apart, "trained_on_corpus": on_sets}))


if __name__ == "__main__":
    main()
