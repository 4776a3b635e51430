"""Change values inside config.json without disturbing anything else: key order, indentation, other keys.

The file is re-serialised nowhere: a small scanner finds the byte span of each value, and only the spans that
change are replaced (or a member is appended after the object's last member, in its indentation). The
previous file is kept beside it with a timestamp, and the result is validated before it replaces the original.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ggroute.core.errors import ConfigError
from ggroute.core.files import write_atomic
from ggroute.models.config import parse_config

_WS = re.compile(r"\s*")
_INDENT = re.compile(r"[ \t]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SCALAR = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


@dataclass
class Span:
    start: int
    end: int
    members: dict[str, Span] = field(default_factory=dict)  # for objects: key -> value span
    last_member_end: int | None = None  # end of the last member's value, for appending


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        self.pos = _match_end(_WS, self.text, self.pos)

    def value(self) -> Span:
        self.skip()
        start, char = self.pos, self.text[self.pos : self.pos + 1]
        if char == "{":
            return self.obj(start)
        if char == "[":
            self.pos += 1
            self.skip()
            while self.text[self.pos] != "]":
                self.value()
                self.skip()
                if self.text[self.pos] == ",":
                    self.pos += 1
                    self.skip()
            self.pos += 1
            return Span(start, self.pos)
        match = (_STRING if char == '"' else _SCALAR).match(self.text, self.pos)
        if match is None:
            raise ValueError(f"unexpected character at offset {self.pos}")
        self.pos = match.end()
        return Span(start, self.pos)

    def obj(self, start: int) -> Span:
        span = Span(start, start)
        self.pos += 1
        self.skip()
        while self.text[self.pos] != "}":
            key_match = _STRING.match(self.text, self.pos)
            if key_match is None:
                raise ValueError(f"expected a key at offset {self.pos}")
            key = json.loads(key_match.group())
            self.pos = key_match.end()
            self.skip()
            self.pos += 1  # ':'
            member = self.value()
            span.members[key] = member
            span.last_member_end = member.end
            self.skip()
            if self.text[self.pos] == ",":
                self.pos += 1
                self.skip()
        self.pos += 1
        span.end = self.pos
        return span


def _match_end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where `pattern` stops matching at `pos` (the patterns used here also match the empty string)."""
    match = pattern.match(text, pos)
    return match.end() if match is not None else pos


def _indent_of_member(text: str, obj: Span) -> str:
    """The indentation of the object's first member line, or two spaces past the line with its brace."""
    first = min((m.start for m in obj.members.values()), default=None)
    if first is not None:
        line_start = text.rfind("\n", 0, first) + 1
        return text[line_start : _match_end(_INDENT, text, line_start)]
    line_start = text.rfind("\n", 0, obj.start) + 1
    return text[line_start : _match_end(_INDENT, text, line_start)] + "  "


def _append_members(text: str, obj: Span, members: list[str]) -> tuple[int, int, str]:
    if "\n" not in text[obj.start : obj.end]:  # a one-line object stays on one line
        if obj.last_member_end is None:
            return obj.start + 1, obj.end - 1, ", ".join(members)
        return obj.last_member_end, obj.last_member_end, "".join(f", {m}" for m in members)
    indent = _indent_of_member(text, obj)
    if obj.last_member_end is None:
        closing = text[text.rfind("\n", 0, obj.end) + 1 : obj.end - 1]
        return obj.start + 1, obj.end - 1, "\n" + ",\n".join(indent + m for m in members) + "\n" + closing
    return obj.last_member_end, obj.last_member_end, "".join(f",\n{indent}{m}" for m in members)


def edit_model_fields(text: str, updates: dict[str, dict[str, object]]) -> str:
    """Return `text` with models.NAME.KEY set to each value; everything else byte for byte as it was."""
    root = _Scanner(text).value()
    models = root.members.get("models")
    if models is None:
        raise ConfigError("config has no `models` object to update")
    edits: list[tuple[int, int, str]] = []
    for name, fields in updates.items():
        obj = models.members.get(name)
        if obj is None:
            raise ConfigError(f"config has no model '{name}' to update")
        appended: list[str] = []
        for key, value in fields.items():
            encoded = json.dumps(value)
            if key in obj.members:
                edits.append((obj.members[key].start, obj.members[key].end, encoded))
            else:
                appended.append(f'"{key}": {encoded}')
        if appended:
            edits.append(_append_members(text, obj, appended))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def apply_model_fields(path: Path, updates: dict[str, dict[str, object]]) -> Path:
    """Write the updates into the config file; return where the previous file was saved."""
    original = path.read_text(encoding="utf-8")
    try:
        updated = edit_model_fields(original, updates)
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"{path}: cannot locate the fields to update ({exc})") from None
    parse_config(updated, path)  # never write a config that would not load
    backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
    backup.write_text(original, encoding="utf-8")
    write_atomic(path, updated)
    return backup
