"""Router fixtures: the shipped config's router section, with the log pointed into tmp_path."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ggroute.router.pipeline import Pipeline
from tests.conftest import SHIPPED, load


@pytest.fixture(scope="module")
def shipped_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """One pipeline over the shipped config for the module: the router prefix is built once."""
    data = json.loads(json.dumps(SHIPPED))
    data["log_file"] = str(tmp_path_factory.mktemp("log") / "requests.jsonl")
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with Pipeline(load(path)) as pipeline:
        yield pipeline
