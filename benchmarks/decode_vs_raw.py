"""Decode and prefill tokens/s through ggroute vs llama-cpp-python called directly (evals/bench_raw.py).

Same Llama object, same prompt tokens, same sampler settings and stop strings; the two sides alternate
(A, B, A, B, ...) in one run and the KV cache is reset before every request so both do the full prefill.
Prints every pair, then medians and the ratio of medians. `ggroute bench --vs-raw` runs the same comparison.

    python benchmarks/decode_vs_raw.py [--model coder] [--repeat 7] [--max-tokens 128] [--config config.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from ggroute.evals.bench_raw import compare_with_raw
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import load_config
from ggroute.models.llamacpp.model import load_llama_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="coder")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--config", default=None)
    args = parser.parse_args()
    model = load_llama_model(ModelCatalog(load_config(args.config)).spec(args.model))
    try:
        comparison = compare_with_raw(model, repeat=args.repeat, max_tokens=args.max_tokens,
                                      on_pair=lambda run: print(json.dumps(dataclasses.asdict(run))))
    finally:
        model.close()
    print(json.dumps({"model": args.model, "max_tokens": args.max_tokens, **comparison.summary()}, indent=2))


if __name__ == "__main__":
    main()
