"""The router prefix's KV state on disk: restored state must score exactly like a computed one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ggroute.router.pipeline import Pipeline
from tests.conftest import label_logit_router, load

pytestmark = pytest.mark.slow  # every test here runs the real models

TASK = "Count the connected components of an undirected graph"


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache dir with the assembled Gemma model but no router prefix yet."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GGROUTE_CACHE_DIR", str(cache))
    return cache


def route_once(config: Path) -> tuple[dict[str, float], bool]:
    with Pipeline(load(config)) as pipeline:
        outcome = pipeline.route(TASK)
        classifier = pipeline.router._classifier
        assert classifier is not None
        return outcome.label_logits, classifier.prefix_restored


def test_restored_prefix_scores_like_a_computed_one(routed_config, fresh_cache: Path) -> None:
    config = routed_config()
    computed, restored_first = route_once(config)
    files = list((fresh_cache / "router-prefix").glob("*.kv"))
    assert len(files) == 1 and not restored_first
    restored, restored_second = route_once(config)
    assert restored_second is True
    for route, value in computed.items():
        assert restored[route] == pytest.approx(value, abs=1e-3)


def test_corrupt_cache_file_is_reported_and_recomputed(routed_config, fresh_cache: Path, caplog) -> None:
    config = routed_config()
    computed, _ = route_once(config)
    [cache_file] = (fresh_cache / "router-prefix").glob("*.kv")
    cache_file.write_bytes(b"not a cache file")
    with caplog.at_level(logging.WARNING, logger="ggroute.router"):
        again, restored = route_once(config)
    assert restored is False
    assert "not a ggroute cache file" in caplog.text
    assert again == pytest.approx(computed, abs=1e-3)
    assert cache_file.read_bytes().startswith(b"GGRPFX1\n")  # rewritten with a good state


def test_changing_the_examples_changes_the_cache_key(routed_config, fresh_cache: Path) -> None:
    route_once(routed_config())

    def edit(data: dict) -> None:
        label_logit_router(data)  # a head is trained for one prefix: this test is about the cache key
        data["router"]["routes"]["coder"]["examples"].append("Write a Makefile for a C project")

    _, restored = route_once(routed_config(edit))
    assert restored is False
    assert len(list((fresh_cache / "router-prefix").glob("*.kv"))) == 2
