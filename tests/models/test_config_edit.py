"""In-place config.json edits keep everything they do not change byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ggroute.core.errors import ConfigError
from ggroute.models.config_edit import apply_model_fields, edit_model_fields

PRETTY = """{
    "models": {
        "coder": {
            "context_size": 4096,
            "stop": ["\\n\\n\\n"],
            "n_threads": 4
        },
        "algorithm": {"max_tokens": 1024}
    },
    "memory_budget_mb": 8000
}
"""


def test_replaces_existing_values_in_place() -> None:
    edited = edit_model_fields(PRETTY, {"coder": {"n_threads": 2}})
    assert edited == PRETTY.replace('"n_threads": 4', '"n_threads": 2')


def test_appends_new_keys_in_the_objects_indentation() -> None:
    edited = edit_model_fields(PRETTY, {"coder": {"n_batch": 256}})
    assert '            "n_threads": 4,\n            "n_batch": 256\n        },' in edited
    assert json.loads(edited)["models"]["coder"]["n_batch"] == 256


def test_one_line_objects_stay_on_one_line() -> None:
    edited = edit_model_fields(PRETTY, {"algorithm": {"n_threads": 1}})
    assert '"algorithm": {"max_tokens": 1024, "n_threads": 1}' in edited


def test_key_order_and_other_values_unchanged() -> None:
    edited = json.loads(edit_model_fields(PRETTY, {"coder": {"n_threads": 1, "n_batch": 64}}))
    original = json.loads(PRETTY)
    assert list(edited["models"]["coder"]) == [*original["models"]["coder"], "n_batch"]
    assert edited["models"]["algorithm"] == original["models"]["algorithm"]
    assert edited["memory_budget_mb"] == 8000


def test_unknown_model_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no model 'nope'"):
        edit_model_fields(PRETTY, {"nope": {"n_threads": 1}})


def test_apply_keeps_a_backup_and_refuses_an_invalid_result(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(PRETTY)
    backup = apply_model_fields(path, {"coder": {"n_threads": 2}})
    assert backup.read_text() == PRETTY
    assert backup.parent == tmp_path and backup.name.startswith("config.json.") and backup.suffix == ".bak"
    assert json.loads(path.read_text())["models"]["coder"]["n_threads"] == 2
    with pytest.raises(ConfigError, match="n_threads"):
        apply_model_fields(path, {"coder": {"n_threads": 0}})
    assert json.loads(path.read_text())["models"]["coder"]["n_threads"] == 2  # untouched
