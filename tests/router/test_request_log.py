"""The request log's two failure modes: a log_file that cannot work is found before anything loads (ConfigError
from the pipeline), a write that fails later is a warning and a False, never an exception that would hide the
result. The same through the command line, as processes: tests/cli/test_hardening.py."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from ggroute.core.errors import ConfigError
from ggroute.models.config import SMOLLM2_PATH, load_config
from ggroute.router.pipeline import Pipeline
from ggroute.router.request_log import RequestLog
from tests.fakes import Script, scripted_loader


def test_a_usable_log_file_has_no_problem(tmp_path: Path) -> None:
    assert RequestLog(tmp_path / "requests.jsonl").problem() is None
    assert RequestLog(tmp_path / "new" / "deeper" / "requests.jsonl").problem() is None  # folders are created
    existing = tmp_path / "old.jsonl"
    existing.write_text("")
    assert RequestLog(existing).problem() is None
    assert not (tmp_path / "new").exists()  # looking creates nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.jsonl"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_takes_no_files_is_found_also_as_root() -> None:
    # os.access grants root write access to /proc; creating a file there fails all the same.
    assert RequestLog(Path("/proc/ggroute-nope/requests.jsonl")).problem() == (
        "cannot create files in /proc: No such file or directory")


def test_unusable_log_files_say_why(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert RequestLog(plain / "requests.jsonl").problem() == f"{plain} is not a directory"
    assert RequestLog(plain / "a" / "b.jsonl").problem() == f"{plain} is not a directory"
    assert RequestLog(tmp_path).problem() == "it is a directory"


def test_a_failed_write_warns_once_per_reason_and_returns_false(caplog: pytest.LogCaptureFixture) -> None:
    log = RequestLog(Path("/dev/full"))  # every write fails: no space left on device
    with caplog.at_level(logging.WARNING, logger="ggroute.request_log"):
        assert log.write({"model": "coder"}) is False
        assert log.write({"model": "coder"}) is False
    assert log.lost == 2
    assert [r.getMessage() for r in caplog.records] == [
        "cannot write the request log /dev/full (No space left on device); the result is not affected, its log "
        "line is lost"]


def test_a_lone_surrogate_in_a_record_is_written_as_an_escape(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "requests.jsonl")
    assert log.write({"case": "bad \udcff"}) is True
    assert json.loads((tmp_path / "requests.jsonl").read_text(encoding="utf-8"))["case"] == "bad \udcff"


def _config(write_config, log_file: str) -> Path:
    model = {"path": SMOLLM2_PATH, "context_size": 1024, "max_tokens": 16}
    return write_config({"models": {"coder": model}, "log_file": log_file})


def test_the_pipeline_refuses_an_unusable_log_file_before_loading(write_config, tmp_path: Path,
                                                                  cached_headers: None) -> None:
    config = _config(write_config, str(tmp_path))  # a directory
    loader = scripted_loader()
    expected = (f"log_file {tmp_path} cannot be written: it is a directory; set log_file in {config} to a file in "
                "a writable folder")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        Pipeline(load_config(config), loader)
    # a pipeline that only routes may skip the check; its first generation makes it, before loading
    with Pipeline(load_config(config), loader, check_log=False) as pipeline, \
            pytest.raises(ConfigError, match="it is a directory"), pipeline.generate("coder", "Say hello."):
        pass
    assert loader.loads() == []


def test_a_log_that_fails_after_the_check_keeps_the_result(write_config, tmp_path: Path,
                                                           cached_headers: None) -> None:
    logs = tmp_path / "logs"
    config = _config(write_config, str(logs / "requests.jsonl"))
    with Pipeline(load_config(config), scripted_loader(coder=Script(pieces=("Hi", "!")))) as pipeline:
        logs.write_text("now a file")  # after the check: the folder cannot be created any more
        with pipeline.generate("coder", "Say hello.") as generation:
            result = generation.run()
    assert result.text == "Hi!" and pipeline.log.lost == 1
