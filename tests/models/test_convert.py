"""weights_type: the one-time conversion of a model's weights into the cache folder, with real llama.cpp."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ggroute.core.errors import ModelFileError
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import SMOLLM2_PATH, load_config
from ggroute.models.convert import convert_weights, converted_path
from ggroute.models.gguf_info import read_gguf_info
from ggroute.models.llamacpp.model import load_llama_model
from ggroute.models.locate import CACHE_ENV, resolve_model_path
from ggroute.models.memory import plan_model


@pytest.fixture(scope="module")
def smollm2_file() -> Path:
    return resolve_model_path(SMOLLM2_PATH, Path.cwd())


def test_conversion_writes_a_q8_0_copy_once(smollm2_file: Path) -> None:
    first = convert_weights(smollm2_file, "q8_0")
    info = read_gguf_info(first)
    assert first.parent.name == "converted" and first != smollm2_file
    assert info.quantization == "Q8_0"
    assert info.weight_bytes > read_gguf_info(smollm2_file).weight_bytes  # 8-bit weights are wider than 4-bit
    stamp = first.stat().st_mtime_ns
    assert convert_weights(smollm2_file, "q8_0") == first
    assert first.stat().st_mtime_ns == stamp  # reused, not written again


@pytest.mark.parametrize(("weights_type", "quantization"), [("iq4_nl", "IQ4_NL"), ("q4_0", "Q4_0")])
def test_a_4_bit_conversion_writes_the_repackable_type(smollm2_file: Path, weights_type: str,
                                                       quantization: str) -> None:
    copy = convert_weights(smollm2_file, weights_type)  # type: ignore[arg-type]
    info = read_gguf_info(copy)
    assert info.quantization == quantization
    # about as wide as the Q4_1 file (a little narrower: no per-block minimum), far from Q8_0's
    assert 0.8 < info.weight_bytes / read_gguf_info(smollm2_file).weight_bytes < 1.05
    # llama.cpp keeps an interleaved copy of the block matrices (not of the embeddings): the plan counts it, per
    # model, unless every layer runs on a GPU
    assert 0 < info.repacked_bytes < info.weight_bytes and read_gguf_info(smollm2_file).repacked_bytes == 0
    cpu = plan_model("coder", info, 2048, 512, True)
    assert cpu.repacked_bytes == info.repacked_bytes
    assert cpu.own_bytes == info.weight_bytes + info.repacked_bytes + cpu.kv_bytes + cpu.compute_bytes
    assert plan_model("router", info, 2048, 512, True, shares_with="coder").added_bytes == \
        cpu.own_bytes - info.weight_bytes  # the file's pages are shared, the repacked copy is not
    assert plan_model("coder", info, 2048, 512, True, n_gpu_layers=-1).repacked_bytes == 0
    assert plan_model("coder", info, 2048, 512, True, n_gpu_layers=info.n_layers + 1).repacked_bytes == 0
    # layers left on the CPU still repack (counted whole: an estimate that errs high)
    assert plan_model("coder", info, 2048, 512, True, n_gpu_layers=info.n_layers).repacked_bytes == cpu.repacked_bytes


def test_a_changed_source_gets_its_own_copy(smollm2_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / smollm2_file.name
    shutil.copyfile(smollm2_file, copy)
    before = converted_path(copy, "q8_0")
    os.utime(copy, ns=(1_000_000_000, 1_000_000_000))
    assert converted_path(copy, "q8_0") != before


@pytest.mark.slow
def test_catalog_loads_the_converted_file_and_plans_its_size(write_config, test_config) -> None:
    test_config["models"]["coder"].update(weights_type="q8_0", cache_type_k="q8_0", context_size=256)
    catalog = ModelCatalog(load_config(write_config(test_config)))
    spec = catalog.spec("coder")
    assert spec.path.parent.name == "converted"
    assert spec.plan.weight_bytes == read_gguf_info(spec.path).weight_bytes
    model = load_llama_model(spec)
    try:
        tokens = model.tokenize("Write a haiku about Python", add_bos=True)
        model.llama.eval(tokens)  # a real forward pass with q8_0 weights and q8_0 keys
        assert model.llama.n_tokens == len(tokens)
    finally:
        model.close()


def test_missing_source_is_a_model_file_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found"):
        convert_weights(tmp_path / "absent.gguf", "q8_0")


def test_unwritable_cache_folder_says_what_to_do(smollm2_file: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    with pytest.raises(ModelFileError, match="GGROUTE_CACHE_DIR"):
        convert_weights(smollm2_file, "q8_0")
