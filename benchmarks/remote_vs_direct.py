"""Decode tokens/s of a model reached through ggroute's remote backend against the same server called directly
with the `openai` client, side by side in one run.

    python benchmarks/remote_vs_direct.py [--rounds 10] [--max-tokens 128] [--threads 1] [--context 2048]

Starts llama-cpp-python's own OpenAI server (`python -m llama_cpp.server`, `pip install 'ggroute[serve-bench]'`)
with SmolLM2 on a free loopback port. Each round sends the same streamed completion request twice, alternating
which goes first: once through ggroute (a config whose model is `"backend": "openai"` at that server with
`prompt_format` completion, through `Pipeline.generate`, as `ggroute generate` does) and once with
`openai.OpenAI(...).completions.create(..., stream=True)`, the same request body. The prompt is a count
(`1, 2, 3, ...`) that SmolLM2 continues for thousands of tokens, so every request runs to max_tokens (the loop
guard is off for it: counting looks like a loop to it). Both sides measure decode the same way: tokens after the
first / first to last text chunk (ggroute: its `timings.decode_tokens_per_s`, from the stream unless the server
sends timings). Prints a JSON report: medians per side and the ratio ggroute / direct (1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import json
import os
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
import openai

from ggroute.models.config import SMOLLM2_PATH, load_config
from ggroute.models.locate import resolve_model_path
from ggroute.router.pipeline import Pipeline

PROMPT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
ALIAS = "smollm2"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, threads: int, context: int) -> subprocess.Popen[str]:
    path = resolve_model_path(SMOLLM2_PATH, Path.cwd())
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", ALIAS, "--host",
         "127.0.0.1", "--port", str(port), "--n_ctx", str(context), "--n_threads", str(threads),
         "--n_threads_batch", str(threads), "--interrupt_requests", "False"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True).start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"llama_cpp.server exited:\n{''.join(output)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"llama_cpp.server did not start:\n{''.join(output)}")


def write_config(folder: Path, url: str, max_tokens: int) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps({
        "models": {"main": {"backend": "openai", "base_url": url, "model": ALIAS, "max_tokens": max_tokens,
                            "timeout_s": 600, "read_timeout_s": 120, "loop_guard": {"enabled": False},
                            "prompt_format": "completion", "completion_template": "{task}"}},
        "log_file": str(folder / "requests.jsonl"),
    }), encoding="utf-8")
    return path


def through_ggroute(pipeline: Pipeline) -> dict[str, Any]:
    with pipeline.generate("main", PROMPT) as generation:
        result = generation.run()
    assert result.remote is not None
    return {"decode_tps": result.timings.decode_tokens_per_s, "ttft_s": result.timings.time_to_first_token_s,
            "tokens": result.usage.completion_tokens, "finish": result.finish_reason,
            "timings_from": result.remote.timings_from, "usage_from": result.remote.usage_from}


def direct(client: openai.OpenAI, max_tokens: int) -> dict[str, Any]:
    """The request ggroute sends (models/remote/model.py), measured the way ggroute measures it."""
    sent = time.perf_counter()
    first = last = None
    chunks = 0
    usage_tokens = None
    finish = None
    stream = client.completions.create(
        model=ALIAS, prompt=PROMPT, max_tokens=max_tokens, temperature=0.0, top_p=0.95, presence_penalty=0.0,
        frequency_penalty=0.0, stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage is not None:
            usage_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.text:
                last = time.perf_counter()
                first = first or last
                chunks += 1
            finish = choice.finish_reason or finish
    tokens = usage_tokens if usage_tokens is not None else chunks
    decode_s = (last - first) if first is not None and last is not None else 0.0
    return {"decode_tps": round((tokens - 1) / decode_s, 2) if decode_s > 0 else None,
            "ttft_s": round(first - sent, 4) if first is not None else None, "tokens": tokens, "finish": finish}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--context", type=int, default=2048)
    args = parser.parse_args()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    load_before = os.getloadavg()
    server = start_server(port, args.threads, args.context)
    runs: dict[str, list[dict[str, Any]]] = {"ggroute": [], "direct": []}
    try:
        with tempfile.TemporaryDirectory() as folder, Pipeline(load_config(write_config(Path(folder), url,
                                                                                          args.max_tokens))) as pipe:
            client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
            through_ggroute(pipe), direct(client, args.max_tokens)  # warm up: the prompt's KV cache, connections
            for round_no in range(args.rounds):
                order = ("ggroute", "direct") if round_no % 2 == 0 else ("direct", "ggroute")
                for side in order:
                    row = through_ggroute(pipe) if side == "ggroute" else direct(client, args.max_tokens)
                    runs[side].append(row)
                    print(f"round {round_no + 1} {side}: {json.dumps(row)}", file=sys.stderr, flush=True)
    finally:
        server.terminate()
        server.wait(30)

    def median(side: str, key: str) -> float | None:
        values = [r[key] for r in runs[side] if r[key] is not None]
        return round(statistics.median(values), 3) if values else None

    summary = {side: {"decode_tps_median": median(side, "decode_tps"), "ttft_median_s": median(side, "ttft_s"),
                      "tokens_median": median(side, "tokens")} for side in runs}
    ggroute_tps, direct_tps = summary["ggroute"]["decode_tps_median"], summary["direct"]["decode_tps_median"]
    report = {
        "rounds": args.rounds, "max_tokens": args.max_tokens, "server_threads": args.threads,
        "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "figures_from": runs["ggroute"][0]["timings_from"] if runs["ggroute"] else None,
        "summary": summary,
        "decode_ratio_ggroute_over_direct": round(ggroute_tps / direct_tps, 3) if ggroute_tps and direct_tps else None,
        "runs": runs,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
