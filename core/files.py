"""Files for a user: read and parse JSON with errors that say file, line and column; write atomically.

JSON a user writes is read strictly. A key repeated in one object is an error naming the key and both places
(json.loads would keep the last one without a word). Text that is not UTF-8 is refused with its line and
column rather than decoded with replacement: a U+FFFD in place of a character would change a config value or
an expected output silently. A UTF-8 byte order mark at the start is accepted (some editors write one).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ggroute.core.errors import GgrouteError

_WHITESPACE = " \t\n\r"
_KEY_CHARS = 60  # longest key quoted whole in a message


class JSONProblem(ValueError):
    """Why a text is not JSON ggroute accepts; the callers turn it into their own GgrouteError."""

    def __init__(self, what: str, detail: str, line: int | None = None, column: int | None = None) -> None:
        self.what = what
        self.detail = detail
        self.line = line
        self.column = column
        super().__init__(self.describe())

    def describe(self, *, with_line: bool = True) -> str:
        """`invalid JSON at line 3, column 5: Expecting value`; `with_line=False` for a one-line document."""
        if self.column is None:
            return f"{self.what}: {self.explain(with_line)}"
        return f"{self.what} at {_place(self.line, self.column, with_line)}: {self.explain(with_line)}"

    def explain(self, with_line: bool) -> str:
        return self.detail


class DuplicateKeyError(JSONProblem):
    """A key appears twice in one object: `line`/`column` is the second occurrence, `first_*` the first."""

    def __init__(self, key: str, line: int, column: int, first_line: int, first_column: int) -> None:
        self.key = key
        self.first_line = first_line
        self.first_column = first_column
        shown = key if len(key) <= _KEY_CHARS else key[:_KEY_CHARS] + "..."
        super().__init__(f"duplicate key {shown!r}", "", line, column)

    def explain(self, with_line: bool) -> str:
        first = _place(self.first_line, self.first_column, with_line)
        return f"the same object has it at {first} already; each key may appear once in an object"


def _place(line: int | None, column: int, with_line: bool) -> str:
    return f"line {line}, column {column}" if with_line else f"column {column}"


def loads_strict(text: str) -> object:
    """json.loads that refuses a key repeated in one object; every failure is a JSONProblem.

    Besides json.JSONDecodeError, json.loads raises RecursionError (arrays or objects nested thousands deep)
    and ValueError (an integer literal over Python's 4300-digit limit): both are JSONProblems here too."""
    repeated = False

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        obj = dict(pairs)
        repeated = repeated or len(obj) != len(pairs)
        return obj

    constants: list[str] = []

    def constant_hook(name: str) -> object:  # json.loads reads NaN and Infinity, which JSON has not
        constants.append(name)
        return None

    try:
        data = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=constant_hook)
    except json.JSONDecodeError as exc:
        raise JSONProblem("invalid JSON", exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:
        raise JSONProblem("invalid JSON", f"nested too deeply (at most about {sys.getrecursionlimit()} levels "
                          "of arrays and objects can be read)") from None
    except ValueError:  # int() refused a literal over sys.get_int_max_str_digits() digits
        raise JSONProblem("invalid JSON", f"a number with more than {sys.get_int_max_str_digits()} digits") from None
    if repeated:
        _raise_first_duplicate(text)
    if constants:
        raise JSONProblem("invalid JSON", f"{constants[0]} is not a JSON value (write a number)")
    return data


def _raise_first_duplicate(text: str) -> None:
    """Raise DuplicateKeyError for the first key, in text order, that its object already has.

    `text` is valid JSON, so outside strings braces and brackets nest, and a string followed by ':' is a key."""
    decoder = json.JSONDecoder()
    open_objects: list[dict[str, int] | None] = []  # per open container: key -> position (None: an array)
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            key, end = decoder.raw_decode(text, i)
            after = end
            while after < len(text) and text[after] in _WHITESPACE:
                after += 1
            keys = open_objects[-1] if open_objects else None
            if keys is not None and after < len(text) and text[after] == ":":
                if key in keys:
                    raise DuplicateKeyError(key, *_line_column(text, i), *_line_column(text, keys[key]))
                keys[key] = i
            i = end
            continue
        if ch == "{":
            open_objects.append({})
        elif ch == "[":
            open_objects.append(None)
        elif ch in "}]":
            open_objects.pop()
        i += 1


def _line_column(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of `pos`, as json.JSONDecodeError counts them."""
    return text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)


def parse_json(text: str, source: Path, error: type[GgrouteError]) -> object:
    try:
        return loads_strict(text)
    except JSONProblem as exc:
        raise error(f"{source}: {exc.describe()}") from None


def read_text(path: Path, error: type[GgrouteError], what: str, missing_hint: str = "") -> str:
    """The file as text (newlines as Python's text mode reads them); not UTF-8 is an error naming the place."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found{missing_hint}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8: {_undecodable(data, exc.start)}; save it as UTF-8") from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _undecodable(data: bytes, start: int) -> str:
    """Where the first byte that is not UTF-8 is: line and column (in characters), and the byte."""
    line_start = data.rfind(b"\n", 0, start) + 1
    column = len(data[line_start:start].decode("utf-8")) + 1  # everything before `start` decodes
    line = data.count(b"\n", 0, start) + 1
    return f"line {line}, column {column} (byte 0x{data[start]:02x})"


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
