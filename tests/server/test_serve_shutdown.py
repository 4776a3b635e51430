"""Ctrl+C and SIGTERM stop `ggroute serve` cleanly: the running generation stops at its next token, its stream
still ends with the last chunk and `data: [DONE]`, the process exits 0 within seconds, no thread left behind."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ServerProcess, server_config
from tests.server.test_serve_openai import COUNTING

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_cancels_the_stream_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    server = ServerProcess(server_config(tmp_path / "config.json"))
    try:
        body = {"model": "coder", "prompt": COUNTING, "max_tokens": 400, "stream": True}
        with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as response:
            lines = response.iter_lines()
            data: list[str] = []
            while len(data) < 3:
                line = next(lines)
                if line.startswith("data: "):
                    data.append(line[6:])
            signalled = time.monotonic()
            server.proc.send_signal(sig)
            data += [line[6:] for line in lines if line.startswith("data: ")]
        code = server.proc.wait(15)
        took = time.monotonic() - signalled
    finally:
        server.stop()
    assert code == 0, server.stderr
    assert took < 8, f"shutdown took {took:.1f} s"
    assert data[-1] == "[DONE]"
    last = json.loads(data[-2])
    assert last["choices"][0]["finish_reason"] == "cancelled" and last["ggroute"]["finish_reason"] == "cancelled"
    assert "Traceback" not in server.stderr and "threads still running" not in server.stderr
    logged = server.log_lines()
    assert [line["finish_reason"] for line in logged] == ["cancelled"]
    assert 0 < logged[0]["usage"]["completion_tokens"] < 400
