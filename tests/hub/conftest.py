"""Fixtures for `hf:` models: a stub Hub on loopback serving SmolLM2, and huggingface_hub pointed at it.

huggingface_hub reads HF_ENDPOINT, HF_HUB_CACHE, HF_HUB_OFFLINE and its token paths once, when it is imported;
`hub_env` sets those variables (for subprocesses) and the module constants (for this process) to the stub and a
cache under tmp_path, so no test reaches the internet or touches the user's Hugging Face files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ggroute.models.config import SMOLLM2_PATH
from ggroute.models.locate import resolve_model_path
from tests.hub.stub_hub import StubFile, StubHub, StubRepo

SMOL_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
SMOL_FILE = "SmolLM2-135M-Instruct-Q4_1.gguf"
SMOL_REF = f"hf:{SMOL_REPO}/{SMOL_FILE}"
GATED_REPO = "gated-org/Gated-GGUF"
SPLIT_REPO = "split-org/Tiny-GGUF"
CDN_REPO = "cdn-org/Cdn-GGUF"  # resolve redirects to another origin, as the Hub does for LFS files
GATED_TOKEN = "hf_test_token_for_the_stub"


@pytest.fixture(scope="session")
def smol_stub_file() -> StubFile:
    """SmolLM2's file with its sha256, hashed once per session."""
    return StubFile(resolve_model_path(SMOLLM2_PATH, Path.cwd()))


@pytest.fixture(scope="session")
def not_gguf_file(tmp_path_factory: pytest.TempPathFactory) -> StubFile:
    path = tmp_path_factory.mktemp("stub") / "page.html"
    path.write_bytes(b"<!doctype html><title>not a model</title>\n" * 100)
    return StubFile(path)


@pytest.fixture(scope="session")
def split_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StubFile]:
    """A tiny model in two GGUF parts, written by the gguf package as llama.cpp's gguf-split would."""
    import gguf
    import numpy as np

    folder = tmp_path_factory.mktemp("split")
    writer = gguf.GGUFWriter(folder / "Tiny-Q8_0.gguf", "llama", split_max_tensors=2)
    writer.add_block_count(1)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_vocab_size(32)
    for i in range(4):
        writer.add_tensor(f"t{i}", np.ones((64, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {f"Tiny-Q8_0/{p.name}": StubFile(p) for p in sorted(folder.glob("*.gguf"))}


@pytest.fixture(scope="session")
def hub(smol_stub_file: StubFile, not_gguf_file: StubFile, split_files: dict[str, StubFile]) -> Iterator[StubHub]:
    with StubHub() as stub:
        stub.repos[SMOL_REPO] = StubRepo(
            {SMOL_FILE: smol_stub_file, "notes/page-Q8_0.gguf": not_gguf_file},
            branches={"v1.0": "b" * 40},
        )
        stub.repos["corrupt/Corrupt-GGUF"] = StubRepo(
            {"Corrupt-Q4_1.gguf": StubFile(smol_stub_file.path, smol_stub_file.sha256, wrong_etag=True)}
        )
        stub.repos[SPLIT_REPO] = StubRepo(dict(split_files))
        stub.repos[GATED_REPO] = StubRepo({"Gated-Q4_1.gguf": smol_stub_file}, gated_token=GATED_TOKEN)
        stub.repos[CDN_REPO] = StubRepo({"Cdn-Q4_1.gguf": smol_stub_file}, gated_token=GATED_TOKEN, cdn=True)
        yield stub


@dataclass
class HubEnv:
    stub: StubHub
    cache: Path
    home: Path

    def environ(self, **extra: str) -> dict[str, str]:
        """Variables for a subprocess (huggingface_hub reads them at import there)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        return {**env, "HF_ENDPOINT": self.stub.url, "HF_HOME": str(self.home), "HF_HUB_CACHE": str(self.cache),
                "HF_HUB_DISABLE_TELEMETRY": "1", **extra}

    def offline(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def hub_env(hub: StubHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubEnv:
    from huggingface_hub import constants

    home, cache = tmp_path / "hf-home", tmp_path / "hf-home" / "hub"
    hub.requests.clear()
    hub.cut_after = None
    hub.throttle_s = 0.0
    for name in [n for n in os.environ if n.startswith(("HF_", "HUGGING"))]:
        monkeypatch.delenv(name)
    env = HubEnv(hub, cache, home)
    for name, value in env.environ().items():
        monkeypatch.setenv(name, value)
    patched: dict[str, object] = {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    for name, value in patched.items():
        monkeypatch.setattr(constants, name, value)
    return env
