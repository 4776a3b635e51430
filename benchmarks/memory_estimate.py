"""The memory plan's estimate vs measured RSS growth, per configured model.

Each model runs in a fresh subprocess: RSS before loading, then load it and run a request whose prompt fills
the context (minus 32 tokens to generate), which touches the KV cache and the compute buffers the way a
worst-case request does; then RSS again. Prints estimate, measured growth and their ratio.

    python benchmarks/memory_estimate.py [--config config.json] [--set models.coder.context_size=1024 ...] [MODEL ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import psutil
from _overrides import load_with_overrides

from ggroute.models.catalog import ModelCatalog

GENERATE = 32


def measure_one(config: str | None, overrides: list[str], name: str) -> dict[str, object]:
    from ggroute.models.llamacpp.model import load_llama_model

    catalog = ModelCatalog(load_with_overrides(config, overrides))
    spec = catalog.spec(name)
    process = psutil.Process()
    before = process.memory_info().rss
    model = load_llama_model(spec)
    after_load = process.memory_info().rss
    llama = model.llama
    filler = llama.tokenize(b" the quick brown fox jumps over the lazy dog", add_bos=False)
    prompt = llama.tokenize(b"Summarise:", add_bos=True)
    room = spec.settings.context_size - GENERATE - len(prompt)
    prompt += (filler * (room // len(filler) + 1))[:room]
    for count, _token in enumerate(llama.generate(prompt, temp=0.0), start=1):
        if count >= GENERATE:
            break
    after_request = process.memory_info().rss
    model.close()
    growth = after_request - before
    return {
        "model": name,
        "file": spec.path.name,
        "context_size": spec.settings.context_size,
        "prompt_tokens": len(prompt),
        "estimate_mb": round(spec.plan.own_bytes / 1e6, 1),
        "weights_mb": round(spec.plan.weight_bytes / 1e6, 1),
        "repacked_mb": round(spec.plan.repacked_bytes / 1e6, 1),
        "kv_mb": round(spec.plan.kv_bytes / 1e6, 1),
        "compute_mb": round(spec.plan.compute_bytes / 1e6, 1),
        "rss_growth_after_load_mb": round((after_load - before) / 1e6, 1),
        "rss_growth_mb": round(growth / 1e6, 1),
        "estimate_over_measured": round(spec.plan.own_bytes / growth, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*")
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="dotted.key=JSON value")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_one(args.config, args.overrides, args.child)))
        return
    names = args.models or ModelCatalog(load_with_overrides(args.config, args.overrides)).names
    for name in names:
        command = [sys.executable, __file__, "--child", name] + (["--config", args.config] if args.config else [])
        command += [f"--set={item}" for item in args.overrides]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(json.dumps({"model": name, "error": done.stderr.strip()[-500:]}))
            continue
        print(done.stdout.strip())


if __name__ == "__main__":
    main()
