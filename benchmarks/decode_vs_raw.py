"""Decode and prefill tokens/s through ggroute vs llama-cpp-python called directly.

Same Llama object, same prompt tokens, same sampler settings and stop strings; the two sides alternate
(A, B, A, B, ...) in one run and the KV cache is reset before every request so both do the full prefill.
Prints medians and the ratio of medians.

    python benchmarks/decode_vs_raw.py [--model coder] [--repeat 7] [--max-tokens 128] [--config config.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import load_config
from ggroute.models.engine import LoadedModel, load_model
from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.prompt import prepare_prompt

TASK = "Write a Python class for a bank account with deposit, withdraw and a transaction history, with docstrings."


def through_ggroute(model: LoadedModel, max_tokens: int) -> tuple[float, float, int]:
    model.llama.reset()
    result = Generation(model, TASK, RequestOptions(max_tokens=max_tokens, timeout_s=600)).run()
    t = result.timings
    return t.decode_tokens_per_s or 0.0, t.prefill_tokens_per_s or 0.0, result.usage.completion_tokens


def through_raw(model: LoadedModel, max_tokens: int, stop: list[str]) -> tuple[float, float, int]:
    llama = model.llama
    llama.reset()
    tokens = prepare_prompt(model, TASK).tokens
    settings = model.spec.settings
    started = time.perf_counter()
    stamps: list[float] = []
    for _chunk in llama.create_completion(tokens, max_tokens=max_tokens, temperature=settings.temperature,
                                          top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0,
                                          stop=stop or None, stream=True):
        if _chunk["choices"][0]["finish_reason"] is None:  # the closing chunk carries no token
            stamps.append(time.perf_counter())
    decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    prefill = len(tokens) / (stamps[0] - started) if stamps else 0.0
    return decode, prefill, len(stamps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="coder")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--config", default=None)
    args = parser.parse_args()

    catalog = ModelCatalog(load_config(args.config))
    model = load_model(catalog.spec(args.model))
    stop = [*model.spec.settings.stop, *prepare_prompt(model, TASK).stop]
    try:
        through_ggroute(model, 8)  # warm-up: page in the weights, build the chat formatter
        through_raw(model, 8, stop)
        rows = []
        for i in range(args.repeat):
            a = through_ggroute(model, args.max_tokens)
            b = through_raw(model, args.max_tokens, stop)
            rows.append({"pair": i, "ggroute_decode": a[0], "raw_decode": b[0], "ggroute_prefill": a[1],
                         "raw_prefill": b[1], "ggroute_tokens": a[2], "raw_tokens": b[2]})
            print(json.dumps(rows[-1]))
    finally:
        model.close()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    summary = {
        "model": args.model,
        "repeat": args.repeat,
        "max_tokens": args.max_tokens,
        "decode_tokens_per_s": {"ggroute": round(med("ggroute_decode"), 2), "raw": round(med("raw_decode"), 2)},
        "prefill_tokens_per_s": {"ggroute": round(med("ggroute_prefill"), 2), "raw": round(med("raw_prefill"), 2)},
        "decode_ratio": round(med("ggroute_decode") / med("raw_decode"), 4),
        "decode_ratio_median_of_pairs": round(
            statistics.median(r["ggroute_decode"] / r["raw_decode"] for r in rows), 4
        ),
        "prefill_ratio": round(med("ggroute_prefill") / med("raw_prefill"), 4),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
