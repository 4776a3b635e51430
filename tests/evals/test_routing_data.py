"""Labeled routing files: every problem names the file and the line; folders give each task its style."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggroute.core.errors import UsageError
from ggroute.evals.routing_data import read_labeled, read_labeled_files
from ggroute.evals.routing_eval import confidence_quality, expected_calibration_error

ROUTES = ["coder", "algorithm"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"task": "x", "route": "coder"', "labels.jsonl:2: invalid JSON"),
        ('{"task": "x", "route": "math"}', "labels.jsonl:2: route 'math' is not one of coder, algorithm"),
        ('{"task": "   ", "route": "coder"}', "labels.jsonl:2: .*the task is empty"),
        ('{"task": "x", "route": "coder", "style": "a"}', "labels.jsonl:2: .*style: Extra inputs"),
        ('{"route": "coder"}', "labels.jsonl:2: .*task: Field required"),
        # Found by tests/fuzz: json.loads raised RecursionError and ValueError on these (a traceback in the CLI).
        ("[" * 50_000 + "]" * 50_000, "labels.jsonl:2: invalid JSON: nested too deeply"),
        ('{"task": "x", "route": "coder", "n": ' + "9" * 5000 + "}", "labels.jsonl:2: invalid JSON: a number with"),
        ('{"task": "x", "route": "coder", "task": "y"}',
         "labels.jsonl:2: duplicate key 'task' at column 33: the same object has it at column 2 already"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"task": "sort a list", "route": "coder"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        read_labeled(path, ROUTES)


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\u2029"])
def test_a_task_may_hold_characters_that_splitlines_splits_at(tmp_path: Path, char: str) -> None:
    # Found by tests/fuzz: the file was split with str.splitlines(), which also ends lines at these characters,
    # so a valid row written without ASCII escapes was cut in two and refused as invalid JSON.
    path = tmp_path / "labels.jsonl"
    path.write_text(f'{{"task": "sort{char}a list", "route": "coder"}}\r\n{{"task": "x", "route": "coder"}}\n',
                    encoding="utf-8")
    assert [row.task for row in read_labeled(path, ROUTES)] == [f"sort{char}a list", "x"]


def test_bytes_that_are_not_utf8_are_refused_naming_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_bytes(b'{"task": "sort", "route": "coder"}\n{"task": "caf\xe9", "route": "coder"}\n')
    with pytest.raises(UsageError) as info:
        read_labeled(path, ROUTES)
    assert str(info.value) == f"{path}: labeled file is not UTF-8: line 2, column 14 (byte 0xe9); save it as UTF-8"


def test_folders_give_each_task_its_file_name_as_source(tmp_path: Path) -> None:
    (tmp_path / "short.jsonl").write_text('{"task": "knapsack", "route": "algorithm"}\n', encoding="utf-8")
    (tmp_path / "web.jsonl").write_text(
        '{"task": "a navbar", "route": "coder"}\n{"task": "a trie", "route": "algorithm", "source": "dsa"}\n',
        encoding="utf-8",
    )
    rows = read_labeled_files([tmp_path], ROUTES)
    assert [(r.task, r.source) for r in rows] == [("knapsack", "short"), ("a navbar", "web"), ("a trie", "dsa")]


def test_an_empty_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no .jsonl files"):
        read_labeled_files([tmp_path], ROUTES)


def test_calibration_error_is_zero_when_confidence_matches_accuracy() -> None:
    # 10 decisions at 0.8 confidence, 8 right: perfectly calibrated.
    assert expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == 0.0
    # Always 0.95 sure, half right: off by 0.45.
    assert expected_calibration_error([0.95] * 10, [True, False] * 5) == pytest.approx(0.45)


def test_confident_mistakes_are_counted_against_all_decisions() -> None:
    quality = confidence_quality([0.95, 0.99, 0.6, 0.7], [False, True, False, True])
    assert quality == {"scored": 4, "expected_calibration_error": quality["expected_calibration_error"],
                       "wrong_above_0_9": 0.25}
