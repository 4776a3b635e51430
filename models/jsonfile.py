"""Read a JSON file for a user: every failure becomes the caller's error type with file, line and column."""

from __future__ import annotations

import json
from pathlib import Path

from ggroute.models.errors import GgrouteError


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
