"""Generation's policy over the scripted fake backend: finish reasons, limits, stop strings, timeout, cancel,
counted figures, errors and closing the stream. The same behaviour on the real models: test_generate.py."""

from __future__ import annotations

import math
import threading
import time

import pytest

from ggroute.core.errors import GenerationError, PromptTooLongError, UsageError
from ggroute.models.backend import Backend, TextChunk
from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.metrics import GenerationResult
from tests.fakes import Script, ScriptedBackend, StreamRecord, fake_spec

TASK = "Say hello."  # the fake's prompt: "Say hello.\n", two tokens (one per word)


def backend(script: Script | None = None, **settings: object) -> ScriptedBackend:
    return ScriptedBackend(fake_spec(**settings), script or Script())


def run(model: ScriptedBackend, task: str = TASK, **options: object) -> tuple[GenerationResult, list[str]]:
    generation = Generation(model, task, RequestOptions(**options))  # type: ignore[arg-type]
    pieces = list(generation)
    assert generation.result is not None
    assert "".join(pieces) == generation.result.text  # streaming and the final text always agree
    return generation.result, pieces


def only_stream(model: ScriptedBackend) -> StreamRecord:
    assert len(model.streams) == 1
    return model.streams[0]


def test_the_fake_implements_the_backend_contract() -> None:
    model = backend()
    assert isinstance(model, Backend)
    assert model.spec.name == "coder" and model.spec.settings.context_size == 1024
    model.close()
    model.close()
    assert model.closed == 2 and model.events == [("load", "coder"), ("close", "coder")]  # released once


def test_end_of_text_finishes_with_stop_and_is_not_a_completion_token() -> None:
    model = backend(Script(pieces=("Hello", ",", " world", ".")))
    result, pieces = run(model)
    assert result.finish_reason == "stop"
    assert result.text == "Hello, world." and pieces == ["Hello", ",", " world", "."]
    assert result.usage.completion_tokens == 4  # EndOfText was sampled but is not counted
    assert result.usage.prompt_tokens == 2 and result.usage.cached_prompt_tokens == 0
    record = only_stream(model)
    assert record.ended_with_eot and record.closed and not record.closed_early


def test_max_tokens_finishes_with_length_and_stops_sampling() -> None:
    model = backend(Script(pieces=("tok",), repeat=True))
    result, _ = run(model, max_tokens=5)
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 5 and result.text == "tok" * 5
    assert result.limits.max_tokens == 5
    record = only_stream(model)
    assert record.max_tokens == 5  # the backend is told the room left
    assert record.chunks == 5 and record.closed_early  # no token sampled past the limit


def test_configured_max_tokens_is_the_default_limit() -> None:
    result, _ = run(backend(Script(pieces=("x",), repeat=True), max_tokens=7))
    assert (result.finish_reason, result.usage.completion_tokens, result.limits.max_tokens) == ("length", 7, 7)


def test_multi_token_chunks_count_every_token() -> None:
    script = Script(pieces=(TextChunk("ab", tokens=2), TextChunk("c", tokens=1), TextChunk("", tokens=0)))
    result, _ = run(backend(script))
    assert (result.text, result.usage.completion_tokens, result.finish_reason) == ("abc", 3, "stop")


def test_context_room_limits_the_generation_below_max_tokens() -> None:
    model = backend(Script(pieces=("x",), repeat=True, prompt_tokens=1021), context_size=1024)
    result, _ = run(model, max_tokens=32)
    assert result.finish_reason == "length" and result.usage.completion_tokens == 3
    assert only_stream(model).max_tokens == 3
    assert result.limits.max_tokens == 32  # the limit stays what was asked; the context cut it short


def test_prompt_that_fills_the_context_is_too_long() -> None:
    with pytest.raises(PromptTooLongError) as info:
        Generation(backend(Script(prompt_tokens=1024), context_size=1024), TASK)
    assert info.value.prompt_tokens == 1024 and info.value.context_size == 1024
    assert "context_size" in str(info.value)
    result, _ = run(backend(Script(pieces=("a", "b"), prompt_tokens=1023), context_size=1024))
    assert result.finish_reason == "length" and result.usage.completion_tokens == 1  # one token of room


@pytest.mark.parametrize("task", ["", "  \n\t"])
def test_empty_task_is_a_usage_error_before_anything_runs(task: str) -> None:
    model = backend()
    with pytest.raises(UsageError, match="empty"):
        Generation(model, task)
    assert model.prepared == [] and model.streams == []


@pytest.mark.parametrize("pieces", [
    ("def f():", "\n```", "\nmore"),  # the stop string in one chunk
    ("def f():", "\n", "``", "`", "more"),  # split over three chunks
    ("def f():\n`", "``more",),  # split inside chunks
])
def test_stop_string_across_chunks_never_leaks(pieces: tuple[str, ...]) -> None:
    model = backend(Script(pieces=pieces, end_of_text=False), stop=["\n```"])
    result, streamed = run(model)
    assert result.finish_reason == "stop"
    assert result.text == "def f():" and "".join(streamed) == "def f():"
    assert all("`" not in piece for piece in streamed)
    assert only_stream(model).closed_early  # sampling stopped at the stop string
    assert result.limits.stop == ["\n```"]


def test_a_held_back_prefix_that_is_no_stop_string_is_emitted() -> None:
    result, streamed = run(backend(Script(pieces=("a\n", "``", "x", "\n`")), stop=["\n```"]))
    assert result.finish_reason == "stop"  # EndOfText
    assert result.text == "a\n``x\n`" == "".join(streamed)


def test_template_stop_strings_join_the_configured_ones() -> None:
    model = backend(Script(pieces=("yes", "<|end|>", "no"), stop=("<|end|>",)), stop=["STOP", "<|end|>"])
    result, _ = run(model)
    assert result.text == "yes" and result.finish_reason == "stop"
    assert result.limits.stop == ["STOP", "<|end|>"]  # merged, no duplicates


def test_earliest_of_several_stop_strings_wins() -> None:
    result, _ = run(backend(Script(pieces=("one", " END", " two", " HALT")), stop=["HALT", "END"]))
    assert result.text == "one " and result.finish_reason == "stop"


@pytest.mark.parametrize("pieces", [
    ("x = `a` more",),  # both stop strings inside one chunk
    ("x = ", "`", "a", "`", " more"),  # one character per chunk
    ("x = `a", "` more"),
])
def test_the_first_stop_string_to_complete_wins_wherever_the_chunks_end(pieces: tuple[str, ...]) -> None:
    # "a" is complete one character before "`a`" is, so generation stops before "a" however the tokens split the
    # text. Found by tests/fuzz: with both in one chunk the cut used to be at "`a`", which starts earlier.
    result, _ = run(backend(Script(pieces=pieces, end_of_text=False), stop=["`a`", "a"]))
    assert (result.text, result.finish_reason) == ("x = `", "stop")


def test_stop_strings_ending_together_cut_at_the_longest() -> None:
    result, _ = run(backend(Script(pieces=("code\n```", " more"), end_of_text=False), stop=["```", "\n```"]))
    assert (result.text, result.finish_reason) == ("code", "stop")


def test_an_empty_stop_string_from_a_template_is_ignored() -> None:
    # Found by tests/fuzz: an empty stop string matched at once and ended every generation with no text.
    model = backend(Script(pieces=("yes", " no"), stop=("",)))
    result, _ = run(model)
    assert (result.text, result.finish_reason) == ("yes no", "stop")


def test_timeout_before_the_request_starts_never_streams() -> None:
    model = backend()
    generation = Generation(model, TASK, RequestOptions(timeout_s=1.0), started=time.perf_counter() - 5)
    result = generation.run()
    assert result.finish_reason == "timeout" and result.text == ""
    assert model.streams == []


def test_timeout_during_prompt_processing() -> None:
    model = backend(Script(prefill_s=math.inf, prompt_tokens=500))
    result, pieces = run(model, timeout_s=0.1)
    assert result.finish_reason == "timeout"
    assert pieces == [] and result.text == ""
    assert result.usage.completion_tokens == 0 and result.usage.cached_prompt_tokens == 0
    assert result.timings.time_to_first_token_s is None
    assert result.timings.prefill_tokens_per_s is None and result.timings.decode_tokens_per_s is None
    assert 0.1 <= result.timings.wall_s < 5
    record = only_stream(model)
    assert record.prefill_stopped and record.chunks == 0 and record.closed


def test_timeout_mid_stream_keeps_the_partial_text() -> None:
    model = backend(Script(pieces=("a", "b", "c"), repeat=True, token_delay_s=0.02))
    result, pieces = run(model, timeout_s=0.3, max_tokens=10_000)
    assert result.finish_reason == "timeout"
    assert 1 <= result.usage.completion_tokens < 10_000
    assert result.text and result.text == "".join(pieces)
    assert len(result.text) == result.usage.completion_tokens
    assert only_stream(model).closed_early


def test_timeout_option_overrides_the_configured_one() -> None:
    model = backend(Script(prefill_s=math.inf), timeout_s=300)
    result, _ = run(model, timeout_s=0.05)
    assert result.finish_reason == "timeout" and result.limits.timeout_s == 0.05


def test_cancel_before_start_never_streams() -> None:
    model = backend()
    cancel = threading.Event()
    cancel.set()
    result = Generation(model, TASK, cancel=cancel).run()
    assert result.finish_reason == "cancelled" and result.text == ""
    assert model.streams == []


def test_cancel_mid_stream_stops_after_the_current_token() -> None:
    model = backend(Script(pieces=("one ", "two ", "three "), repeat=True))
    cancel = threading.Event()
    generation = Generation(model, TASK, RequestOptions(max_tokens=100), cancel=cancel)
    pieces = []
    for piece in generation:
        pieces.append(piece)
        cancel.set()
    assert generation.result is not None
    assert generation.result.finish_reason == "cancelled"
    assert pieces == ["one "] and generation.result.text == "one "
    assert generation.result.usage.completion_tokens == 1
    assert only_stream(model).closed_early


def test_cancel_during_prompt_processing_from_another_thread() -> None:
    model = backend(Script(prefill_s=math.inf))
    cancel = threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    try:
        result = Generation(model, TASK, RequestOptions(timeout_s=30), cancel=cancel).run()
    finally:
        timer.cancel()
    assert result.finish_reason == "cancelled" and only_stream(model).prefill_stopped


def test_cached_and_evaluated_prompt_tokens_and_rates_come_from_counted_tokens() -> None:
    script = Script(pieces=("a", "b", "c", "d", "e"), token_delay_s=0.02, prefill_s=0.05, cached_tokens=30,
                    prompt_tokens=40)
    result, _ = run(backend(script), max_tokens=500)
    usage, timings = result.usage, result.timings
    assert (usage.prompt_tokens, usage.cached_prompt_tokens, usage.completion_tokens) == (40, 30, 5)
    assert timings.prefill_s >= 0.05 and timings.decode_s > 0
    # 10 evaluated prompt tokens over the prefill; 5 tokens sampled after the first (EndOfText included: it
    # took a decode step) over the decode time. max_tokens (500) plays no part.
    assert timings.prefill_tokens_per_s == pytest.approx(10 / timings.prefill_s, rel=0.01)
    assert timings.decode_tokens_per_s == pytest.approx(5 / timings.decode_s, rel=0.01)
    assert timings.time_to_first_token_s is not None and timings.time_to_first_token_s >= timings.prefill_s
    assert timings.load_s is None  # nobody said this request loaded the model


def test_load_time_is_reported_when_given() -> None:
    result = Generation(backend(), TASK, load_s=1.23456).run()
    assert result.timings.load_s == 1.2346


def test_a_single_token_has_no_decode_rate() -> None:
    result, _ = run(backend(Script(pieces=("x",), repeat=True)), max_tokens=1)
    assert result.usage.completion_tokens == 1 and result.timings.decode_tokens_per_s is None


@pytest.mark.parametrize("token", [0, 1, 3])
def test_generation_error_from_the_backend_propagates(token: int) -> None:
    model = backend(Script(pieces=("a", "b", "c", "d"), fail_at_token=token))
    generation = Generation(model, TASK)
    with pytest.raises(GenerationError, match=f"scripted failure at token {token}"):
        list(generation)
    assert generation.result is None
    record = only_stream(model)
    assert record.raised is not None and record.closed
    assert record.chunks == max(0, token - 1)


def test_stream_ending_without_end_of_text_or_stop_request_is_an_error() -> None:
    model = backend(Script(pieces=("a", "b"), end_of_text=False))
    with pytest.raises(GenerationError, match="ended its output without a reason"):
        Generation(model, TASK).run()


def test_stream_ending_in_prompt_processing_without_stop_request_is_an_error() -> None:
    model = backend(Script(pieces=(), end_of_text=False))
    with pytest.raises(GenerationError, match="ended its output without a reason"):
        Generation(model, TASK).run()


def test_stream_is_closed_when_the_consumer_stops_early() -> None:
    model = backend(Script(pieces=("a", "b", "c"), repeat=True))
    generation = Generation(model, TASK, RequestOptions(max_tokens=100))
    pieces = iter(generation)
    assert next(pieces) == "a"
    pieces.close()  # e.g. an HTTP client went away
    record = only_stream(model)
    assert record.closed and record.closed_early and record.chunks == 1
    assert generation.result is None
    result, _ = run(model, max_tokens=2)  # the model is free for the next request
    assert result.text == "ab"
