"""What reusing the previous request's KV cache (`cache_prompt`) saves, and how often it changes a greedy answer.

One process, two copies of the model: one with `cache_prompt` true (each request reuses the prefix it shares
with the previous one), one with it false (each request evaluates its whole prompt, as a fresh process does).
The tasks (the first N of each route in a labeled file, every one asked twice in a row) go to both, alternating,
at temperature 0. Reports, per model: prompt tokens evaluated and prefill seconds on each side, and how many
answers from the reusing copy differ from the fresh one's, for a new task and for the same task repeated.

    python benchmarks/prompt_cache.py [--model coder --model algorithm] [--tasks 20] [--max-tokens 64]
        [--file tests/data/routing_final.jsonl] [--config config.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from _overrides import load_with_overrides

from ggroute.models.catalog import ModelCatalog
from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.llamacpp.model import LlamaModel, load_llama_model
from ggroute.models.metrics import GenerationResult


def tasks_from(path: Path, per_route: int) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    picked: list[str] = []
    for route in sorted({row["route"] for row in rows}):
        picked += [row["task"] for row in rows if row["route"] == route][:per_route]
    return picked


def evaluated(result: GenerationResult) -> int:
    return result.usage.prompt_tokens - result.usage.cached_prompt_tokens


def answer(model: LlamaModel, task: str, max_tokens: int) -> GenerationResult:
    return Generation(model, task, RequestOptions(max_tokens=max_tokens, temperature=0.0, loop_guard=False)).run()


@dataclass(frozen=True)
class Pair:
    repeat: bool  # the same task as the request before
    same_text: bool
    evaluated: tuple[int, int]  # prompt tokens evaluated: fresh, reusing
    prefill_s: tuple[float, float]


def copy_of(config: str | None, name: str, cache_prompt: bool) -> LlamaModel:
    loaded = load_with_overrides(config, [f"models.{name}.cache_prompt={json.dumps(cache_prompt)}"])
    return load_llama_model(ModelCatalog(loaded).spec(name))


def measure(config: str | None, name: str, tasks: list[str], max_tokens: int) -> dict[str, object]:
    fresh, reuse = copy_of(config, name, False), copy_of(config, name, True)
    pairs: list[Pair] = []
    try:
        for task in tasks:
            for repeat in (False, True):
                a, b = answer(fresh, task, max_tokens), answer(reuse, task, max_tokens)
                pairs.append(Pair(repeat, a.text == b.text,
                                  (evaluated(a), evaluated(b)),
                                  (a.timings.prefill_s, b.timings.prefill_s)))
    finally:
        fresh.close()
        reuse.close()

    def differing(repeat: bool) -> str:
        of = [p for p in pairs if p.repeat == repeat]
        return f"{sum(not p.same_text for p in of)} of {len(of)}"

    return {
        "model": name, "tasks": len(tasks), "max_tokens": max_tokens,
        "answers_differing_new_task": differing(False), "answers_differing_same_task_again": differing(True),
        "prompt_tokens_evaluated": {"fresh": sum(p.evaluated[0] for p in pairs),
                                    "reuse": sum(p.evaluated[1] for p in pairs)},
        "prefill_s_total": {"fresh": round(sum(p.prefill_s[0] for p in pairs), 2),
                            "reuse": round(sum(p.prefill_s[1] for p in pairs), 2)},
        "prefill_s_median": {"fresh": round(statistics.median(p.prefill_s[0] for p in pairs), 4),
                             "reuse": round(statistics.median(p.prefill_s[1] for p in pairs), 4)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--tasks", type=int, default=20, help="tasks per route taken from --file")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--file", type=Path, default=Path("tests/data/routing_final.jsonl"))
    parser.add_argument("--config", default=None)
    args = parser.parse_args()
    tasks = tasks_from(args.file, args.tasks)
    for name in args.model or ["coder", "algorithm"]:
        print(json.dumps(measure(args.config, name, tasks, args.max_tokens)), flush=True)


if __name__ == "__main__":
    main()
