"""What a command can tell is wrong before it works is refused at once (exit 2), not after minutes or by a later
command: an output file that cannot be written, an unknown log level, a route head that routing would refuse."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from ggroute.cli.app import app
from tests.conftest import SHIPPED, label_logit_router, small_config


def test_bench_refuses_a_csv_or_plot_path_it_cannot_write_before_measuring(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config(small_config())
    for flag, path in (("--csv", tmp_path / "missing" / "out.csv"), ("--plot", tmp_path)):
        result = CliRunner().invoke(app, ["bench", "coder", "-c", str(config), flag, str(path)])
        assert result.exit_code == 2, result.output
        assert flag in result.output and ("does not exist" in result.output or "is a directory" in result.output)
        assert "load s" not in result.output and "Traceback" not in result.output  # nothing was measured


def test_serve_refuses_an_unknown_log_level() -> None:
    result = CliRunner().invoke(app, ["serve", "--log-level", "bogus", "--port", "0"])
    assert result.exit_code == 2
    assert "--log-level bogus" in result.output and "warning" in result.output


def test_config_check_refuses_a_route_head_that_routing_would_refuse(write_config: Callable[..., Path]) -> None:
    missing = copy.deepcopy(SHIPPED)
    missing["router"]["head"] = "router-head-q4_0.json"  # config.json's value, copied to another folder
    renamed = copy.deepcopy(SHIPPED)
    renamed["router"]["routes"] = {"coder": renamed["router"]["routes"]["coder"],
                                   "algo": renamed["router"]["routes"]["algorithm"]}
    renamed["router"]["default_route"] = "coder"
    for data, says in ((missing, "route head file not found"), (renamed, "the head was trained for routes")):
        result = CliRunner().invoke(app, ["config", "check", "-c", str(write_config(data))])
        assert result.exit_code == 2, result.output
        assert says in result.output and "valid" not in result.output
    result = CliRunner().invoke(app, ["config", "check", "-c", str(write_config(copy.deepcopy(SHIPPED)))])
    assert result.exit_code == 0 and "valid" in result.output


def test_config_check_refuses_route_names_the_router_cannot_tell_apart(write_config: Callable[..., Path]) -> None:
    # " coder" and " cuda" begin with the same token for SmolLM2: label-logit routing cannot score them apart.
    clash = copy.deepcopy(SHIPPED)
    label_logit_router(clash)
    clash["router"]["routes"]["cuda"] = {"model": "coder", "description": "GPU kernels"}
    config = write_config(clash)
    result = CliRunner().invoke(app, ["config", "check", "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert (f"{config}: router.routes: routes 'coder' and 'cuda' begin with the same token for the router model"
            in " ".join(result.output.split()))
    assert "valid" not in result.output
