"""Parsing `hf:` references and choosing a quantization's file: pure functions, and config validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ggroute.core.errors import ConfigError
from ggroute.models.config import load_config
from ggroute.models.hub_ref import HubRef, HubRefError, files_for_quant, parse_hub_ref, quant_of, split_parts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hf:Qwen/Qwen2.5-Coder-7B-Instruct-GGUF/qwen2.5-coder-7b-instruct-q4_k_m.gguf",
         HubRef("Qwen/Qwen2.5-Coder-7B-Instruct-GGUF", "qwen2.5-coder-7b-instruct-q4_k_m.gguf", None, None)),
        ("hf:bartowski/Some-GGUF:Q4_K_M", HubRef("bartowski/Some-GGUF", None, "Q4_K_M", None)),
        ("hf:bartowski/Some-GGUF:Q4_K_M@v2", HubRef("bartowski/Some-GGUF", None, "Q4_K_M", "v2")),
        ("hf:o/r/dir/M-Q8_0-00001-of-00002.gguf@" + "c" * 40,
         HubRef("o/r", "dir/M-Q8_0-00001-of-00002.gguf", None, "c" * 40)),
    ],
)
def test_parse(text: str, expected: HubRef) -> None:
    assert parse_hub_ref(text) == expected
    assert parse_hub_ref(text).text == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hf:", "empty"),
        ("hf:owner", "OWNER/REPO"),
        ("hf:owner/repo", "no file or quantization"),
        ("hf:owner/repo/model.bin", "not a .gguf file"),
        ("hf:owner/repo/../x.gguf", "not a .gguf file"),
        ("hf:owner/repo:Q4 K", "not a quantization name"),
        ("hf:owner/repo/m.gguf@", "revision"),
        ("hf:-bad/repo/m.gguf", "OWNER/REPO"),
        ("hf:o/r/M-00002-of-00003.gguf", "name its first part, M-00001-of-00003.gguf"),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(HubRefError, match=message):
        parse_hub_ref(text)


def test_split_parts() -> None:
    assert split_parts("a/M-00001-of-00003.gguf") == [f"a/M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert split_parts("M.gguf") == ["M.gguf"]


def test_files_for_quant() -> None:
    files = ["README.md", "M-Q4_K_M.gguf", "M-Q4_K_S.gguf", "M-Q4_K.gguf", "mmproj-M-Q4_K_M.gguf",
             "M-Q8_0/M-Q8_0-00001-of-00002.gguf", "M-Q8_0/M-Q8_0-00002-of-00002.gguf", "m.IQ4_XS.gguf"]
    assert files_for_quant(files, "q4_k_m", "ref") == "M-Q4_K_M.gguf"
    assert files_for_quant(files, "Q4_K", "ref") == "M-Q4_K.gguf"
    assert files_for_quant(files, "Q8_0", "ref") == "M-Q8_0/M-Q8_0-00001-of-00002.gguf"
    assert files_for_quant(files, "IQ4_XS", "ref") == "m.IQ4_XS.gguf"
    with pytest.raises(HubRefError, match="no .gguf file for quantization Q2_K.*IQ4_XS, Q4_K, Q4_K_M"):
        files_for_quant(files, "Q2_K", "ref")
    with pytest.raises(HubRefError, match="several files match"):
        files_for_quant(["a-Q4_0.gguf", "b-Q4_0.gguf"], "Q4_0", "ref")


def test_quant_of() -> None:
    assert quant_of("qwen2.5-coder-7b-instruct-q4_k_m.gguf") == "Q4_K_M"
    assert quant_of("M-Q8_0-00001-of-00002.gguf") == "Q8_0"
    assert quant_of("model-f16.gguf") == "F16"
    assert quant_of("README.md") is None


def test_malformed_reference_in_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"models": {"coder": {"path": "hf:owner/repo"}}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"models\.coder\.path.*no file or quantization"):
        load_config(path)
