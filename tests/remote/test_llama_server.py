"""The remote backend against a real engine: llama-cpp-python's own OpenAI server with SmolLM2 on a loopback port
(tests/remote/llama_server.py). Streaming, usage, the timeout and Ctrl+C (the server logs that
its client closed the stream, and it is free again afterwards), and the route's fallback to a local model once the
server is stopped. Real models: marked slow."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ggroute.models.backend import RawText, TaskInput
from ggroute.models.config import SMOLLM2_PATH, load_config
from ggroute.models.generate import RequestOptions
from ggroute.models.metrics import GenerationResult
from ggroute.router.pipeline import Pipeline
from tests.remote.conftest import log_lines, remote_model
from tests.remote.llama_server import ALIAS, LlamaServer

pytestmark = pytest.mark.slow

TASK = "Write a Python function that returns the square of a number."
COUNT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # as a completion prompt, SmolLM2 counts on for thousands of tokens


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaServer]:
    server = LlamaServer()
    yield server
    server.stop()


def config(engine: LlamaServer, remote_config: Callable[..., Path], fallback: str | None = None,
           **settings: Any) -> Path:
    models: dict[str, Any] = {"main": remote_model(engine.url + "/v1", ALIAS, **{"read_timeout_s": 60, **settings})}
    if fallback is not None:
        models[fallback] = {"path": SMOLLM2_PATH, "context_size": 1024, "max_tokens": 12, "n_threads": 1}
    return remote_config(models, fallback=fallback)


def generate(path: Path, task: TaskInput = TASK,
             options: RequestOptions | None = None) -> tuple[list[str], GenerationResult]:
    with Pipeline(load_config(path)) as pipeline, pipeline.generate("main", task, options) as generation:
        pieces = list(generation)
        assert generation.result is not None
        return pieces, generation.result


def disconnects(engine: LlamaServer) -> int:
    """How many streams the server saw its client close (it logs each one)."""
    return "".join(engine.output).count("Disconnected from client")


def saw_disconnect(engine: LlamaServer, before: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if disconnects(engine) > before:
            return True
        time.sleep(0.05)
    return False


def short_request_finishes(path: Path) -> GenerationResult:
    """A request that finishes only when the server is free: it waits behind any generation still running there."""
    return generate(path, "Say hi.", RequestOptions(max_tokens=6, timeout_s=20))[1]


def test_streams_what_the_server_gives_its_own_openai_client(engine: LlamaServer,
                                                             remote_config: Callable[..., Path]) -> None:
    import openai

    path = config(engine, remote_config, max_tokens=24)
    pieces, result = generate(path)
    assert len(pieces) > 3 and "".join(pieces) == result.text  # streamed, not one block
    direct = openai.OpenAI(base_url=engine.url + "/v1", api_key="unused", max_retries=0).chat.completions.create(
        model=ALIAS, messages=[{"role": "user", "content": TASK}], max_tokens=24, temperature=0)
    assert result.text == direct.choices[0].message.content
    assert result.finish_reason == direct.choices[0].finish_reason == "length"
    assert result.remote is not None and result.timings.decode_tokens_per_s is not None
    assert direct.usage is not None and result.usage.completion_tokens == direct.usage.completion_tokens
    if result.remote.usage_from == "upstream":
        assert result.usage.prompt_tokens == direct.usage.prompt_tokens
    [line] = log_lines(path)
    assert line["backend"] == "openai" and line["remote"]["base_url"] == engine.url + "/v1"
    assert line["usage"]["completion_tokens"] == 24


def test_timeout_keeps_the_partial_text_and_frees_the_server(engine: LlamaServer,
                                                             remote_config: Callable[..., Path]) -> None:
    path = config(engine, remote_config, max_tokens=1900, timeout_s=3, loop_guard={"enabled": False})
    short_request_finishes(path)  # warm: the openai client imported, the server's first request done
    closed_before = disconnects(engine)
    started = time.perf_counter()
    _, result = generate(path, RawText(COUNT))
    assert result.finish_reason == "timeout" and result.text.strip()
    assert time.perf_counter() - started < 3 + 1.5
    assert saw_disconnect(engine, closed_before)  # the server saw the stream closed (and stopped generating)
    after = short_request_finishes(path)
    assert after.finish_reason in ("stop", "length"), after


def test_ctrl_c_cancels_with_the_partial_text_and_frees_the_server(engine: LlamaServer,
                                                                   remote_config: Callable[..., Path]) -> None:
    path = config(engine, remote_config, max_tokens=1900, timeout_s=120, loop_guard={"enabled": False},
                  prompt_format="completion", completion_template="{task}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGROUTE_")}
    closed_before = disconnects(engine)
    proc = subprocess.Popen([sys.executable, "-m", "ggroute.cli", "generate", "--model", "main", COUNT, "-c",
                             str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    if not ready:
        proc.kill()
        pytest.fail(f"no text within 60 s: {proc.communicate()[1]!r}")
    first = os.read(proc.stdout.fileno(), 256)  # text is streaming (unbuffered: select sees the rest)
    while not first.strip() and select.select([proc.stdout], [], [], 30)[0]:  # up to a visible character
        chunk = os.read(proc.stdout.fileno(), 256)
        if not chunk:  # the process ended: the assertions below say how
            break
        first += chunk
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert (first + out).strip() and b"Traceback" not in err
    assert b"finish=cancelled" in err and b"interrupted" in err
    [line] = log_lines(path)
    assert line["finish_reason"] == "cancelled" and line["backend"] == "openai"
    assert saw_disconnect(engine, closed_before)
    after = short_request_finishes(path)
    assert after.finish_reason in ("stop", "length"), after


def test_the_route_falls_back_to_a_local_model_once_the_server_is_stopped(
        engine: LlamaServer, remote_config: Callable[..., Path]) -> None:
    path = config(engine, remote_config, fallback="local", max_tokens=8)
    with Pipeline(load_config(path)) as pipeline:
        with pipeline.run(TASK, forced_route="main") as (_, generation):
            healthy = generation.run()
        assert healthy.model == "main" and healthy.fallback is None
        engine.stop()
        with pipeline.run(TASK, forced_route="main") as (_, generation):
            fallen = generation.run()
    assert fallen.model == "local" and fallen.text and fallen.remote is None
    assert fallen.fallback is not None and "is unreachable" in fallen.fallback.reason
    lines = log_lines(path)
    assert [line["model"] for line in lines] == ["main", "local"]
    assert lines[1]["backend"] == "llama.cpp" and lines[1]["fallback"]["from_model"] == "main"
    assert json.dumps(lines[1]["fallback"]).count("unreachable") == 1
