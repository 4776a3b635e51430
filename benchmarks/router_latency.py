"""Route latency of router settings side by side: every variant is loaded at once and the decisions alternate
variant by variant, task by task, so a slower or busier minute hits all of them alike.

    python benchmarks/router_latency.py [--file tests/data/routing_dev.jsonl] [--rounds 2]

Variants (each a set of overrides on the shipped config's router model and router section):
  q4_1-whole      the file as shipped (Q4_1), f16 keys, the whole task read (the setup before these knobs)
  q4_1            Q4_1 weights, f16 keys, max_task_tokens 48
  bf16            weights converted to BF16, f16 keys, max_task_tokens 48
  bf16+k_q8_0     BF16 weights, q8_0 keys, max_task_tokens 48
  q8_0+k_q8_0     weights converted to Q8_0, q8_0 keys, max_task_tokens 48
  head            BF16 weights, q8_0 keys, max_task_tokens 48, decisions by the route head (router-head.json)
  head-LN         the same with the router cut to its first N blocks (`layers`: 4, 6, 8, 12, 16, 20); its head is
                  trained here on 40 corpus tasks per route, which is enough to time it (accuracy: routing_loso.py)
  head-q4_0       the head variant with the weights converted to Q4_0 instead of BF16 (a head trained here too)
  head-q4_0-shipped  Q4_0 weights, q8_0 keys, max_task_tokens 48, the shipped head (router-head-q4_0.json): the
                  shipped config
Prints p50/p95 of route latency per variant (the first decision, which builds the prefix, left out) and each
variant's p50 ratio to q4_1-whole.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from _overrides import load_with_overrides

from ggroute.evals.head_training import train_route_head
from ggroute.evals.routing_data import read_labeled, read_labeled_files
from ggroute.evals.routing_eval import percentile
from ggroute.router.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, list[str]] = {
    "q4_1-whole": ['models.router.weights_type=null', 'models.router.cache_type_k="f16"',
                   "router.max_task_tokens=2048"],
    "q4_1": ['models.router.weights_type=null', 'models.router.cache_type_k="f16"', "router.max_task_tokens=48"],
    "bf16": ['models.router.weights_type="bf16"', 'models.router.cache_type_k="f16"', "router.max_task_tokens=48"],
    "bf16+k_q8_0": ['models.router.weights_type="bf16"', 'models.router.cache_type_k="q8_0"',
                    "router.max_task_tokens=48"],
    "q8_0+k_q8_0": ['models.router.weights_type="q8_0"', 'models.router.cache_type_k="q8_0"',
                    "router.max_task_tokens=48"],
    "head": ['models.router.weights_type="bf16"', 'models.router.cache_type_k="q8_0"', "router.max_task_tokens=48",
             'router.head="router-head.json"', "router.calibration=null"],
}
# The same without the few-shot examples in the prefix (a shorter prefix for every task token to attend to).
VARIANTS["bf16+k_q8_0-no-examples"] = [*VARIANTS["bf16+k_q8_0"], "router.routes.coder.examples=[]",
                                       "router.routes.algorithm.examples=[]"]
# The router cut to its first N blocks (`layers`), decisions by a head trained for it here (see _cut_head).
CUT_LAYERS = (4, 6, 8, 12, 16, 20)
for _n in CUT_LAYERS:
    VARIANTS[f"head-L{_n}"] = [*VARIANTS["head"][:3], f"models.router.layers={_n}", "router.calibration=null"]
# BF16 weights need AVX512_BF16 to be fast; without it, the 4-bit layout llama.cpp repacks for AVX2 may read faster.
VARIANTS["head-q4_0"] = ['models.router.weights_type="q4_0"', *VARIANTS["head"][1:3], "router.calibration=null"]
VARIANTS["head-q4_0-shipped"] = [*VARIANTS["head-q4_0"], 'router.head="router-head-q4_0.json"']
# Label-logit variants score with the calibration fitted on the dev set for the label-logit router
# (router.calibration before the route head replaced it).
LABEL_LOGIT_CALIBRATION = 'router.calibration={"scale": 3.1602, "offsets": {"coder": 0.0, "algorithm": -2.5692}}'
for _name, _overrides in VARIANTS.items():
    if not _name.startswith("head"):
        _overrides += ["router.head=null", LABEL_LOGIT_CALIBRATION]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", default="tests/data/routing_dev.jsonl")
    parser.add_argument("--config", default=None)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the file")
    parser.add_argument("--only", default=None, help="comma-separated variant names to run (default: all)")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(VARIANTS)
    scratch = Path(tempfile.mkdtemp(prefix="router-latency-"))
    pipelines = {name: Pipeline(load_with_overrides(args.config, _with_head(args.config, name, scratch)))
                 for name in chosen}
    try:
        routes = list(next(iter(pipelines.values())).router.require_config().routes)
        tasks = [row.task for row in read_labeled(Path(args.file), routes)]
        latencies: dict[str, list[float]] = {name: [] for name in pipelines}
        for pipeline in pipelines.values():
            pipeline.route("warm-up: load the router model and build the prefix")
        order = list(pipelines)
        for round_ in range(args.rounds):
            for index, task in enumerate(tasks):
                turn = order if (index + round_) % 2 == 0 else order[::-1]
                for name in turn:
                    latencies[name].append(pipelines[name].route(task).latency_ms)
        base = percentile(latencies[order[0]], 0.5)
        for name, values in latencies.items():
            p50 = percentile(values, 0.5)
            p95 = percentile(values, 0.95)
            print(json.dumps({"variant": name, "n": len(values), "p50_ms": round(p50, 1), "p95_ms": round(p95, 1),
                              "p50_ratio_to_first": round(p50 / base, 3)}))
    finally:
        for pipeline in pipelines.values():
            pipeline.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _with_head(config: str | None, name: str, scratch: Path) -> list[str]:
    """The variant's overrides; a cut or converted router gets a head trained for it, written into `scratch`."""
    if not name.startswith("head-") or name.endswith("-shipped"):
        return VARIANTS[name]
    head = scratch / f"{name}.json"
    with Pipeline(load_with_overrides(config, [*VARIANTS[name], "router.head=null"])) as pipeline:
        train_route_head(pipeline.router, [_corpus_sample(scratch, 40)]).head.save(head)
    return [*VARIANTS[name], f"router.head={json.dumps(str(head))}"]


def _corpus_sample(scratch: Path, per_route: int) -> Path:
    path = scratch / "sample.jsonl"
    if not path.exists():
        rows = read_labeled_files([ROOT / "router" / "data" / "corpus"], ["coder", "algorithm"])
        chosen = [r for route in ("coder", "algorithm") for r in [r for r in rows if r.route == route][:per_route]]
        path.write_text("".join(json.dumps({"task": r.task, "route": r.route}) + "\n" for r in chosen))
    return path


if __name__ == "__main__":
    main()
