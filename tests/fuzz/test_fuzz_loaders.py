"""Fuzzing the loaders of user-written files: config.json, suite files and labeled routing JSONL files.

Whatever the file holds (random text or bytes, JSON of any shape, a valid file with a random field replaced or
a random edit), loading it either succeeds or raises the loader's own GgrouteError naming the file: never
another exception, which the CLI would show as a traceback. Where the input is known to be valid or to hold a
repeated key, the result is checked too.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ggroute.core.errors import ConfigError, GgrouteError, SuiteFileError, UsageError
from ggroute.evals.routing_data import read_labeled
from ggroute.evals.suite import Case, Checks, Suite, Target, load_suite
from ggroute.models.config import (
    AppConfig,
    CalibrationConfig,
    LoopGuardConfig,
    ModelConfig,
    RouteConfig,
    RouterConfig,
    load_config,
)
from tests.conftest import SHIPPED
from tests.fuzz.conftest import fuzz_settings, tried

# A valid suite using most fields (docs/suites/ has longer ones).
SUITE_EXAMPLE: dict[str, Any] = {
    "name": "fuzz", "phase": 2, "defaults": {"route": "coder", "max_tokens": 64},
    "cases": [
        {"id": "a", "task": "Say hi.", "checks": {"contains": "hi", "regex": "(?i)h", "finish_reason": "stop"}},
        {"id": "b", "task": "Add.", "route": None, "expect_route": "coder", "timeout_s": 5,
         "checks": {"python": "assert add(1, 2) == 3", "python_timeout_s": 3, "max_seconds": 60}},
    ],
}
ROUTES = ["coder", "algorithm"]
# A valid config with every section, small enough to copy and walk for each example.
CONFIG_EXAMPLE: dict[str, Any] = {
    "models": {"router": {"context_size": 2048, "loop_guard": {"enabled": False}},
               "coder": {"max_tokens": 64, "stop": ["\n```"]}},
    "log_file": "requests.jsonl",
    "router": {"routes": {"coder": {"model": "coder", "description": "code", "examples": ["sort a list"]}},
               "default_route": "coder", "calibration": {"scale": 2.0, "offsets": {"coder": 0.0}}},
}


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """One folder for every example of a module (hypothesis runs a test body many times per fixture)."""
    with tempfile.TemporaryDirectory(prefix="ggroute-fuzz-") as name:
        yield Path(name)


# --- strategies ------------------------------------------------------------------------------------------------

CONFIG_KEYS = sorted({*AppConfig.model_fields, *ModelConfig.model_fields, *LoopGuardConfig.model_fields,
                      *RouterConfig.model_fields, *RouteConfig.model_fields, *CalibrationConfig.model_fields,
                      "router", "coder", "algorithm"})
SUITE_KEYS = sorted({*Suite.model_fields, *Case.model_fields, *Target.model_fields, *Checks.model_fields})
# Characters that break naive line handling, quoting or encoding, mixed into the text the strategies draw.
AWKWARD = "\n\r\t\"\\{}[]:,\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\ufeff\ufffd{task}é€😀"
texts = st.text(st.characters(codec="utf-8") | st.sampled_from(AWKWARD), max_size=24)
numbers = (st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from([0, 1, -1, 64, 4096, 1_048_576, 1_048_577, 0.5, 1e-300]))
scalars = st.none() | st.booleans() | numbers | texts


def json_values(keys: list[str]) -> st.SearchStrategy[Any]:
    """Any JSON value; object keys are mostly the schema's own field names, so validation goes deep."""
    key = st.sampled_from(keys) | texts
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(key, inner, max_size=4),
                        max_leaves=8)


CONFIG_VALUES = json_values(CONFIG_KEYS)
SUITE_VALUES = json_values(SUITE_KEYS)


def containers(data: object, at: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The paths of every object and array inside `data` (itself included)."""
    if isinstance(data, dict):
        yield at
        for key, value in data.items():
            yield from containers(value, (*at, key))
    elif isinstance(data, list):
        yield at
        for index, value in enumerate(data):
            yield from containers(value, (*at, index))


def pick(draw: st.DrawFn, items: list[Any]) -> Any:
    return items[draw(st.integers(0, len(items) - 1))]


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], keys: list[str], values: st.SearchStrategy[Any]) -> Any:
    """`base` with up to four changes: a value replaced by any JSON value, a key removed, or a key added."""
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, 4))):
        target: Any = data
        for part in pick(draw, list(containers(data))):
            target = target[part]
        value = draw(values)
        if isinstance(target, list):
            if target and draw(st.booleans()):
                target[draw(st.integers(0, len(target) - 1))] = value
            else:
                target.append(value)
        elif target and draw(st.booleans()):
            name = pick(draw, list(target))
            if draw(st.booleans()):
                del target[name]
            else:
                target[name] = value
        else:
            target[pick(draw, keys) if draw(st.booleans()) else draw(texts)] = value
    return data


def dumps(data: object, draw: st.DrawFn) -> str:
    """JSON text as a person or a tool might write it: indented or not, escaped to ASCII or not."""
    return json.dumps(data, indent=draw(st.sampled_from([None, 2])), ensure_ascii=draw(st.booleans()))


@st.composite
def edited(draw: st.DrawFn, text: str) -> str:
    """`text` with a few random insertions, deletions or a repeated slice (mostly invalid JSON)."""
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 8)))
        choice = draw(st.sampled_from(["insert", "delete", "repeat"]))
        if choice == "insert":
            text = text[:start] + draw(texts) + text[start:]
        elif choice == "delete":
            text = text[:start] + text[end:]
        else:
            text = text[:end] + text[start:end] + text[end:]
    return text


# Inputs whose shape, not content, is the trouble: json.loads itself raises RecursionError or ValueError on them.
pathological = st.one_of(
    st.integers(900, 5000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(900, 5000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.integers(4200, 5000).map(lambda digits: '{"memory_budget_mb": ' + "9" * digits + "}"),
    st.integers(4200, 5000).map(lambda digits: '{"name": "x", "phase": 1' + "0" * digits + ', "cases": []}'),
)


@st.composite
def json_texts(draw: st.DrawFn, base: dict[str, Any], keys: list[str], values: st.SearchStrategy[Any]) -> str:
    kind = draw(st.sampled_from(["text", "any json", "mutated", "edited", "pathological"]))
    if kind == "text":
        return draw(texts)
    if kind == "any json":
        return dumps(draw(values), draw)
    if kind == "pathological":
        return draw(pathological)
    text = dumps(draw(mutated(base, keys, values)), draw)
    return draw(edited(text)) if kind == "edited" else text


raw_bytes = st.binary(max_size=64) | st.builds(
    lambda text, at, junk: text.encode()[:at] + junk + text.encode()[at:],
    st.just(json.dumps(SHIPPED)), st.integers(0, 200), st.binary(min_size=1, max_size=4),
)


# --- objects that may repeat a key, written down with the place of the first repeat -----------------------------


@dataclass
class Obj:
    """A JSON object as written: its (key, value) pairs in order, keys possibly repeated."""

    pairs: list[tuple[str, Any]]


@st.composite
def objects(draw: st.DrawFn, keys: list[str], depth: int = 0) -> Obj:
    """Objects whose keys come from a few names, so that some repeat, at any level."""
    inner = objects(keys, depth + 1)
    values = st.one_of(scalars, inner, st.lists(inner, max_size=2)) if depth < 2 else scalars
    return Obj([(name, draw(values)) for name in draw(st.lists(st.sampled_from(keys), max_size=4))])


@dataclass
class Written:
    """JSON text being written, and the first key written into an object that had it already (line, column)."""

    text: str = ""
    first_repeat: tuple[str, int, int] | None = None

    def write(self, node: Any) -> None:
        if isinstance(node, Obj):
            own: set[str] = set()
            self.text += "{"
            for index, (key, value) in enumerate(node.pairs):
                self.text += ",\n  " if index else "\n  "
                if key in own and self.first_repeat is None:
                    line_start = self.text.rfind("\n") + 1
                    self.first_repeat = (key, self.text.count("\n") + 1, len(self.text) - line_start + 1)
                own.add(key)
                self.text += json.dumps(key) + ": "
                self.write(value)
            self.text += "\n}"
        elif isinstance(node, list):
            self.text += "["
            for index, item in enumerate(node):
                self.text += ", " if index else ""
                self.write(item)
            self.text += "]"
        else:
            self.text += json.dumps(node)


# --- the tests -------------------------------------------------------------------------------------------------


def load_raises_only(load: Callable[[Path], object], path: Path, error: type[GgrouteError]) -> GgrouteError | None:
    """Run `load`; its error, or None when it loaded. Any exception but `error` fails the test (with its traceback)."""
    try:
        load(path)
    except error as exc:
        assert str(path) in str(exc), f"the error does not name the file: {exc}"
        return exc
    return None


def write_text(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


@fuzz_settings(max_examples=300)
@given(text=json_texts(CONFIG_EXAMPLE, CONFIG_KEYS, CONFIG_VALUES))
def test_config_loader_raises_only_config_errors(folder: Path, text: str) -> None:
    tried("config")
    load_raises_only(load_config, write_text(folder / "config.json", text), ConfigError)


@fuzz_settings(max_examples=100)
@given(data=raw_bytes)
def test_config_loader_on_bytes(folder: Path, data: bytes) -> None:
    tried("config bytes")
    path = folder / "config.json"
    path.write_bytes(data)
    error = load_raises_only(load_config, path, ConfigError)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert error is not None and "is not UTF-8: line " in str(error)


@fuzz_settings(max_examples=200)
@given(tree=objects(["models", "coder", "max_tokens", "router", "routes", "stop"]))
def test_a_repeated_key_is_named_with_its_line(folder: Path, tree: Obj) -> None:
    tried("config repeated keys")
    written = Written()
    written.write(tree)
    error = load_raises_only(load_config, write_text(folder / "config.json", written.text), ConfigError)
    if written.first_repeat is None:
        assert error is None or "duplicate key" not in str(error)
    else:
        key, line, column = written.first_repeat
        assert error is not None and f"duplicate key {key!r} at line {line}, column {column}:" in str(error)


@fuzz_settings(max_examples=250)
@given(text=json_texts(SUITE_EXAMPLE, SUITE_KEYS, SUITE_VALUES))
def test_suite_loader_raises_only_suite_errors(folder: Path, text: str) -> None:
    tried("suite")
    load_raises_only(load_suite, write_text(folder / "fuzz.suite.json", text), SuiteFileError)


@fuzz_settings(max_examples=100)
@given(data=raw_bytes)
def test_suite_loader_on_bytes(folder: Path, data: bytes) -> None:
    tried("suite bytes")
    path = folder / "fuzz.suite.json"
    path.write_bytes(data)
    load_raises_only(load_suite, path, SuiteFileError)


task_texts = texts.filter(lambda text: bool(text.strip()))
rows = st.fixed_dictionaries({"task": task_texts, "route": st.sampled_from(ROUTES)},
                             optional={"source": st.none() | texts})


@fuzz_settings(max_examples=250)
@given(valid=st.lists(rows, min_size=1, max_size=6), ascii_only=st.booleans(), crlf=st.booleans(),
       junk=st.lists(st.tuples(st.integers(0, 6), st.one_of(json_values(["task", "route", "source"]).map(json.dumps),
                                                           texts, pathological)), max_size=2))
def test_routing_reader_reads_valid_rows_back_and_raises_only_usage_errors(
    folder: Path, valid: list[dict[str, Any]], ascii_only: bool, crlf: bool, junk: list[tuple[int, str]]
) -> None:
    tried("routing jsonl")
    lines = [json.dumps(row, ensure_ascii=ascii_only) for row in valid]
    for at, line in junk:
        lines.insert(at, line)
    path = write_text(folder / "labels.jsonl", ("\r\n" if crlf else "\n").join(lines))
    try:
        loaded = read_labeled(path, ROUTES)
    except UsageError as exc:
        assert junk, f"valid rows refused: {exc}"
        assert str(path) in str(exc)
        return
    if not junk:
        assert [(r.task, r.route, r.source) for r in loaded] == [
            (row["task"], row["route"], row.get("source")) for row in valid
        ]


@fuzz_settings(max_examples=100)
@given(data=st.binary(max_size=64), valid=st.lists(rows, min_size=1, max_size=3), at=st.integers(0, 400))
def test_routing_reader_on_bytes(folder: Path, data: bytes, valid: list[dict[str, Any]], at: int) -> None:
    tried("routing bytes")
    text = "\n".join(json.dumps(row, ensure_ascii=False) for row in valid).encode()
    path = folder / "labels.jsonl"
    path.write_bytes(text[:at] + data + text[at:])
    try:
        read_labeled(path, ROUTES)
    except UsageError as exc:
        assert str(path) in str(exc)
