"""Route latency and decode speed of two ggroute checkouts side by side: before and after a change.

Each side is a Python interpreter with one checkout installed (a venv each). The two alternate run by run
(A, B, B, A, A, B, ...), each run a fresh process, so a slower minute on a shared machine hits both alike.
A run is `ggroute eval routing FILE --json` (route latency p50/p95 over the file, accuracy) followed by
`ggroute generate --model MODEL --json` (decode tokens/s, counted tokens). Prints every run, then medians per
side and the ratio new/old of the medians.

    python benchmarks/compare_checkouts.py --old /tmp/oldvenv/bin/python --new .venv/bin/python --pairs 4 \
        [--config config.json]

Set up the old side with `git worktree add /tmp/old COMMIT` and a venv with `pip install -e /tmp/old`
(pip reuses the llama-cpp-python wheel it cached).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

TASK = "Write a Python class for a bank account with deposit, withdraw and a transaction history, with docstrings."


def _ggroute(python: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([python, "-m", "ggroute.cli", *args], capture_output=True, text=True, check=False)
    if done.returncode not in (0,):
        raise SystemExit(f"{python} ggroute {' '.join(args)} failed ({done.returncode}): {done.stderr[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def one_run(python: str, file: str, model: str, max_tokens: int, config: list[str]) -> dict[str, float]:
    routing = _ggroute(python, "eval", "routing", file, "--json", *config)
    generated = _ggroute(python, "generate", "--model", model, TASK, "--json", "--max-tokens", str(max_tokens),
                         *config)
    return {
        "route_p50_ms": routing["latency_ms"]["p50"],
        "route_p95_ms": routing["latency_ms"]["p95"],
        "accuracy": routing["accuracy"],
        "decode_tokens_per_s": generated["timings"]["decode_tokens_per_s"],
        "completion_tokens": generated["usage"]["completion_tokens"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="python of the venv with the old checkout")
    parser.add_argument("--new", required=True, help="python of the venv with the new checkout")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--file", default="tests/data/routing_dev.jsonl")
    parser.add_argument("--model", default="coder")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--config", default=None, help="config.json both sides use (it must suit both)")
    args = parser.parse_args()
    sides = {"old": args.old, "new": args.new}
    config = ["--config", args.config] if args.config else []
    for python in sides.values():
        _ggroute(python, "route", "warm-up: convert weights, build the prefix cache", "--json", *config)
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    for pair in range(args.pairs):
        for name in ("old", "new") if pair % 2 == 0 else ("new", "old"):
            runs[name].append(one_run(sides[name], str(Path(args.file)), args.model, args.max_tokens, config))
            print(json.dumps({"side": name, "pair": pair, **runs[name][-1]}), flush=True)
    medians = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()}
    ratios = {key: round(medians["new"][key] / medians["old"][key], 3) for key in medians["old"]
              if medians["old"][key]}
    print(json.dumps({"pairs": args.pairs, "median": medians, "ratio_new_to_old": ratios}, indent=2))


if __name__ == "__main__":
    main()
