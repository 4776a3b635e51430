"""Servers for the tests: a real `ggroute serve` process on a free loopback port, or the app in-process.

`ServerProcess` starts `python -m ggroute.cli serve --port 0` (the system picks a free port, the server prints
it), reads its stderr on a thread (so the pipe never fills) and ends it with SIGTERM, then SIGKILL if it must.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ggroute.models.locate import CACHE_ENV
from tests.conftest import SHIPPED

READY = re.compile(r"listening on (http://\S+)")


class ServerProcess:
    def __init__(self, config: Path, env: dict[str, str] | None = None, start_timeout_s: float = 60.0) -> None:
        self.config = config
        cmd = [sys.executable, "-m", "ggroute.cli", "serve", "--config", str(config), "--port", "0",
               "--log-level", "warning"]
        # The user's GGROUTE_* settings stay out (module fixtures run before conftest's env isolation); the
        # test cache folder for assembled and converted models stays in.
        base = {k: v for k, v in os.environ.items() if not k.startswith("GGROUTE_") or k == CACHE_ENV}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**base, **(env or {})})
        self.lines: list[str] = []
        self.url = ""
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                found = READY.search(line)
                if found and not self.url:
                    self.url = found.group(1)
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(start_timeout_s) or not self.url:
            self.stop()
            raise RuntimeError(f"ggroute serve did not start:\n{self.stderr}")

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode

    def log_lines(self) -> list[dict[str, Any]]:
        path = Path(json.loads(self.config.read_text())["log_file"])
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def server_config(path: Path, **server: object) -> Path:
    """The shipped config (router, coder, algorithm) made small: one thread per model, contexts of 1024, the
    coder's max_tokens 400 with the loop guard off (tests that need a long generation count numbers)."""
    data = json.loads(json.dumps(SHIPPED))
    data["log_file"] = str(path.parent / "requests.jsonl")
    for model in data["models"].values():
        model["n_threads"] = 1
        model["context_size"] = 1024
    data["models"]["coder"].update(max_tokens=400, loop_guard={"enabled": False})
    data["models"]["algorithm"]["max_tokens"] = 32
    data["server"] = server
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server per test module, queue_size 1 (the 429 test fills it)."""
    config = server_config(tmp_path_factory.mktemp("serve") / "config.json", queue_size=1)
    server = ServerProcess(config)
    yield server
    assert server.stop() == 0, server.stderr


def openai_client(server: ServerProcess, **kwargs: Any) -> Any:
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key=kwargs.pop("api_key", "unused"), max_retries=0,
                         timeout=kwargs.pop("timeout", 120.0), **kwargs)


def wait_until(check: Any, timeout_s: float = 10.0, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step_s)
    return bool(check())
