"""`ggroute serve` in front of remote models (a real server process; the stub as the engine): a request naming a
remote model streams through, its usage comes back, a failing engine is a 502 or 503 naming it, a route's
fallback answers for a failing engine (only when the request chose the route), and the status shows remote
models as remote."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ggroute.models.config import SMOLLM2_PATH
from tests.remote.conftest import remote_model
from tests.remote.stub import Stub
from tests.server.conftest import ServerProcess, openai_client, wait_until


def start_server(stub: Stub, folder: Path, **server: Any) -> ServerProcess:
    config = folder / "config.json"
    url = stub.url + "/v1"
    config.write_text(json.dumps({
        "models": {"router": {"path": SMOLLM2_PATH, "context_size": 1024, "n_threads": 1},  # header read only
                   "main": remote_model(url, "ok"), "busy": remote_model(url, "http-503"),
                   "broken": remote_model(url, "http-500"), "spare": remote_model(url, "ok"),
                   "slowpoke": remote_model(url, "slow", max_tokens=20)},
        "router": {"model": "router", "default_route": "flaky", "routes": {
            "flaky": {"model": "busy", "fallback": "spare", "description": "everything"},
            "patient": {"model": "broken", "fallback": "slowpoke", "description": "nothing"}}},
        "log_file": str(folder / "requests.jsonl"), "server": server}), encoding="utf-8")
    return ServerProcess(config)


@pytest.fixture(scope="module")
def served(stub: Stub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(stub, tmp_path_factory.mktemp("serve-remote"))
    yield server
    assert server.stop() == 0, server.stderr


def ask(served: ServerProcess, model: str) -> Any:
    return openai_client(served).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def test_a_remote_model_streams_through_ggroute_serve(served: ServerProcess) -> None:
    client = openai_client(served)
    stream = client.chat.completions.create(model="main", messages=[{"role": "user", "content": "hi"}], stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello, world."
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage and usage[-1].completion_tokens == 4
    line = served.log_lines()[-1]
    assert line["backend"] == "openai" and line["remote"]["upstream_model"] == "ok"


def test_an_engine_over_its_queue_is_a_503_with_retry_after(served: ServerProcess, stub: Stub) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        ask(served, "busy")  # named directly: no fallback
    assert caught.value.status_code == 503 and caught.value.response.headers["Retry-After"].isdigit()
    assert f"model 'busy': {stub.url}/v1 is over its queue: HTTP 503" in str(caught.value)
    error = caught.value.response.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "upstream_over_queue"


def test_a_failing_engine_is_a_502_bad_gateway(served: ServerProcess, stub: Stub) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        ask(served, "broken")
    assert caught.value.status_code == 502
    error = caught.value.response.json()["error"]
    assert error["code"] == "upstream_error" and f"model 'broken': {stub.url}/v1 failed: HTTP 500" in error["message"]


def test_a_route_named_in_the_request_falls_back_and_says_why(served: ServerProcess) -> None:
    response = ask(served, "flaky")
    assert response.choices[0].message.content == "Hello, world." and response.model == "spare"
    info = response.model_extra["ggroute"]
    assert info["route"] == "flaky" and info["model"] == "spare"
    assert info["fallback"]["from_model"] == "busy" and "is over its queue: HTTP 503" in info["fallback"]["reason"]
    line = served.log_lines()[-1]
    assert line["model"] == "spare" and line["route"] == "flaky" and line["requested_model"] == "flaky"
    assert line["fallback"]["from_model"] == "busy" and "HTTP 503" in line["fallback"]["reason"]
    assert "running the request on the route's fallback model 'spare'" in served.stderr


def test_auto_falls_back_on_the_route_it_chose(served: ServerProcess) -> None:
    # Both routes' engines fail: whichever route the router picks, its fallback answers, within its own limits.
    response = ask(served, "auto")
    info = response.model_extra["ggroute"]
    route_model, fallback = {"flaky": ("busy", "spare"), "patient": ("broken", "slowpoke")}[info["route"]]
    assert info["fallback"]["from_model"] == route_model and response.model == info["model"] == fallback
    assert response.usage.completion_tokens == (20 if fallback == "slowpoke" else 4)  # slowpoke: max_tokens 20
    line = served.log_lines()[-1]
    assert line["requested_model"] == "auto" and line["fallback"]["from_model"] == route_model


def test_a_healthy_answer_has_no_fallback(served: ServerProcess) -> None:
    info = ask(served, "main").model_extra["ggroute"]
    assert info["fallback"] is None and info["model"] == "main"


def test_the_fallback_waits_for_its_models_turn(served: ServerProcess, stub: Stub) -> None:
    """slowpoke is serving a request when route `patient` falls back to it: the fallback queues behind it."""
    answers: dict[str, Any] = {}

    def call(model: str) -> None:
        answers[model] = ask(served, model)

    direct = threading.Thread(target=call, args=("slowpoke",))
    direct.start()
    assert wait_until(lambda: models(served)["slowpoke"]["busy"])
    routed = threading.Thread(target=call, args=("patient",))
    routed.start()
    assert wait_until(lambda: models(served)["slowpoke"]["queued"] == 1), "the fallback did not queue for its turn"
    direct.join(30)
    routed.join(30)
    assert answers["slowpoke"].usage.completion_tokens == 20
    fallback = answers["patient"].model_extra["ggroute"]["fallback"]
    assert answers["patient"].model == "slowpoke" and "HTTP 500" in fallback["reason"]
    assert answers["patient"].usage.completion_tokens == 20
    assert not models(served)["slowpoke"]["busy"]


def test_a_fallback_whose_queue_is_full_is_a_503_and_frees_every_turn(stub: Stub, tmp_path: Path) -> None:
    server = start_server(stub, tmp_path, queue_size=0)  # nobody may wait: a busy model refuses at once
    try:
        direct = threading.Thread(target=ask, args=(server, "slowpoke"))
        direct.start()
        assert wait_until(lambda: models(server)["slowpoke"]["busy"])
        with pytest.raises(openai.APIStatusError) as caught:
            ask(server, "patient")
        assert caught.value.status_code == 503 and caught.value.response.headers["Retry-After"].isdigit()
        error = caught.value.response.json()["error"]
        assert error["code"] == "fallback_busy" and "model 'slowpoke' is busy" in error["message"]
        direct.join(30)
        rows = models(server)
        assert not rows["slowpoke"]["busy"] and not rows["broken"]["busy"]  # both turns were given back
        assert ask(server, "patient").model_extra["ggroute"]["fallback"]["from_model"] == "broken"
    finally:
        assert server.stop() == 0, server.stderr


def models(served: ServerProcess) -> dict[str, Any]:
    rows = httpx.get(served.url + "/ggroute/models", timeout=10).json()["models"]
    return {row["name"]: row for row in rows}


def test_status_shows_remote_models_as_remote(served: ServerProcess, stub: Stub) -> None:
    rows = models(served)
    main = rows["main"]
    assert main["error"] is None and main["estimate_bytes"] is None and main["context_size"] is None
    assert main["backend"] == "openai" and main["base_url"] == stub.url + "/v1"
    assert rows["router"]["backend"] == "llama.cpp" and rows["router"]["base_url"] is None
    page = httpx.get(served.url + "/", timeout=10).text
    assert f"remote (openai) at {stub.url}/v1" in page and "is remote (backend" not in page
