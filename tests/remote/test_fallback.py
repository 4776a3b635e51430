"""A route's fallback: it runs the request when the route's remote model fails before its first token, with
the reason in the result, the log line and a warning; never after text was streamed, never without a route.
Both models are on the stub server (tests/remote/stub.py); test_llama_server.py falls back to a local model."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ggroute.cli.app import app
from ggroute.core.errors import UpstreamError
from ggroute.models.config import load_config
from ggroute.models.metrics import GenerationResult
from ggroute.router.pipeline import Pipeline
from tests.remote.conftest import log_lines, remote_model
from tests.remote.stub import Stub


def config_with(stub: Stub, remote_config: Callable[..., Path], main: str, **settings: Any) -> Path:
    return remote_config({"main": remote_model(stub.url + "/v1", main, **settings),
                          "spare": remote_model(stub.url + "/v1", "ok")}, fallback="spare")


def run_route(config: Path) -> GenerationResult:
    with Pipeline(load_config(config)) as pipeline, pipeline.run("Say hi.", forced_route="main") as (_, generation):
        return generation.run()


@pytest.mark.parametrize(("main", "reason"), [
    ("http-503", "is over its queue: HTTP 503"),
    ("http-429", "is over its queue: HTTP 429"),
    ("http-500", "failed: HTTP 500"),
    ("bad-json-first", "sent malformed JSON"),
    ("error-event", "reported an error in its stream"),
])
def test_a_failure_before_the_first_token_runs_the_request_on_the_fallback(
        stub: Stub, remote_config: Callable[..., Path], caplog: pytest.LogCaptureFixture, main: str,
        reason: str) -> None:
    config = config_with(stub, remote_config, main)
    with caplog.at_level(logging.WARNING, logger="ggroute.pipeline"):
        result = run_route(config)
    assert result.text == "Hello, world." and result.finish_reason == "stop" and result.model == "spare"
    assert result.fallback is not None and result.fallback.from_model == "main" and reason in result.fallback.reason
    [line] = log_lines(config)  # one request, one line
    assert line["model"] == "spare" and line["route"] == "main" and line["backend"] == "openai"
    assert line["fallback"]["from_model"] == "main" and reason in line["fallback"]["reason"]
    assert "running the request on the route's fallback model 'spare'" in caplog.text and reason in caplog.text


def test_an_unreachable_server_falls_back(stub: Stub, remote_config: Callable[..., Path]) -> None:
    config = remote_config({"main": remote_model("http://127.0.0.1:9/v1", "ok"),
                            "spare": remote_model(stub.url + "/v1", "ok")}, fallback="spare")
    result = run_route(config)
    assert result.fallback is not None and "is unreachable" in result.fallback.reason and result.model == "spare"


def test_a_server_silent_past_read_timeout_before_any_token_falls_back(
        stub: Stub, remote_config: Callable[..., Path]) -> None:
    result = run_route(config_with(stub, remote_config, "stall-before", read_timeout_s=0.5, timeout_s=20))
    assert result.fallback is not None and "went silent" in result.fallback.reason
    assert result.text == "Hello, world."


@pytest.mark.parametrize("main", ["bad-json-mid", "no-finish"])
def test_no_fallback_once_text_was_streamed(stub: Stub, remote_config: Callable[..., Path], main: str) -> None:
    config = config_with(stub, remote_config, main)
    spare_requests = sum(1 for s in stub.seen if s.body.get("model") == "ok")
    with pytest.raises(UpstreamError) as caught:
        run_route(config)
    assert not caught.value.before_output
    assert sum(1 for s in stub.seen if s.body.get("model") == "ok") == spare_requests  # the fallback never ran


def test_a_timeout_before_the_first_token_is_a_timeout_not_a_fallback(
        stub: Stub, remote_config: Callable[..., Path]) -> None:
    result = run_route(config_with(stub, remote_config, "stall-before", timeout_s=0.5, read_timeout_s=30))
    assert result.finish_reason == "timeout" and result.fallback is None and result.model == "main"


def test_a_healthy_route_model_answers_itself(stub: Stub, remote_config: Callable[..., Path]) -> None:
    config = config_with(stub, remote_config, "counting", max_tokens=3)
    result = run_route(config)
    assert result.model == "main" and result.fallback is None and result.text == " 0 1 2"
    [line] = log_lines(config)
    assert "fallback" not in line and line["model"] == "main"


def test_generate_by_model_name_never_falls_back(stub: Stub, remote_config: Callable[..., Path]) -> None:
    config = config_with(stub, remote_config, "http-503")
    result = CliRunner().invoke(app, ["generate", "--model", "main", "Say hi.", "-c", str(config)])
    assert result.exit_code == 1, result.output
    assert "is over its queue: HTTP 503" in result.stderr and "Traceback" not in result.output
    assert result.stdout.strip() == ""


def test_run_json_carries_the_fallback_and_the_warning(stub: Stub, remote_config: Callable[..., Path],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    config = config_with(stub, remote_config, "http-500")
    with caplog.at_level(logging.WARNING, logger="ggroute.pipeline"):  # main() sends warnings to stderr
        result = CliRunner().invoke(app, ["run", "--route", "main", "Say hi.", "--json", "-c", str(config)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["model"] == "spare" and payload["route"] == "main" and payload["text"] == "Hello, world."
    assert payload["fallback"]["from_model"] == "main" and "HTTP 500" in payload["fallback"]["reason"]
    assert payload["remote"]["upstream_model"] == "ok"
    assert "running the request on the route's fallback model 'spare'" in caplog.text
