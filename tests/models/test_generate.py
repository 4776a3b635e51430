"""Generation on the real models at temperature 0: limits, stops, timeout/abort, streaming, honest figures."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from ggroute.core.errors import ConfigError, PromptTooLongError, UsageError
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import load_config
from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.llamacpp.model import LlamaModel, load_llama_model
from ggroute.models.metrics import GenerationResult
from tests.conftest import small_config

pytestmark = pytest.mark.slow  # every test here runs the real models

COLORS = "Name three colors."
COLORS_ANSWER = "1. Red\n2. Blue\n3. Green"  # SmolLM2's greedy answer: 11 tokens, then <|im_end|>
ADD = "Write a Python function that adds two numbers."
# ~800 prompt tokens: several seconds of prompt processing on one thread, still inside context_size 1024.
LONG_TASK = "Summarize the following notes. " + " ".join(
    f"Note {i}: the value of item {i} is {i * 7}." for i in range(45)
)


def run(model: LlamaModel, task: str, **options: object) -> tuple[GenerationResult, list[str]]:
    generation = Generation(model, task, RequestOptions(**options))  # type: ignore[arg-type]
    pieces = list(generation)
    assert generation.result is not None
    assert "".join(pieces) == generation.result.text  # streaming and the final text always agree
    return generation.result, pieces


def _load_variant(tmp_path_factory: pytest.TempPathFactory, name: str, **settings: object) -> LlamaModel:
    data = small_config()
    data["models"][name].update(settings)  # type: ignore[index]
    path = tmp_path_factory.mktemp(f"{name}-variant") / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return load_llama_model(ModelCatalog(load_config(path)).spec(name))


@pytest.fixture(scope="module")
def smollm2_with_stop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    model = _load_variant(tmp_path_factory, "coder", stop=["\n```"], max_tokens=40)
    yield model
    model.close()


@pytest.fixture(scope="module")
def smollm2_with_dry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    model = _load_variant(tmp_path_factory, "coder", dry_multiplier=0.8)
    yield model
    model.close()


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    model = _load_variant(tmp_path_factory, "algorithm")
    yield model
    model.close()


def test_max_tokens_ends_with_length(smollm2: LlamaModel) -> None:
    result, pieces = run(smollm2, ADD, max_tokens=5)
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 5
    assert result.limits.max_tokens == 5
    assert result.text.startswith("```")
    assert pieces


def test_natural_stop(smollm2: LlamaModel) -> None:
    result, _ = run(smollm2, COLORS)
    assert result.finish_reason == "stop"
    assert result.text == COLORS_ANSWER
    assert result.usage.completion_tokens == 11 < result.limits.max_tokens == 32
    assert result.limits.stop == ["<|im_end|>"]  # the chat template's EOS text
    assert result.model == "coder"


@pytest.mark.parametrize(("max_tokens", "finish", "completion"), [(10, "length", 10), (11, "length", 11),
                                                                  (12, "stop", 11)])
def test_completion_tokens_equal_max_tokens_only_when_length(
    smollm2: LlamaModel, max_tokens: int, finish: str, completion: int
) -> None:
    # The answer is 11 tokens: at max_tokens 11 the limit is reached before the model can say it is done.
    result, _ = run(smollm2, COLORS, max_tokens=max_tokens)
    assert (result.finish_reason, result.usage.completion_tokens) == (finish, completion)
    if result.usage.completion_tokens == max_tokens:
        assert result.finish_reason == "length"


def test_config_stop_string_truncates_text(smollm2: LlamaModel, smollm2_with_stop: LlamaModel) -> None:
    plain, _ = run(smollm2, ADD, max_tokens=40)
    assert plain.finish_reason == "length"
    assert "\n```" in plain.text  # without the stop string the model writes past the code block
    result, pieces = run(smollm2_with_stop, ADD)
    assert result.finish_reason == "stop"
    assert result.text == plain.text[: plain.text.index("\n```")]
    # The exact function name depends on the CPU's kernels (greedy picks among near-equal logits); the shape does not.
    assert result.text.startswith("```python\ndef add") and "return" in result.text
    assert result.usage.completion_tokens < 40
    assert result.limits.stop == ["\n```", "<|im_end|>"]
    # run() checked that the streamed pieces join to exactly this text: no part of the stop string leaked.
    assert len(pieces) > 1


def test_timeout_before_prompt_processing_leaves_model_usable(smollm2: LlamaModel) -> None:
    before, _ = run(smollm2, COLORS)
    result, pieces = run(smollm2, LONG_TASK, timeout_s=0.001)
    assert result.finish_reason == "timeout"
    assert result.usage.completion_tokens == 0
    assert result.text == "" and pieces == []
    assert result.limits.timeout_s == 0.001
    after, _ = run(smollm2, COLORS)
    assert (after.text, after.finish_reason) == (before.text, "stop")


def test_timeout_aborts_prompt_processing_and_model_stays_usable(smollm2: LlamaModel) -> None:
    before, _ = run(smollm2, COLORS)
    result, _ = run(smollm2, LONG_TASK, timeout_s=0.2)
    assert result.finish_reason == "timeout"
    # The abort callback stopped llama.cpp inside the prompt: no token was ever sampled. (Without it the
    # whole ~800-token prompt would be processed and one token sampled before the deadline is noticed.)
    assert result.timings.time_to_first_token_s is None
    assert result.usage.completion_tokens == 0
    assert result.usage.prompt_tokens > 700
    assert smollm2.llama.n_tokens < result.usage.prompt_tokens
    after, _ = run(smollm2, COLORS)
    assert (after.text, after.finish_reason, after.usage.completion_tokens) == (before.text, "stop", 11)


def test_cancel_stops_mid_stream(smollm2: LlamaModel) -> None:
    cancel = threading.Event()
    generation = Generation(smollm2, ADD, RequestOptions(max_tokens=32), cancel=cancel)
    pieces = []
    for piece in generation:
        pieces.append(piece)
        cancel.set()
    result = generation.result
    assert result is not None
    assert result.finish_reason == "cancelled"
    assert 1 <= result.usage.completion_tokens < 32
    assert "".join(pieces) == result.text


def test_cancel_before_start(smollm2: LlamaModel) -> None:
    cancel = threading.Event()
    cancel.set()
    result = Generation(smollm2, COLORS, cancel=cancel).run()
    assert (result.finish_reason, result.text, result.usage.completion_tokens) == ("cancelled", "", 0)


def test_prompt_over_context(smollm2: LlamaModel) -> None:
    task = " ".join(f"w{i}" for i in range(1500))
    prompt_tokens = len(smollm2.prepare(task).tokens)
    assert prompt_tokens > 3000
    with pytest.raises(PromptTooLongError) as info:
        Generation(smollm2, task)
    message = str(info.value)
    assert f"prompt is {prompt_tokens} tokens" in message
    assert "context_size 1024" in message
    assert (info.value.prompt_tokens, info.value.context_size) == (prompt_tokens, 1024)


@pytest.mark.parametrize("task", ["", "   \n\t"])
def test_empty_task(smollm2: LlamaModel, task: str) -> None:
    with pytest.raises(UsageError, match="empty"):
        Generation(smollm2, task)


def test_streamed_multibyte_text_is_whole(smollm2: LlamaModel) -> None:
    result, pieces = run(smollm2, "What is the capital of France?")
    assert len(pieces) > 1
    assert "É" in result.text  # greedy answer starts "L'Étoile": a 2-byte character split across tokens
    assert "\ufffd" not in result.text


def test_repeated_request_reuses_prompt_cache_and_reports_timings(smollm2: LlamaModel) -> None:
    task = "List two fruits."
    llama_cpp.llama_perf_context_reset(smollm2.llama.ctx)
    first, _ = run(smollm2, task)
    evaluated = first.usage.prompt_tokens - first.usage.cached_prompt_tokens
    assert evaluated > 1
    # Independent check of the cached/evaluated split: llama.cpp's own count of prompt tokens it decoded.
    assert llama_cpp.llama_perf_context(smollm2.llama.ctx).n_p_eval == evaluated

    second, _ = run(smollm2, task)
    # The prompt's last two tokens are evaluated again, as a batch: a lone token's logits come from another
    # llama.cpp path and greedy answers drift. Batches may still round differently from one CPU to another, so
    # only a long shared start is required here (a corrupt cache would derail the answer at once);
    # benchmarks/prompt_cache.py counts identical answers.
    shared = len(os.path.commonprefix([first.text, second.text]))
    assert shared >= min(len(first.text), 60), (first.text, second.text)
    assert second.usage.prompt_tokens == first.usage.prompt_tokens
    assert second.usage.cached_prompt_tokens == second.usage.prompt_tokens - 2 > 0
    t = second.timings
    assert t.load_s is None
    assert t.prefill_tokens_per_s is not None and t.prefill_tokens_per_s > 0
    assert t.decode_tokens_per_s is not None and t.decode_tokens_per_s > 0
    assert t.time_to_first_token_s is not None and 0 < t.time_to_first_token_s <= t.wall_s
    assert t.prefill_s > 0 and t.decode_s > 0
    assert t.prefill_s + t.decode_s <= t.wall_s + 1e-3


@pytest.fixture(scope="module")
def smollm2_uncached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    model = _load_variant(tmp_path_factory, "coder", cache_prompt=False)
    yield model
    model.close()


def test_cache_prompt_false_evaluates_every_prompt_whole_and_repeats_the_answer(
        smollm2_uncached: LlamaModel) -> None:
    task = "Say hello"  # from the cache, its last prompt token alone gives another greedy answer on some CPUs
    llama_cpp.llama_perf_context_reset(smollm2_uncached.llama.ctx)
    first, _ = run(smollm2_uncached, task)
    second, _ = run(smollm2_uncached, task)
    assert first.usage.cached_prompt_tokens == second.usage.cached_prompt_tokens == 0
    # llama.cpp's own count: both prompts were decoded in full, not taken from the KV cache.
    assert llama_cpp.llama_perf_context(smollm2_uncached.llama.ctx).n_p_eval == 2 * first.usage.prompt_tokens
    assert second.text == first.text


@pytest.fixture(scope="module")
def gemma_swa_window_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    model = _load_variant(tmp_path_factory, "algorithm", swa_full=False, cache_prompt=True, context_size=2048)
    yield model
    model.close()


def test_a_cache_that_cannot_drop_a_suffix_reports_nothing_reused(gemma_swa_window_only: LlamaModel) -> None:
    # Gemma 3's sliding-window layers with swa_full false keep no full cache: llama.cpp cannot remove part of it,
    # so the whole prompt is evaluated again, and cached_prompt_tokens must say 0, as llama.cpp's own count does.
    # The sliding-window layers' cache holds the last window and a batch (512 + 512 positions here): a prompt
    # that shares only the start of a longer one cannot keep that start (the cells after it were overwritten).
    model = gemma_swa_window_only
    window = int(model.llama.metadata.get("gemma3.attention.sliding_window", "512"))
    task = "reverse each of these strings: " + " ".join(f"w{i}" for i in range(3 * window // 4))
    llama_cpp.llama_perf_context_reset(model.llama.ctx)
    first, _ = run(model, task, max_tokens=4)
    short = "reverse each of these strings: w0 w1 w2"
    second, _ = run(model, short, max_tokens=4)
    assert first.usage.prompt_tokens > 2 * window
    evaluated = sum(r.usage.prompt_tokens - r.usage.cached_prompt_tokens for r in (first, second))
    assert llama_cpp.llama_perf_context(model.llama.ctx).n_p_eval == evaluated
    assert second.usage.cached_prompt_tokens == 0
    model.llama.reset()
    fresh, _ = run(model, short, max_tokens=4)
    assert second.text == fresh.text  # reusing the holed cache answered "# # # #"


def test_load_time_is_reported_when_given(smollm2: LlamaModel) -> None:
    result = Generation(smollm2, COLORS, load_s=1.23456).run()
    assert result.timings.load_s == 1.2346


def test_gemma_completion_template(gemma: LlamaModel) -> None:
    result, pieces = run(gemma, "reverse a string")
    assert result.model == "algorithm"
    assert result.prompt_preview == "Write Python code for: reverse a string\n\nCode:\n```python\n"
    assert result.text.strip()
    assert result.text.startswith("def reverse_string(")
    assert result.limits.stop == []  # completion prompts add no template stop
    assert result.finish_reason in ("stop", "length")
    assert result.usage.completion_tokens <= 16
    tokens = gemma.prepare("reverse a string").tokens
    assert tokens[0] == gemma.llama.token_bos()
    assert tokens.count(gemma.llama.token_bos()) == 1


def test_chat_format_on_model_without_template_is_config_error(gemma: LlamaModel) -> None:
    settings = gemma.spec.settings.model_copy(update={"prompt_format": "chat"})
    as_chat = LlamaModel(dataclasses.replace(gemma.spec, settings=settings), gemma.llama, 0.0)  # not closed:
    with pytest.raises(ConfigError, match="no chat template"):  # it borrows the fixture's llama
        Generation(as_chat, "reverse a string")


def test_session_model_settings(smollm2: LlamaModel) -> None:
    spec = smollm2.spec
    assert (spec.name, spec.settings.context_size, spec.settings.max_tokens) == ("coder", 1024, 32)
    assert smollm2.llama.n_ctx() == 1024
    assert Path(spec.path).name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_dry_sampler_joins_the_chain_after_the_penalties_and_changes_greedy_output(
    smollm2: LlamaModel, smollm2_with_dry: LlamaModel
) -> None:
    task = "Dockerfile for a Flask app"
    plain, _ = run(smollm2, task, max_tokens=160)
    dry, _ = run(smollm2_with_dry, task, max_tokens=160)
    chain = smollm2_with_dry.llama._sampler.sampler  # the chain generate() built for that request
    names = [llama_cpp.llama_sampler_name(llama_cpp.llama_sampler_chain_get(chain, i)) or b""
             for i in range(llama_cpp.llama_sampler_chain_n(chain))]
    assert [n.lstrip(b"?") for n in names] == [b"penalties", b"dry", b"greedy"], names
    assert plain.text != dry.text  # same greedy decoding; only DRY differs
    again, _ = run(smollm2, task, max_tokens=160)
    assert again.text == plain.text  # DRY is per request: the plain model is untouched
