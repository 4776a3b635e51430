"""Fixtures for the remote backend: the stub server (one per session), configs naming remote models."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ggroute.models.config import SMOLLM2_PATH
from tests.remote.stub import Stub


@pytest.fixture(scope="session")
def stub() -> Iterator[Stub]:
    with Stub().running() as server:
        yield server


def remote_model(base_url: str, model: str, **settings: Any) -> dict[str, Any]:
    return {"backend": "openai", "base_url": base_url, "model": model, "max_tokens": 32,
            "connect_timeout_s": 2, "read_timeout_s": 5, **settings}


@pytest.fixture
def remote_config(tmp_path: Path) -> Callable[..., Path]:
    """remote_config(models={...}, fallback=None) writes a config with those models, a local router model (only
    its header is read: tests force the route) and one route `main` on the model named "main"."""

    def write(models: dict[str, Any], fallback: str | None = None, **top: Any) -> Path:
        route: dict[str, Any] = {"model": "main", "description": "everything"}
        if fallback is not None:
            route["fallback"] = fallback
        data = {
            "models": {"router": {"path": SMOLLM2_PATH, "context_size": 1024, "n_threads": 1}, **models},
            "router": {"model": "router", "routes": {"main": route}, "default_route": "main"},
            "log_file": str(tmp_path / "requests.jsonl"),
            **top,
        }
        path = tmp_path / "config.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write


def log_lines(config: Path) -> list[dict[str, Any]]:
    path = Path(json.loads(config.read_text())["log_file"])
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
