"""The memory plan: KV cache arithmetic from GGUF metadata, and the budget plan's shared-weight counting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ggroute.core.errors import ConfigError
from ggroute.models import catalog as catalog_module
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import GEMMA3_PATH, SMOLLM2_PATH, load_config
from ggroute.models.gguf_info import GGUFInfo, read_gguf_info
from ggroute.models.locate import resolve_model_path
from ggroute.models.memory import KV_TABLE_CONTEXTS, key_type_problem, kv_cache_bytes, kv_table, plan_model


@pytest.fixture(scope="module")
def smollm2_info() -> GGUFInfo:
    return read_gguf_info(resolve_model_path(SMOLLM2_PATH, Path.cwd()))


@pytest.fixture(scope="module")
def gemma_info() -> GGUFInfo:
    return read_gguf_info(resolve_model_path(GEMMA3_PATH, Path.cwd()))


def test_smollm2_kv_cache_at_2048(smollm2_info: GGUFInfo) -> None:
    # layers x cells x kv heads x (key + value length) x 2 bytes (f16)
    assert kv_cache_bytes(smollm2_info, 2048) == 30 * 2048 * 3 * (64 + 64) * 2 == 47_185_920


def test_quantized_keys_shrink_only_the_key_half(smollm2_info: GGUFInfo) -> None:
    # q8_0 stores 32 values in 34 bytes; values stay f16
    assert kv_cache_bytes(smollm2_info, 2048, key_type="q8_0") == 30 * 2048 * 3 * (64 * 34 // 32 + 64 * 2)
    assert kv_cache_bytes(smollm2_info, 2048, key_type="f32") == 30 * 2048 * 3 * (64 * 4 + 64 * 2)


def test_kv_cells_are_padded_to_256(smollm2_info: GGUFInfo) -> None:
    assert kv_cache_bytes(smollm2_info, 1000) == 30 * 1024 * 3 * 128 * 2
    assert kv_cache_bytes(smollm2_info, 1025) == 30 * 1280 * 3 * 128 * 2


def test_smollm2_has_no_sliding_window_so_swa_full_changes_nothing(smollm2_info: GGUFInfo) -> None:
    assert kv_cache_bytes(smollm2_info, 8192, swa_full=False) == kv_cache_bytes(smollm2_info, 8192, swa_full=True)


def test_gemma_swa_full_counts_every_layer_at_full_context(gemma_info: GGUFInfo) -> None:
    per_cell = 1 * (256 + 256) * 2  # 1 kv head, key+value length 256, f16
    assert kv_cache_bytes(gemma_info, 8192, swa_full=True) == 18 * 8192 * per_cell == 150_994_944


@pytest.mark.parametrize("context", [1024, 2048, 8192, 32768])
def test_gemma_without_swa_full_caps_sliding_layers(gemma_info: GGUFInfo, context: int) -> None:
    per_cell = 1 * (256 + 256) * 2
    window_cells = 1024  # pad(512 window + 512 ubatch, 256)
    expected = 3 * context * per_cell + 15 * min(context, window_cells) * per_cell
    assert kv_cache_bytes(gemma_info, context, swa_full=False) == expected


def test_gemma_sliding_cells_follow_the_ubatch(gemma_info: GGUFInfo) -> None:
    per_cell = 1024
    # window 512 + ubatch 256 = 768, already a multiple of 256.
    expected = 3 * 4096 * per_cell + 15 * 768 * per_cell
    assert kv_cache_bytes(gemma_info, 4096, n_ubatch=256, swa_full=False) == expected


def test_kv_table_keys_and_values(smollm2_info: GGUFInfo, gemma_info: GGUFInfo) -> None:
    assert KV_TABLE_CONTEXTS == (2048, 4096, 8192, 16384, 32768)
    table = kv_table(smollm2_info, swa_full=True)
    assert list(table) == [2048, 4096, 8192, 16384, 32768]
    assert table == {ctx: 30 * ctx * 3 * 128 * 2 for ctx in KV_TABLE_CONTEXTS}
    gemma = kv_table(gemma_info, swa_full=False)
    assert list(gemma) == list(KV_TABLE_CONTEXTS)
    assert gemma[32768] == 3 * 32768 * 1024 + 15 * 1024 * 1024
    assert gemma[32768] < kv_table(gemma_info, swa_full=True)[32768] / 5


def test_plan_adds_weights_kv_and_compute(smollm2_info: GGUFInfo) -> None:
    plan = plan_model("coder", smollm2_info, 2048, 512, True)
    assert plan.weight_bytes == smollm2_info.weight_bytes
    assert plan.kv_bytes == 47_185_920
    assert plan.compute_bytes > 16 * 1024 * 1024  # at least the fixed overhead
    assert plan.own_bytes == plan.weight_bytes + plan.kv_bytes + plan.compute_bytes
    assert plan.added_bytes == plan.own_bytes
    shared = plan_model("router", smollm2_info, 2048, 512, True, shares_with="coder")
    assert shared.added_bytes == plan.own_bytes - plan.weight_bytes
    # A larger context costs more compute (attention scores grow with the KV cells).
    assert plan_model("coder", smollm2_info, 8192, 512, True).compute_bytes > plan.compute_bytes


def test_budget_plan_counts_shared_weights_once(write_config) -> None:
    data = {
        "models": {
            "router": {"path": SMOLLM2_PATH, "context_size": 2048},
            "coder": {"path": SMOLLM2_PATH, "context_size": 4096},
            "algorithm": {"path": GEMMA3_PATH, "context_size": 4096},
        },
        "memory_budget_mb": 1000,
    }
    catalog = ModelCatalog(load_config(write_config(data)))
    plan = catalog.budget_plan()
    by_name = {p.name: p for p in plan.models}
    assert [p.name for p in plan.models] == ["router", "coder", "algorithm"]
    assert by_name["router"].shares_weights_with is None
    assert by_name["coder"].shares_weights_with == "router"
    assert by_name["algorithm"].shares_weights_with is None
    router, coder, algorithm = (catalog.spec(n).plan for n in ("router", "coder", "algorithm"))
    assert router.weight_bytes == coder.weight_bytes
    expected = router.own_bytes + (coder.kv_bytes + coder.compute_bytes) + algorithm.own_bytes
    assert plan.total_bytes == expected
    assert plan.budget_bytes == 1000 * 1_000_000
    assert plan.fits == (expected <= 1_000_000_000)
    # The two SmolLM2 roles really are one file, parsed once.
    assert catalog.spec("router").info is catalog.spec("coder").info


def _with_key_length(info: GGUFInfo, key_length: int) -> GGUFInfo:
    metadata = {**info.metadata, f"{info.architecture}.attention.key_length": key_length}
    return dataclasses.replace(info, metadata=metadata)


def test_quantized_keys_need_a_key_length_in_whole_blocks(smollm2_info: GGUFInfo) -> None:
    assert key_type_problem(smollm2_info, "q8_0") is None  # key length 64
    odd = _with_key_length(smollm2_info, 80)  # e.g. Phi-2's head size
    assert odd.key_length == 80
    assert key_type_problem(odd, "f16") is None
    assert key_type_problem(odd, "q8_0") == (
        "cache_type_k q8_0 stores keys in blocks of 32 values, but this model's key length is 80: use f16")


def test_catalog_refuses_quantized_keys_that_do_not_fill_whole_blocks(write_config, test_config, smollm2_info,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # fault injection: a model with 80-wide keys, which q8_0 blocks of 32 cannot hold
    monkeypatch.setattr(catalog_module, "read_gguf_info", lambda path: _with_key_length(smollm2_info, 80))
    test_config["models"]["coder"]["cache_type_k"] = "q8_0"
    catalog = ModelCatalog(load_config(write_config(test_config)))
    with pytest.raises(ConfigError, match=r"models\.coder\.cache_type_k: cache_type_k q8_0 stores keys in blocks"):
        catalog.spec("coder")
