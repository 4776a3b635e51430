"""`ggroute serve` refuses what cannot work before it serves anything: a port in use, a bad config."""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from ggroute.cli.app import app
from tests.conftest import SHIPPED, small_config


def test_a_port_in_use_is_a_usage_error(write_config: Callable[..., Path]) -> None:
    config = write_config(small_config())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--config", str(config), "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use;" in result.output and "--port" in result.output
    assert "[Errno" not in result.output  # uvicorn's own line for the same failure is not printed as well


def test_an_unusable_log_file_is_refused_before_listening(write_config: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    config = write_config(small_config(log_file=str(tmp_path / "file" / "requests.jsonl")))
    result = CliRunner().invoke(app, ["serve", "--config", str(config), "--port", "0"])
    assert result.exit_code == 2 and "cannot be written" in result.output


def test_a_missing_route_head_is_refused_before_listening(write_config: Callable[..., Path]) -> None:
    data = copy.deepcopy(SHIPPED)
    data["router"]["head"] = "router-head-q4_0.json"  # as config.json has it, copied to another folder
    config = write_config(data)
    result = CliRunner().invoke(app, ["serve", "--config", str(config), "--port", "0"])
    assert result.exit_code == 2
    assert "route head file not found" in result.output and "pkg:ggroute.models/router-head-q4_0.json" in result.output


def test_serve_help_is_listed() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "serve" in result.output
