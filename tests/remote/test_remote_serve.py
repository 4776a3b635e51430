"""`ggroute serve` in front of remote models (a real server process; the stub as the engine): a request naming a
remote model streams through, its usage comes back, and a failing engine is an OpenAI-style error naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.remote.conftest import remote_model
from tests.remote.stub import Stub
from tests.server.conftest import ServerProcess, openai_client


@pytest.fixture(scope="module")
def served(stub: Stub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("serve-remote")
    config = folder / "config.json"
    config.write_text(json.dumps({"models": {"main": remote_model(stub.url + "/v1", "ok"),
                                             "busy": remote_model(stub.url + "/v1", "http-503")},
                                  "log_file": str(folder / "requests.jsonl")}), encoding="utf-8")
    server = ServerProcess(Path(config))
    yield server
    assert server.stop() == 0, server.stderr


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


def test_a_failing_engine_is_an_error_naming_it(served: ServerProcess, stub: Stub) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        openai_client(served).chat.completions.create(model="busy", messages=[{"role": "user", "content": "hi"}])
    assert f"model 'busy': {stub.url}/v1 is over its queue: HTTP 503" in str(caught.value)
