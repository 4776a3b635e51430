"""Routing accuracy and latency on the labeled dev and holdout sets, optionally with another router model.

    python benchmarks/routing.py [--config config.json] [--set router.model=algorithm ...] [--fit-on FILE] [FILE ...]

--fit-on fits router.calibration on FILE first (as `ggroute eval routing FILE --fit` does) and evaluates with it.

Latency is per decision after the first (the first also builds the cached few-shot prefix). `task_tokens` is
the length of the tasks as the router tokenizes them, before the cut to router.max_task_tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from _overrides import load_with_overrides

from ggroute.evals.routing_data import read_labeled
from ggroute.evals.routing_eval import evaluate_routing, percentile
from ggroute.models.config import LoadedConfig
from ggroute.router.calibrate import fit_calibration
from ggroute.router.pipeline import Pipeline

DEFAULT_FILES = ["tests/data/routing_dev.jsonl", "tests/data/routing_holdout.jsonl", "tests/data/routing_fresh.jsonl"]


def fit_on(loaded: LoadedConfig, path: Path) -> dict[str, object]:
    router_config = loaded.config.router
    assert router_config is not None, "the config has no router section"
    routes = list(router_config.routes)
    with Pipeline(loaded) as pipeline:
        report = evaluate_routing(pipeline.router, read_labeled(path, routes))
    logits = np.array(report.label_logits)
    return fit_calibration(logits, np.array(report.labels), routes).model_dump()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", default=DEFAULT_FILES)
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="dotted.key=JSON value")
    parser.add_argument("--fit-on", default=None, help="labeled file to fit router.calibration on first")
    args = parser.parse_args()
    loaded = load_with_overrides(args.config, args.overrides)
    if args.fit_on:
        calibration = fit_on(loaded, Path(args.fit_on))
        print(json.dumps({"fitted_on": args.fit_on, "calibration": calibration}))
        loaded = load_with_overrides(args.config, [*args.overrides, f"router.calibration={json.dumps(calibration)}"])
    with Pipeline(loaded) as pipeline:
        router = pipeline.router.require_config()
        started = time.perf_counter()
        pipeline.route("warm-up: load the router model and build the prefix")
        first_s = time.perf_counter() - started
        classifier = pipeline.router._classifier
        assert classifier is not None, "the warm-up decision fell back: the router model is unavailable"
        for path in args.files:
            rows = read_labeled(Path(path), list(router.routes))
            report = evaluate_routing(pipeline.router, rows)
            lengths = [len(classifier.tokenize_task(row.task)) for row in rows]
            print(json.dumps({"file": path, "router_model": router.model, "n": report.n,
                              "accuracy": report.accuracy, "fallbacks": report.fallbacks,
                              "latency_ms": report.latency_ms, "per_route": report.per_route,
                              "task_tokens": {"p50": statistics.median(lengths), "p95": percentile(lengths, 0.95),
                                              "over_max_task_tokens": sum(n > router.max_task_tokens
                                                                          for n in lengths)},
                              "first_request_s": round(first_s, 2), "misses": len(report.misses)}))


if __name__ == "__main__":
    main()
