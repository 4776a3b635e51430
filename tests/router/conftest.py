"""Router fixtures: the shipped config's router section, with the log pointed into tmp_path."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ggroute.models.config import LoadedConfig, packaged_default_config, parse_config
from ggroute.router.pipeline import Pipeline

SHIPPED = json.loads(packaged_default_config().read_text(encoding="utf-8"))


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


def load(path: Path) -> LoadedConfig:
    return parse_config(path.read_text(encoding="utf-8"), path)


@pytest.fixture(scope="module")
def shipped_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """One pipeline over the shipped config for the module: the router prefix is built once."""
    data = json.loads(json.dumps(SHIPPED))
    data["log_file"] = str(tmp_path_factory.mktemp("log") / "requests.jsonl")
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with Pipeline(load(path)) as pipeline:
        yield pipeline
