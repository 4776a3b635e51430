"""llama-cpp-python's own OpenAI server (`python -m llama_cpp.server`, its `server` extra) as a real remote
engine for the tests: SmolLM2 on a free loopback port, one thread, ended with SIGTERM (SIGKILL if it must)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from ggroute.models.config import SMOLLM2_PATH
from ggroute.models.locate import resolve_model_path

ALIAS = "smollm2"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LlamaServer:
    def __init__(self, context: int = 2048, start_timeout_s: float = 120.0) -> None:
        path = resolve_model_path(SMOLLM2_PATH, Path.cwd())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # interrupt_requests False: a new request waits for the running one instead of interrupting it, so a
        # request that was cancelled on ggroute's side frees the server only if its stream was really closed.
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(context), "--n_threads", "1",
               "--n_threads_batch", "1", "--interrupt_requests", "False", "--seed", "42"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited:\n{''.join(self.output)}")
            try:
                if httpx.get(self.url + "/v1/models", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not start:\n{''.join(self.output)}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
