"""Load test: `ggroute serve` ("model": "auto", routing every request) against llama-cpp-python's own server
(`python -m llama_cpp.server`) serving the coder's GGUF file with the same settings, side by side in one run.

    python benchmarks/serve_load.py [--clients 4] [--requests 10] [--max-tokens 64] [--rounds 2] [--threads 1]

Each round runs the load once per server, alternating ggroute, llama.cpp, ggroute, llama.cpp... (the machine is
noisy: compare ratios measured side by side). A load is --clients concurrent streaming clients sending
--requests chat requests each, one after another. Per request: time to first token (request sent to the first
text chunk: queue wait, routing and prefill included), decode tokens/s ((tokens - 1) / first to last chunk,
tokens from the usage chunk). Per load: errors, total completion tokens / wall time. Prints a JSON report
(medians over rounds) and a summary; needs `pip install 'ggroute[serve-bench]'` (llama-cpp-python's server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
TASKS = [  # ordinary software work: the router sends these to the coder route
    "Write a Python function that parses an ISO 8601 date string.",
    "Write a Dockerfile for a small Flask app.",
    "Write a bash script that renames every .txt file in a folder to .md.",
    "Write a Python function that reads a CSV file and returns a list of dicts.",
    "Write a unit test for a function that adds two numbers.",
    "Write a Python class for a simple bank account with deposit and withdraw.",
    "Write a function that validates an email address with a regular expression.",
    "Write a SQL query that counts orders per customer.",
]


def _config(path: Path, threads: int, context: int) -> Path:
    data = json.loads((ROOT / "config.json").read_text(encoding="utf-8"))
    data["router"]["head"] = str(ROOT / data["router"]["head"])
    data["log_file"] = str(path.parent / "requests.jsonl")
    for model in data["models"].values():
        model["n_threads"] = threads
        model["context_size"] = context
    data["server"] = {"queue_size": 64}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, name: str, cmd: list[str], ready: re.Pattern[str], url: str | None = None) -> None:
        self.name = name
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = url or ""
        found = threading.Event()
        self.output: list[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                match = ready.search(line)
                if match and not found.is_set():
                    self.url = self.url or match.group(1)
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(180) or self.proc.poll() is not None:
            raise SystemExit(f"{name} did not start:\n{''.join(self.output)}")

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


async def _request(http: httpx.AsyncClient, url: str, model: str, task: str, max_tokens: int) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": task}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    sent = time.perf_counter()
    first = last = None
    chunks = 0
    usage: dict[str, Any] | None = None
    served_by = None
    async with http.stream("POST", url + "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            return {"error": f"{response.status_code}: {(await response.aread()).decode()[:200]}"}
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                return {"error": json.dumps(chunk["error"])}
            served_by = chunk.get("model", served_by)
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                if choice.get("delta", {}).get("content"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    chunks += 1
    tokens = int(usage["completion_tokens"]) if usage else chunks
    decode = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else None
    return {"ttft_s": (first - sent) if first else None, "tokens": tokens, "decode_tps": decode, "model": served_by}


async def _load(url: str, model: str, clients: int, requests: int, max_tokens: int) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=600) as http:
        async def client(c: int) -> list[dict[str, Any]]:
            return [await _request(http, url, model, TASKS[(c * requests + i) % len(TASKS)], max_tokens)
                    for i in range(requests)]

        started = time.perf_counter()
        results = [r for rs in await asyncio.gather(*(client(c) for c in range(clients))) for r in rs]
        wall = time.perf_counter() - started
    ok = [r for r in results if "error" not in r]
    ttfts = sorted(r["ttft_s"] for r in ok if r["ttft_s"] is not None)
    decodes = [r["decode_tps"] for r in ok if r["decode_tps"]]
    return {
        "errors": len(results) - len(ok), "error_samples": [r["error"] for r in results if "error" in r][:3],
        "ttft_p50_s": round(statistics.median(ttfts), 3) if ttfts else None,
        "ttft_p95_s": round(ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))], 3) if ttfts else None,
        "decode_tps_median": round(statistics.median(decodes), 2) if decodes else None,
        "total_tps": round(sum(r["tokens"] for r in ok) / wall, 2), "tokens": sum(r["tokens"] for r in ok),
        "wall_s": round(wall, 2), "served_by": sorted({str(r["model"]) for r in ok}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="n_threads for both servers")
    parser.add_argument("--context", type=int, default=2048)
    args = parser.parse_args()

    from ggroute.models.catalog import ModelCatalog
    from ggroute.models.config import load_config

    folder = Path(tempfile.mkdtemp(prefix="ggroute-serve-load-"))
    config = _config(folder / "config.json", args.threads, args.context)
    coder = ModelCatalog(load_config(config)).spec("coder")
    ggroute = Server("ggroute serve", [sys.executable, "-m", "ggroute.cli", "serve", "--config", str(config),
                                       "--port", "0", "--log-level", "warning"], re.compile(r"listening on (\S+)"))
    port = _free_port()
    raw = Server("llama_cpp.server", [
        sys.executable, "-m", "llama_cpp.server", "--model", str(coder.path), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", str(args.context), "--n_threads", str(args.threads),
        "--n_threads_batch", str(args.threads), "--n_batch", str(coder.settings.n_batch),
        "--interrupt_requests", "False", "--model_alias", "coder",
    ], re.compile(r"Uvicorn running on"), url=f"http://127.0.0.1:{port}")
    runs: dict[str, list[dict[str, Any]]] = {"ggroute": [], "llama_cpp": []}
    try:
        for server, model in ((ggroute, "auto"), (raw, "coder")):  # warm up: load the models
            asyncio.run(_load(server.url, model, 1, 1, 8))
        for round_no in range(args.rounds):
            for key, server, model in (("ggroute", ggroute, "auto"), ("llama_cpp", raw, "coder")):
                result = asyncio.run(_load(server.url, model, args.clients, args.requests, args.max_tokens))
                runs[key].append(result)
                print(f"round {round_no + 1} {key}: {json.dumps(result)}", file=sys.stderr, flush=True)
    finally:
        codes = {"ggroute": ggroute.stop(), "llama_cpp": raw.stop()}

    def median(key: str, field: str) -> float | None:
        values = [r[field] for r in runs[key] if r[field] is not None]
        return round(statistics.median(values), 3) if values else None

    summary = {key: {f: median(key, f) for f in ("ttft_p50_s", "ttft_p95_s", "decode_tps_median", "total_tps")}
               | {"errors": sum(r["errors"] for r in runs[key])} for key in runs}
    ratios = {f: round(summary["ggroute"][f] / summary["llama_cpp"][f], 3)  # type: ignore[operator]
              for f in ("decode_tps_median", "total_tps", "ttft_p50_s")
              if summary["ggroute"][f] and summary["llama_cpp"][f]}
    print(json.dumps({"args": vars(args), "runs": runs, "summary": summary, "ggroute_over_llama_cpp": ratios,
                      "exit_codes": codes}, indent=2))


if __name__ == "__main__":
    main()
