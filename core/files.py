"""Files for a user: read and parse JSON with errors that say file, line and column; write atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ggroute.core.errors import GgrouteError


def parse_json(text: str, source: Path, error: type[GgrouteError]) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def read_text(path: Path, error: type[GgrouteError], what: str, missing_hint: str = "") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found{missing_hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None


@contextmanager
def atomic_target(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` to write; it replaces `target` only when the block succeeds.

    Readers never see a half-written file, and a failed or interrupted write leaves no partial file behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def write_atomic(target: Path, data: bytes | str) -> None:
    with atomic_target(target) as partial:
        if isinstance(data, str):
            partial.write_text(data, encoding="utf-8")
        else:
            partial.write_bytes(data)
