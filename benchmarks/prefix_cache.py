"""First-request routing latency in a fresh process, with and without the router prefix cache on disk.

Alternates cold (cache folder emptied) and warm (cache file present) runs of `ggroute route --json` in new
processes; prints per-run figures and the medians of route_latency_ms and process wall time.

    python benchmarks/prefix_cache.py [--repeat 5] [--config config.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK = "Detect a cycle in a directed graph"


def run_route(cache: Path, config: str | None) -> tuple[float, float]:
    env = {**os.environ, "GGROUTE_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "ggroute.cli", "route", TASK, "--json"] + (["-c", config] if config else [])
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    return json.loads(done.stdout)["latency_ms"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--config", default=None)
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="ggroute-bench-"))
    shared = Path(os.environ.get("GGROUTE_CACHE_DIR", Path.home() / ".cache" / "ggroute" / "models"))
    for item in shared.glob("*"):  # reuse assembled model files, not prefix states
        if item.is_dir() and item.name != "router-prefix":
            os.symlink(item, cache / item.name)
    cold, warm = [], []
    try:
        for i in range(args.repeat):
            shutil.rmtree(cache / "router-prefix", ignore_errors=True)
            cold.append(run_route(cache, args.config))
            warm.append(run_route(cache, args.config))
            print(json.dumps({"pair": i, "cold_ms": cold[-1][0], "warm_ms": warm[-1][0],
                              "cold_wall_s": round(cold[-1][1], 3), "warm_wall_s": round(warm[-1][1], 3)}))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    cold_ms, warm_ms = statistics.median(c[0] for c in cold), statistics.median(w[0] for w in warm)
    print(json.dumps({
        "route_latency_ms": {"cold": cold_ms, "warm": warm_ms, "ratio": round(cold_ms / warm_ms, 2)},
        "process_wall_s": {"cold": round(statistics.median(c[1] for c in cold), 3),
                           "warm": round(statistics.median(w[1] for w in warm), 3)},
    }, indent=2))


if __name__ == "__main__":
    main()
