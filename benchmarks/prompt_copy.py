"""Prompt processing with a `prompt_weights_type` copy against the model reading its own prompts, side by side.

    python benchmarks/prompt_copy.py [--model coder] [--types q8_0,bf16] [--problems 30] [--max-tokens 64]

One copy of the model is loaded per variant ("own": no copy; then one per type) and the first N HumanEval
problems, framed as `ggroute eval humaneval` frames them for a chat model, are sent to every variant in turn,
greedy, each prompt evaluated whole (so the shared system prompt is not reused from the previous problem), so
a busier minute hits all variants alike. Prints per variant the median prefill time and tokens/s, the median
of the per-problem prefill ratios to "own", and how many answers are the same text as "own"'s (the copy's
cells are not the model's to the bit: a 4-bit model's activations are rounded to 8 bits, a wider copy's are
not, so a close greedy choice can flip). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics

from _overrides import load_with_overrides

from ggroute.evals import humaneval as he
from ggroute.models.catalog import ModelCatalog
from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.llamacpp.model import LlamaModel, load_llama_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None)
    parser.add_argument("--model", default="coder")
    parser.add_argument("--types", default="q8_0,bf16", help="comma-separated prompt_weights_type values")
    parser.add_argument("--problems", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    variants: dict[str, LlamaModel] = {}
    for name in ["own", *args.types.split(",")]:
        value = "null" if name == "own" else json.dumps(name)
        loaded = load_with_overrides(args.config, [f"models.{args.model}.prompt_weights_type={value}"])
        variants[name] = load_llama_model(ModelCatalog(loaded).spec(args.model))
    prefill: dict[str, list[float]] = {name: [] for name in variants}
    rate: dict[str, list[float]] = {name: [] for name in variants}
    texts: dict[str, list[str]] = {name: [] for name in variants}
    try:
        for problem in he.load_problems(args.problems):
            task = he.task_text(problem, "chat")
            for name, model in variants.items():
                model.forget_context()
                result = Generation(model, task, RequestOptions(max_tokens=args.max_tokens, temperature=0.0)).run()
                prefill[name].append(result.timings.prefill_s)
                rate[name].append(result.timings.prefill_tokens_per_s or 0.0)
                texts[name].append(result.text)
    finally:
        for model in variants.values():
            model.close()
    for name in variants:
        ratios = [a / b for a, b in zip(prefill[name], prefill["own"], strict=True)]
        same = sum(a == b for a, b in zip(texts[name], texts["own"], strict=True))
        print(json.dumps({"variant": name, "problems": len(prefill[name]),
                          "prefill_s_median": round(statistics.median(prefill[name]), 4),
                          "prefill_tokens_per_s_median": round(statistics.median(rate[name]), 1),
                          "prefill_ratio_to_own_median": round(statistics.median(ratios), 3),
                          "same_text_as_own": same}))


if __name__ == "__main__":
    main()
