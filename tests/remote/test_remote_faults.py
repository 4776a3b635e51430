"""The remote backend against a stub OpenAI-compatible server (tests/remote/stub.py): the generation contract
(text, finish reasons, usage and where it came from, the loop guard) and every bad answer a server can give, each
a clear UpstreamError or a partial result, never a hang past timeout_s. Through the pipeline (real config,
catalog, pool and request log); the CLI's exit codes in test_remote_cli.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ggroute.core.errors import ConfigError, UpstreamError
from ggroute.models.backend import Conversation, Message, RawText
from ggroute.models.config import load_config
from ggroute.models.generate import RequestOptions
from ggroute.models.metrics import GenerationResult
from ggroute.router.pipeline import Pipeline
from tests.remote.conftest import log_lines, remote_model
from tests.remote.stub import Stub

Run = Callable[..., GenerationResult]


@pytest.fixture
def run(stub: Stub, remote_config: Callable[..., Path]) -> Iterator[Run]:
    """run(upstream_model, task="Say hi.", cancel_after_s=None, **settings): one request to a remote model named
    "main" on the stub; returns its result (the config is at run.config)."""
    pipelines: list[Pipeline] = []

    def go(upstream: str, task: Any = "Say hi.", cancel_after_s: float | None = None,
           options: RequestOptions | None = None, **settings: Any) -> GenerationResult:
        config = remote_config({"main": remote_model(stub.url + "/v1", upstream, **settings)})
        go.config = config  # type: ignore[attr-defined]
        pipeline = Pipeline(load_config(config))
        pipelines.append(pipeline)
        cancel = threading.Event()
        if cancel_after_s is not None:
            threading.Timer(cancel_after_s, cancel.set).start()
        with pipeline.generate("main", task, options, cancel=cancel) as generation:
            return generation.run()

    yield go
    for pipeline in pipelines:
        pipeline.close()


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    return action(), time.perf_counter() - started


def test_streams_the_answer_with_the_servers_usage(run: Run, stub: Stub) -> None:
    result = run("ok")
    assert result.text == "Hello, world." and result.finish_reason == "stop"
    assert result.usage.model_dump() == {"prompt_tokens": 11, "cached_prompt_tokens": 0, "completion_tokens": 4}
    assert result.remote is not None
    assert (result.remote.backend, result.remote.upstream_model) == ("openai", "ok")
    assert (result.remote.usage_from, result.remote.timings_from) == ("upstream", "stream")
    assert result.timings.decode_tokens_per_s is not None and result.timings.time_to_first_token_s is not None
    body = stub.last("ok").body
    assert body["messages"] == [{"role": "user", "content": "Say hi."}] and body["stream"] is True
    assert body["max_tokens"] == 32 and body["temperature"] == 0.0 and "seed" not in body
    [line] = log_lines(run.config)  # type: ignore[attr-defined]
    assert line["backend"] == "openai" and line["model"] == "main" and line["finish_reason"] == "stop"
    assert line["remote"]["usage_from"] == "upstream" and line["text_chars"] == len("Hello, world.")


def test_llama_server_timings_are_the_servers_own_figures(run: Run) -> None:
    result = run("timings")
    assert result.remote is not None
    assert (result.remote.usage_from, result.remote.timings_from) == ("stream", "upstream")
    assert result.usage.completion_tokens == 4  # counted from the stream: this server sent no usage
    assert result.usage.prompt_tokens == 0  # unknown without the server's usage
    t = result.timings
    assert (t.decode_s, t.decode_tokens_per_s, t.prefill_s, t.prefill_tokens_per_s) == (0.02, 200.0, 0.03, 300.0)


def test_max_tokens_is_sent_and_the_servers_length_stop_is_finish_length(run: Run, stub: Stub) -> None:
    result = run("counting", options=RequestOptions(max_tokens=5))
    assert stub.last("counting").body["max_tokens"] == 5
    assert result.text == " 0 1 2 3 4" and result.finish_reason == "length"
    assert result.limits.max_tokens == 5
    # ggroute has its max_tokens, but reads on to the server's finish and usage chunk (not closing early)
    assert result.remote is not None and result.remote.usage_from == "upstream"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (7, 5)
    assert stub.last("counting").ended.wait(5) and not stub.last("counting").disconnected


def test_a_server_that_ignores_max_tokens_is_cut_off_at_it(run: Run, stub: Stub) -> None:
    result = run("slow", options=RequestOptions(max_tokens=3))
    assert result.text == " w0 w1 w2" and result.finish_reason == "length" and result.usage.completion_tokens == 3
    assert stub.last("slow").ended.wait(5) and stub.last("slow").disconnected


def test_sampling_and_seed_go_to_the_server(run: Run, stub: Stub) -> None:
    run("ok", temperature=0.7, seed=9, top_p=0.8, presence_penalty=0.5)
    body = stub.last("ok").body
    assert (body["temperature"], body["seed"], body["top_p"], body["presence_penalty"]) == (0.7, 9, 0.8, 0.5)


def test_a_stop_string_ends_the_answer_and_closes_the_stream(run: Run, stub: Stub) -> None:
    result = run("slow", stop=[" w3"])
    assert result.text == " w0 w1 w2" and result.finish_reason == "stop"
    assert stub.last("slow").ended.wait(5) and stub.last("slow").disconnected


def test_the_loop_guard_stops_a_looping_server(run: Run, stub: Stub) -> None:
    result = run("looping", max_tokens=400)
    assert result.finish_reason == "repetition" and result.text == "import random\n"
    assert stub.last("looping").ended.wait(5) and stub.last("looping").disconnected


def test_timeout_keeps_the_partial_text_and_closes_the_stream(run: Run, stub: Stub) -> None:
    result, took = timed(lambda: run("slow", timeout_s=0.6, max_tokens=400))
    assert result.finish_reason == "timeout" and result.text.startswith(" w0 w1")
    assert took < 0.6 + 0.5
    assert stub.last("slow").ended.wait(5) and stub.last("slow").disconnected


def test_cancel_keeps_the_partial_text_and_closes_the_stream(run: Run, stub: Stub) -> None:
    result, took = timed(lambda: run("slow", cancel_after_s=0.4, max_tokens=400))
    assert result.finish_reason == "cancelled" and result.text.startswith(" w0")
    assert took < 0.4 + 0.5
    assert stub.last("slow").ended.wait(5) and stub.last("slow").disconnected


def test_a_server_silent_before_the_first_token_times_out_at_timeout_s(run: Run) -> None:
    result, took = timed(lambda: run("stall-before", timeout_s=0.5, read_timeout_s=30))
    assert result.finish_reason == "timeout" and result.text == ""
    assert took < 0.5 + 0.5


def test_a_server_silent_before_the_first_token_past_read_timeout_is_an_error(run: Run) -> None:
    with pytest.raises(UpstreamError, match=r"went silent: nothing for read_timeout_s \(0.5 s\) before the first") \
            as caught:
        timed(lambda: run("stall-before", timeout_s=30, read_timeout_s=0.5))
    assert caught.value.before_output


def test_a_server_that_stalls_mid_stream_times_out_with_its_text(run: Run) -> None:
    result, took = timed(lambda: run("stall-mid", timeout_s=0.6, read_timeout_s=30))
    assert result.finish_reason == "timeout" and result.text == "Hello,"
    assert took < 0.6 + 0.5


def test_a_server_that_stalls_mid_stream_past_read_timeout_is_an_error(run: Run) -> None:
    started = time.perf_counter()
    with pytest.raises(UpstreamError, match="went silent: .* in the middle of the answer") as caught:
        run("stall-mid", timeout_s=30, read_timeout_s=0.5)
    assert not caught.value.before_output and time.perf_counter() - started < 0.5 + 1.0


@pytest.mark.parametrize(("upstream", "message", "before_output"), [
    ("bad-json-first", "sent malformed JSON in its stream", True),
    ("bad-json-mid", "sent malformed JSON in its stream", False),
    ("wrong-shape", "sent text that is not a string", True),
    ("no-finish", "ended its stream without a finish_reason", False),
    ("error-event", "reported an error in its stream: out of memory on the GPU", True),
    ("garbage-sse", "sent a stream that is not UTF-8 text (invalid start byte", True),
    ("not-streaming", "ended its stream without a finish_reason", True),
    ("http-400", "refused the request: HTTP 400: stub says 400", True),
    ("http-401", "refused the request: HTTP 401: stub says 401", True),
    ("http-429", "is over its queue: HTTP 429", True),
    ("http-503", "is over its queue: HTTP 503", True),
    ("http-500", "failed: HTTP 500: stub says 500", True),
    ("no-such-model", "refused the request: HTTP 404: model 'no-such-model' not found", True),
])
def test_bad_answers_are_upstream_errors_naming_the_server(run: Run, stub: Stub, upstream: str, message: str,
                                                            before_output: bool) -> None:
    with pytest.raises(UpstreamError) as caught:
        run(upstream)
    assert f"model 'main': {stub.url}/v1 " in str(caught.value) and message in str(caught.value)
    assert caught.value.before_output is before_output
    assert log_lines(run.config) == []  # type: ignore[attr-defined]  # a failed request has no result to log


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_is_unreachable(run: Run, remote_config: Callable[..., Path]) -> None:
    config = remote_config({"main": remote_model(f"http://127.0.0.1:{free_port()}/v1", "ok")})
    with Pipeline(load_config(config)) as pipeline, pytest.raises(UpstreamError, match=r"is unreachable \(.*refused"):
        pipeline.generate("main", "hi").__enter__().run()


def test_an_unknown_host_is_unreachable(remote_config: Callable[..., Path]) -> None:
    config = remote_config({"main": remote_model("http://no-such-host.invalid/v1", "ok")})
    with Pipeline(load_config(config)) as pipeline, pytest.raises(UpstreamError, match="is unreachable"):
        pipeline.generate("main", "hi").__enter__().run()


def test_a_host_that_never_completes_the_connection_gives_up_at_connect_timeout(
        remote_config: Callable[..., Path]) -> None:
    """A listener whose backlog is full: the kernel drops further SYNs, as for a host that does not answer."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))  # takes the one backlog slot
        config = remote_config({"main": remote_model(f"http://127.0.0.1:{port}/v1", "ok", connect_timeout_s=0.5,
                                                     timeout_s=10)})
        started = time.perf_counter()
        with Pipeline(load_config(config)) as pipeline, pytest.raises(UpstreamError, match="unreachable"):
            pipeline.generate("main", "hi").__enter__().run()
        assert time.perf_counter() - started < 0.5 + 2.0


def test_a_missing_api_key_variable_is_a_config_error_before_any_request(
        stub: Stub, remote_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GGROUTE_TEST_KEY", raising=False)
    config = remote_config({"main": remote_model(stub.url + "/v1", "ok", api_key_env="GGROUTE_TEST_KEY")})
    requests = len(stub.seen)
    with Pipeline(load_config(config)) as pipeline, pytest.raises(
            ConfigError, match=r"api_key_env names \$GGROUTE_TEST_KEY, which is not set .*export GGROUTE_TEST_KEY="):
        pipeline.generate("main", "hi").__enter__()
    assert len(stub.seen) == requests


def test_the_key_comes_from_the_named_variable_and_never_from_openai_api_key(
        run: Run, stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    monkeypatch.setenv("GPU_KEY", "the-gpu-key")
    run("ok", api_key_env="GPU_KEY")
    assert stub.last("ok").headers["authorization"] == "Bearer the-gpu-key"
    run("ok")
    assert "sk-must-not-leak" not in stub.last("ok").headers.get("authorization", "")


def test_a_conversation_goes_out_as_messages_with_the_system_prompt(run: Run, stub: Stub) -> None:
    run("ok", task=Conversation((Message("user", "a"), Message("assistant", "b"), Message("user", "c"))),
        system_prompt="Be brief.")
    assert stub.last("ok").body["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]


def test_completion_prompts_and_raw_text_go_to_the_completions_endpoint(run: Run, stub: Stub) -> None:
    result = run("ok", prompt_format="completion", completion_template="Q: {task}\nA:")
    seen = stub.last("ok")
    assert seen.path == "/v1/completions" and seen.body["prompt"] == "Q: Say hi.\nA:"
    assert result.text == "Hello, world."
    run("ok", task=RawText("def f():"))
    assert stub.last("ok").path == "/v1/completions" and stub.last("ok").body["prompt"] == "def f():"
