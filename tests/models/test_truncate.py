"""`layers`: a copy of a GGUF model with its first N blocks (models/truncate.py), on a real model and a crafted one."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from ggroute.core.errors import ConfigError, ModelFileError, UsageError
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import SMOLLM2_PATH, load_config
from ggroute.models.convert import cut_layers
from ggroute.models.gguf_info import read_gguf_info
from ggroute.models.llamacpp.model import load_llama_model
from ggroute.models.locate import resolve_model_path
from ggroute.models.sampling import Sampling
from ggroute.models.truncate import truncate_layers

WriteConfig = Callable[..., Path]


@pytest.fixture(scope="module")
def smollm2_file() -> Path:
    return resolve_model_path(SMOLLM2_PATH, Path.cwd())


def _block_tensors(path: Path) -> dict[str, int]:
    reader = gguf.GGUFReader(path)
    return {t.name: int(t.n_bytes) for t in reader.tensors}


def test_the_copy_keeps_the_first_blocks_and_every_other_tensor_and_key(smollm2_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "cut.gguf"
    assert truncate_layers(smollm2_file, target, 12) == 30
    whole, cut = read_gguf_info(smollm2_file), read_gguf_info(target)
    assert cut.n_layers == 12
    assert {k: v for k, v in cut.metadata.items() if k != "llama.block_count"} == \
        {k: v for k, v in whole.metadata.items() if k != "llama.block_count"}
    source_tensors, cut_tensors = _block_tensors(smollm2_file), _block_tensors(target)
    expected = {name for name in source_tensors if not name.startswith("blk.") or int(name.split(".")[1]) < 12}
    assert set(cut_tensors) == expected
    assert "token_embd.weight" in cut_tensors and "output_norm.weight" in cut_tensors


def test_the_tensor_data_is_copied_byte_for_byte(smollm2_file: Path, tmp_path: Path) -> None:
    target = tmp_path / "cut.gguf"
    truncate_layers(smollm2_file, target, 3)
    source = {t.name: t for t in gguf.GGUFReader(smollm2_file).tensors}
    for tensor in gguf.GGUFReader(target).tensors:
        assert np.array_equal(np.asarray(tensor.data), np.asarray(source[tensor.name].data)), tensor.name


def test_cutting_twice_gives_the_same_file_as_cutting_once(smollm2_file: Path, tmp_path: Path) -> None:
    truncate_layers(smollm2_file, tmp_path / "20.gguf", 20)
    truncate_layers(tmp_path / "20.gguf", tmp_path / "8-from-20.gguf", 8)
    truncate_layers(smollm2_file, tmp_path / "8.gguf", 8)
    assert (tmp_path / "8-from-20.gguf").read_bytes() == (tmp_path / "8.gguf").read_bytes()


def test_per_block_arrays_in_the_header_are_cut_too(tmp_path: Path) -> None:
    source = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(source, "llama")
    writer.add_block_count(4)
    writer.add_array("llama.attention.head_count_kv", [1, 2, 3, 4])
    writer.add_array("llama.some_vocabulary_sized_array", [9, 9])
    for i in range(4):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.full(8, i, dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.arange(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    truncate_layers(source, tmp_path / "cut.gguf", 2)
    reader = gguf.GGUFReader(tmp_path / "cut.gguf")
    assert reader.fields["llama.block_count"].contents() == 2
    assert reader.fields["llama.attention.head_count_kv"].contents() == [1, 2]
    assert reader.fields["llama.some_vocabulary_sized_array"].contents() == [9, 9]
    tensors = {t.name: np.asarray(t.data).tolist() for t in reader.tensors}
    assert tensors == {"blk.0.attn_norm.weight": [0.0] * 8, "blk.1.attn_norm.weight": [1.0] * 8,
                       "output_norm.weight": list(range(8))}


@pytest.mark.parametrize("keep", [0, 30, 31])
def test_a_count_that_cuts_nothing_or_everything_is_refused(smollm2_file: Path, tmp_path: Path, keep: int) -> None:
    with pytest.raises(ModelFileError, match="from 1 to 29"):
        truncate_layers(smollm2_file, tmp_path / "cut.gguf", keep)


def test_a_file_cut_short_or_not_gguf_is_a_model_file_error(smollm2_file: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.gguf"
    short.write_bytes(smollm2_file.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="cut short"):
        truncate_layers(short, tmp_path / "cut.gguf", 4)
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        truncate_layers(text, tmp_path / "cut.gguf", 4)


def test_cut_layers_caches_its_copy(smollm2_file: Path) -> None:
    first = cut_layers(smollm2_file, 6)
    stamp = first.stat().st_mtime_ns
    assert first.parent.name == "converted" and read_gguf_info(first).n_layers == 6
    assert cut_layers(smollm2_file, 6) == first and first.stat().st_mtime_ns == stamp


def _router_config(test_config: dict[str, Any], **router: object) -> dict[str, Any]:
    test_config["models"]["router"] = {"path": SMOLLM2_PATH, "context_size": 1024, "n_threads": 1, **router}
    return test_config


def test_a_cut_router_evaluates_but_does_not_generate(write_config: WriteConfig, test_config: dict[str, Any]) -> None:
    catalog = ModelCatalog(load_config(write_config(_router_config(test_config, layers=10, weights_type="bf16"))))
    spec = catalog.spec("router")
    assert spec.info.n_layers == 10 and spec.path.parent.name == "converted"
    whole_plan = ModelCatalog(load_config(write_config(_router_config(test_config)))).spec("router").plan
    assert spec.plan.kv_bytes < whole_plan.kv_bytes  # fewer blocks, a smaller KV cache
    model = load_llama_model(spec)
    try:
        tokens = model.tokenize("Write a haiku about Python", add_bos=True)
        assert model.evaluate(tokens, hidden=True) == len(tokens)
        assert np.isfinite(model.hidden_states(1)).all()
        prompt = model.prepare("Write a haiku about Python")
        with pytest.raises(UsageError, match="first 10 layers"):
            next(iter(model.stream(prompt, 8, Sampling.of(spec.settings), lambda: False)))
    finally:
        model.close()


def test_keeping_every_layer_is_a_config_error(write_config: WriteConfig, test_config: dict[str, Any]) -> None:
    catalog = ModelCatalog(load_config(write_config(_router_config(test_config, layers=30))))
    with pytest.raises(ConfigError, match=r"models\.router\.layers is 30, but .* has 30 layers"):
        catalog.spec("router")


def test_a_route_to_a_cut_model_is_a_config_error(write_config: WriteConfig, test_config: dict[str, Any]) -> None:
    test_config["models"]["coder"]["layers"] = 12
    test_config["router"] = {"model": "coder", "default_route": "coder", "routes": {
        "coder": {"model": "coder", "description": "software"},
        "algorithm": {"model": "algorithm", "description": "algorithms"}}}
    with pytest.raises(ConfigError, match="route 'coder' names model 'coder', which keeps only 12"):
        load_config(write_config(test_config))


def test_a_cut_router_without_a_head_refuses_to_route_and_a_head_trains_for_it(
        write_config: WriteConfig, test_config: dict[str, Any], tmp_path: Path) -> None:
    from ggroute.evals.head_training import train_route_head
    from ggroute.router.pipeline import Pipeline

    _router_config(test_config, layers=6)
    test_config["router"] = {"model": "router", "default_route": "coder", "max_task_tokens": 16, "routes": {
        "coder": {"model": "coder", "description": "software", "examples": ["Write a Flask endpoint"]},
        "algorithm": {"model": "algorithm", "description": "algorithms", "examples": ["Shortest path"]}}}
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text("".join(
        json.dumps({"task": f"{verb} number {i}", "route": route}) + "\n"
        for i in range(20) for verb, route in (("Deploy the web app", "coder"), ("Dynamic programming", "algorithm"))
    ))
    config_path = write_config(test_config)
    with Pipeline(load_config(config_path), check_log=False) as pipeline:
        with pytest.raises(ConfigError, match=rf"^{re.escape(str(config_path.resolve()))}: models\.router\.layers "
                           r"keeps 6 blocks .* set router\.head"):
            pipeline.router.decide("Write a haiku")
        trained = train_route_head(pipeline.router, [labeled])
    assert trained.head.identity["layers"] == "6"
    trained.head.save(tmp_path / "head.json")
    test_config["router"]["head"] = str(tmp_path / "head.json")
    with Pipeline(load_config(write_config(test_config)), check_log=False) as pipeline:
        assert pipeline.router.decide("Dynamic programming number 99").route == "algorithm"
