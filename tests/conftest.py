"""Shared fixtures: isolated environment, small test config, a session-wide loaded SmolLM2.

Tests never touch the user's files: every GGROUTE_* variable is cleared, XDG_STATE_HOME (the default request
log folder) points at the test's tmp_path, and assembled models go to one fixed cache folder under the system
temp dir, so Gemma is assembled once per machine rather than once per session.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ggroute.models.config import (
    GEMMA3_PATH,
    SMOLLM2_PATH,
    LoadedConfig,
    load_config,
    packaged_default_config,
    parse_config,
)
from ggroute.models.locate import CACHE_ENV
from tests.fakes import Script, ScriptedLoader, scripted_loader

if TYPE_CHECKING:
    from ggroute.models.llamacpp.model import LlamaModel

TEST_CACHE_DIR = Path(tempfile.gettempdir()) / "ggroute-test-cache"

# Small, fast settings for the two real models. n_threads is 1 on purpose: the test machines share 2 cores
# with other work, and llama.cpp's worker threads spin-wait on each other, so with 2 threads a busy neighbour
# makes a 30-token request take a minute or more (measured); one thread keeps requests at about a second.
SMALL_CONFIG: dict[str, object] = {
    "models": {
        "coder": {
            "path": SMOLLM2_PATH,
            "context_size": 1024,
            "max_tokens": 32,
            "temperature": 0,
            "n_threads": 1,
        },
        "algorithm": {
            "path": GEMMA3_PATH,
            "context_size": 1024,
            "max_tokens": 16,
            "temperature": 0,
            "n_threads": 1,
            "completion_template": "Write Python code for: {task}\n\nCode:\n```python\n",
        },
    },
    "memory_budget_mb": 8000,
    "log_file": "requests.jsonl",  # relative: lands next to the config file, i.e. inside tmp_path
}


SHIPPED = json.loads(packaged_default_config().read_text(encoding="utf-8"))
# Test configs are written elsewhere: point them at the shipped route head by its absolute path.
SHIPPED["router"]["head"] = str(packaged_default_config().resolve().parent / SHIPPED["router"]["head"])
# The calibration fitted on tests/data/routing_dev.jsonl for label-logit scoring (the router before the head).
LABEL_LOGIT_CALIBRATION = {"scale": 3.1602, "offsets": {"coder": 0.0, "algorithm": -2.5692}}


def label_logit_router(data: dict[str, Any], calibration: dict[str, Any] | None = None) -> None:
    """Switch a config's router from the route head to label-logit scoring (content-free calibration if None)."""
    data["router"]["head"] = None
    data["router"]["calibration"] = calibration


def load(path: Path) -> LoadedConfig:
    return parse_config(path.read_text(encoding="utf-8"), path)


def small_routed_config(path: Path) -> Path:
    """The shipped config (router included) with one thread per model and short generations."""
    data = json.loads(json.dumps(SHIPPED))
    data["log_file"] = str(path.parent / "requests.jsonl")
    for model in data["models"].values():
        model["n_threads"] = 1
    data["models"]["coder"]["max_tokens"] = 48
    data["models"]["algorithm"]["max_tokens"] = 48
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def small_config(**top_level: object) -> dict[str, object]:
    """A fresh deep copy of SMALL_CONFIG with top-level keys replaced."""
    data = copy.deepcopy(SMALL_CONFIG)
    data.update(top_level)
    return data


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir() -> Iterator[Path]:
    """Session and module fixtures are set up before function ones: give them the cache folder too."""
    TEST_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(TEST_CACHE_DIR))
        yield TEST_CACHE_DIR


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("GGROUTE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(CACHE_ENV, str(TEST_CACHE_DIR))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def test_config() -> dict[str, object]:
    """A fresh copy of the small test config, free to modify."""
    return small_config()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """write_config(data, name="config.json") writes `data` as JSON into tmp_path and returns the path."""

    def write(data: dict[str, object], name: str = "config.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    """SmolLM2 loaded once per session as the test config's `coder` (context 1024, max_tokens 32, greedy)."""
    from ggroute.models.catalog import ModelCatalog
    from ggroute.models.llamacpp.model import load_llama_model

    path = tmp_path_factory.mktemp("smollm2") / "config.json"
    path.write_text(json.dumps(SMALL_CONFIG), encoding="utf-8")
    model = load_llama_model(ModelCatalog(load_config(path)).spec("coder"))
    yield model
    model.close()


@pytest.fixture
def routed_config(tmp_path: Path) -> Callable[..., Path]:
    """Write the shipped config with edits applied (a function of the dict) and return its path."""

    def make(edit: Callable[[dict], None] | None = None) -> Path:
        data = json.loads(json.dumps(SHIPPED))
        data["log_file"] = str(tmp_path / "requests.jsonl")
        if edit is not None:
            edit(data)
        path = tmp_path / "config.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return make


# --- Scripted fakes (tests/fakes.py) for pure-policy tests --------------------------------------------------

_HEADERS: dict[tuple[Path, int, int], object] = {}


@pytest.fixture
def cached_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read each GGUF header once per session (the catalog reads it once per catalog, ~0.2 s for SmolLM2)."""
    from ggroute.models import catalog
    from ggroute.models.gguf_info import read_gguf_info

    def cached(path: Path) -> object:
        stat = path.stat() if path.exists() else None
        if stat is None:
            return read_gguf_info(path)  # raises the real error
        key = (path, stat.st_mtime_ns, stat.st_size)
        if key not in _HEADERS:
            _HEADERS[key] = read_gguf_info(path)
        return _HEADERS[key]

    monkeypatch.setattr(catalog, "read_gguf_info", cached)


@pytest.fixture
def scripted_backends(monkeypatch: pytest.MonkeyPatch, cached_headers: None) -> Callable[..., ScriptedLoader]:
    """scripted_backends(coder=Script(...), ...) puts a ScriptedLoader over ggroute.models.backend.load_backend
    (what the pool, the pipeline and the CLI load models with) and returns it; unscripted models play Script()."""
    from ggroute.models import backend

    def install(**scripts: Script) -> ScriptedLoader:
        loader = scripted_loader(**scripts)
        monkeypatch.setattr(backend, "load_backend", loader)
        return loader

    return install
