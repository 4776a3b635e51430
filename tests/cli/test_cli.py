"""The `ggroute` command line: exit codes, JSON output, the request log, and Ctrl+C on the real console script.

typer's CliRunner here (typer 0.29, its own vendored click) keeps stdout and stderr apart (`result.stdout`,
`result.stderr`; `result.output` mixes both) and has no `mix_stderr` argument.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ggroute.cli.app import app
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import SMOLLM2_PATH, load_config
from ggroute.models.memory import kv_table
from tests.conftest import small_config

COLORS = "Name three colors."
COLORS_ANSWER = "1. Red\n2. Blue\n3. Green"


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def assert_exit(result: Result, code: int) -> None:
    """The command ended through its own exit path (no escaped exception, no traceback) with `code`."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output


@pytest.fixture
def config_path(write_config) -> Path:
    return write_config(small_config())


@pytest.mark.slow
def test_generate_json(config_path: Path, tmp_path: Path) -> None:
    result = invoke("generate", "-m", "coder", COLORS, "-c", str(config_path), "--json")
    assert_exit(result, 0)
    payload = json.loads(result.stdout)  # stdout holds exactly one JSON object, nothing streamed around it
    assert payload["model"] == "coder"
    assert payload["text"] == COLORS_ANSWER
    assert payload["finish_reason"] == "stop"
    assert payload["usage"]["prompt_tokens"] == 34
    assert payload["usage"]["completion_tokens"] == 11
    timings = payload["timings"]
    assert timings["prefill_tokens_per_s"] > 0
    assert timings["decode_tokens_per_s"] > 0
    assert timings["load_s"] > 0  # this request loaded the model
    assert payload["limits"]["max_tokens"] == 32
    assert "prompt_preview" not in payload

    # The request log: exactly one JSON line for this request, with the same figures.
    log = tmp_path / "requests.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    for key in ("model", "finish_reason", "usage", "timings", "limits", "evicted"):
        assert record[key] == payload[key], key
    assert record["text_chars"] == len(COLORS_ANSWER)
    assert "text" not in record
    assert record["ts"]

    # A second request appends a second line.
    result = invoke("generate", "-m", "coder", "Say hi.", "-c", str(config_path), "--json", "--max-tokens", "3")
    assert_exit(result, 0)
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    second = json.loads(lines[1])
    assert second["finish_reason"] == "length"
    assert second["usage"]["completion_tokens"] == 3
    assert second["limits"]["max_tokens"] == 3


@pytest.mark.slow
def test_generate_reads_task_from_stdin_and_streams(config_path: Path) -> None:
    result = invoke("generate", "-m", "coder", "-", "-c", str(config_path), input=COLORS)
    assert_exit(result, 0)
    assert result.stdout == COLORS_ANSWER + "\n"
    assert "finish=stop" in result.stderr
    assert "completion=11 tok" in result.stderr


def test_verbose_shows_limits_and_timings_as_key_value_pairs(config_path: Path) -> None:
    result = invoke("generate", "-m", "coder", COLORS, "-c", str(config_path), "-v")
    assert_exit(result, 0)
    stderr = " ".join(result.stderr.split())
    assert "limits: max_tokens=" in stderr
    assert re.search(r"timings: load_s=[0-9.]+ prefill_s=[0-9.]+ prefill_tokens_per_s=", stderr), stderr
    assert "{" not in stderr  # not a Python dict


@pytest.mark.slow
def test_default_log_goes_to_xdg_state_home(write_config, tmp_path: Path) -> None:
    data = small_config()
    del data["log_file"]
    result = invoke("generate", "-m", "coder", COLORS, "-c", str(write_config(data)), "--max-tokens", "2")
    assert_exit(result, 0)
    log = tmp_path / "state" / "ggroute" / "requests.jsonl"
    assert len(log.read_text(encoding="utf-8").splitlines()) == 1


@pytest.mark.parametrize(("task", "stdin"), [("", None), ("   ", None), ("-", " \n")])
def test_empty_task_is_usage_error(config_path: Path, task: str, stdin: str | None) -> None:
    result = invoke("generate", "-m", "coder", task, "-c", str(config_path), input=stdin)
    assert_exit(result, 2)
    assert "task is empty" in result.stderr
    assert result.stdout == ""


def test_unknown_model_lists_models(config_path: Path, tmp_path: Path) -> None:
    result = invoke("generate", "-m", "writer", COLORS, "-c", str(config_path))
    assert_exit(result, 2)
    assert "unknown model 'writer': the config defines coder, algorithm" in result.stderr
    assert not (tmp_path / "requests.jsonl").exists()


@pytest.mark.parametrize("command", [["generate", "-m", "coder", "hi"], ["models"], ["config", "check"]])
def test_bad_config_exits_2_without_traceback(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"models": {"coder": {"context_size": 1024,}}}', encoding="utf-8")
    result = invoke(*command, "-c", str(path))
    assert_exit(result, 2)
    assert "invalid JSON at line 1" in result.stderr

    path.write_text(json.dumps({"models": {"coder": {"contxt_size": 1024}}}), encoding="utf-8")
    result = invoke(*command, "-c", str(path))
    assert_exit(result, 2)
    assert "models.coder.contxt_size: unknown key" in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = invoke("models", "-c", str(tmp_path / "nope.json"))
    assert_exit(result, 2)
    assert "config file not found" in result.stderr


def test_model_over_budget_exits_1(write_config, tmp_path: Path) -> None:
    path = write_config(small_config(memory_budget_mb=16))
    result = invoke("generate", "-m", "coder", COLORS, "-c", str(path))
    assert_exit(result, 1)
    assert "budget is 16 MB" in result.stderr
    assert "context_size" in result.stderr
    assert not (tmp_path / "requests.jsonl").exists()


def test_models_json_lists_estimates(config_path: Path) -> None:
    result = invoke("models", "-c", str(config_path), "--json")
    assert_exit(result, 0)
    payload = json.loads(result.stdout)
    assert payload["config"] == str(config_path.resolve())
    rows = {row["name"]: row for row in payload["models"]}
    assert list(rows) == ["coder", "algorithm"]
    catalog = ModelCatalog(load_config(config_path))
    for name, row in rows.items():
        assert row["estimate_bytes"] == catalog.spec(name).plan.own_bytes
        assert row["context_size"] == 1024
        assert row["loaded"] is False
        assert "error" not in row
    assert (rows["coder"]["architecture"], rows["coder"]["quantization"]) == ("llama", "Q4_1")
    assert (rows["algorithm"]["architecture"], rows["algorithm"]["quantization"]) == ("gemma3", "Q4_K_M")
    assert rows["coder"]["chat_template"] is True and rows["algorithm"]["chat_template"] is False


def test_models_table(config_path: Path) -> None:
    result = invoke("models", "-c", str(config_path))
    assert_exit(result, 0)
    catalog = ModelCatalog(load_config(config_path))
    lines = result.stdout.splitlines()
    for name in ("coder", "algorithm"):  # first cell of a row; long file names wrap inside their cell
        row = next(line for line in lines if line.startswith(f"│ {name} "))
        assert f"{catalog.spec(name).plan.own_bytes / 1e6:,.0f} MB" in row
        assert "1024" in row


def test_config_check_json(config_path: Path) -> None:
    result = invoke("config", "check", "-c", str(config_path), "--json")
    assert_exit(result, 0)
    payload = json.loads(result.stdout)
    assert payload["fits"] is True
    assert payload["over_budget_alone"] == []
    assert payload["budget_bytes"] == 8000 * 1_000_000
    kv = payload["kv_cache_bytes_by_context"]
    assert list(kv) == ["coder", "algorithm"]
    catalog = ModelCatalog(load_config(config_path))
    for name, table in kv.items():
        assert list(table) == ["2048", "4096", "8192", "16384", "32768"]
        expected = kv_table(catalog.spec(name).info, catalog.spec(name).settings.swa_full)
        assert table == {str(k): v for k, v in expected.items()}
    assert kv["coder"]["2048"] == 30 * 2048 * 3 * (64 + 64) * 2
    assert payload["total_bytes"] == sum(m["added_bytes"] for m in payload["models"])


def test_config_check_reports_model_over_budget(write_config) -> None:
    result = invoke("config", "check", "-c", str(write_config(small_config(memory_budget_mb=200))), "--json")
    assert_exit(result, 1)
    payload = json.loads(result.stdout)
    assert payload["over_budget_alone"] == ["algorithm"]  # Gemma needs ~340 MB at context 1024; SmolLM2 fits
    assert "algorithm cannot load under memory_budget_mb (200)" in result.stderr


MAX_TOKENS_WARNING = (
    "models.coder.max_tokens (2048) is not below context_size (1024): the prompt takes part of the context, so "
    "generation ends at the context's end (finish_reason length) before max_tokens; lower max_tokens or raise "
    "context_size"
)


def _max_tokens_over_context(write_config) -> Path:
    data = small_config()
    data["models"]["coder"]["max_tokens"] = 2048  # type: ignore[index]  # context_size is 1024
    return write_config(data)


def test_config_check_warns_when_max_tokens_is_not_below_context_size(write_config) -> None:
    path = _max_tokens_over_context(write_config)
    result = invoke("config", "check", "-c", str(path), "--json")
    assert_exit(result, 0)  # a warning, not an error
    assert json.loads(result.stdout)["warnings"] == [MAX_TOKENS_WARNING]
    plain = write_config(small_config(), name="plain.json")
    assert json.loads(invoke("config", "check", "-c", str(plain), "--json").stdout)["warnings"] == []

    # The console script, where logging is set up: `config check` prints the warning once (it is not also
    # logged on load); any other command logs it on load.
    check = subprocess.run([_console_script(), "config", "check", "-c", str(path)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert " ".join(check.stderr.split()) == f"warning: {MAX_TOKENS_WARNING}"
    models = subprocess.run([_console_script(), "models", "-c", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert models.returncode == 0, models.stderr
    assert models.stderr == f"warning: {path}: {MAX_TOKENS_WARNING}\n"


def test_config_check_refuses_a_repeated_key(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "models": {"coder": {}},\n  "models": {"algorithm": {}}\n}\n', encoding="utf-8")
    result = invoke("config", "check", "-c", str(path))
    assert_exit(result, 2)
    assert f"{path}: duplicate key 'models' at line 3, column 3: the same object has it at line 2, column 3" \
        in " ".join(result.stderr.split())
    assert result.stdout == ""


def test_missing_model_file(write_config, tmp_path: Path) -> None:
    path = write_config({"models": {"coder": {"path": "weights/missing.gguf", "context_size": 1024}}})
    result = invoke("models", "-c", str(path), "--json")
    assert_exit(result, 1)
    row = json.loads(result.stdout)["models"][0]
    assert row["error"] == f"{path}: models.coder: model file not found: {tmp_path / 'weights' / 'missing.gguf'}"
    assert row["file"] is None
    table = invoke("models", "-c", str(path))
    assert_exit(table, 1)
    assert "not found" in table.stdout
    # The config file and the model that names the file, wherever the file is first needed.
    for args in (("config", "check"), ("generate", "-m", "coder", "hi")):
        result = invoke(*args, "-c", str(path))
        assert_exit(result, 1)
        assert f"{path}: models.coder: model file not found" in " ".join(result.stderr.split())


def test_non_gguf_model_file(write_config, tmp_path: Path) -> None:
    (tmp_path / "notes.gguf").write_text("these are not weights\n", encoding="utf-8")
    path = write_config({"models": {"coder": {"path": "notes.gguf", "context_size": 1024}}})
    result = invoke("generate", "-m", "coder", COLORS, "-c", str(path))
    assert_exit(result, 1)
    assert "not a GGUF file" in result.stderr
    assert str(tmp_path / "notes.gguf") in result.stderr


@pytest.mark.slow
def test_timeout_exits_3(config_path: Path) -> None:
    result = invoke("generate", "-m", "coder", COLORS, "-c", str(config_path), "--timeout", "0.01", "--json")
    assert_exit(result, 3)
    payload = json.loads(result.stdout)  # the (empty) partial result is still printed
    assert payload["finish_reason"] == "timeout"
    assert payload["limits"]["timeout_s"] == 0.01
    assert "timed out after 0.01 s" in result.stderr


def test_timeout_below_cli_minimum_is_usage_error(config_path: Path) -> None:
    # --timeout has min=0.01, so 0.001 is refused by the option parser before anything runs.
    result = invoke("generate", "-m", "coder", COLORS, "-c", str(config_path), "--timeout", "0.001")
    assert_exit(result, 2)
    assert "--timeout" in result.stderr


def test_error_text_with_square_brackets_is_printed_verbatim(write_config) -> None:
    # A common mistake: a stop string given as a string, not a list. The validation message quotes it, and
    # "[/INST]" is read as a closing markup tag: rich raises MarkupError instead of printing the error.
    path = write_config({"models": {"coder": {"path": SMOLLM2_PATH, "stop": "[/INST]"}}})
    result = invoke("models", "-c", str(path))
    assert_exit(result, 2)
    assert "models.coder.stop" in result.stderr
    assert "[/INST]" in result.stderr


def test_path_with_square_brackets_is_printed_verbatim(write_config, tmp_path: Path) -> None:
    folder = tmp_path / "v[bold]2"
    folder.mkdir()
    (folder / "m.gguf").write_text("not weights\n", encoding="utf-8")
    path = write_config({"models": {"coder": {"path": "v[bold]2/m.gguf", "context_size": 1024}}})
    result = invoke("generate", "-m", "coder", COLORS, "-c", str(path))
    assert_exit(result, 1)
    assert str(folder / "m.gguf") in result.stderr  # today: ".../v2/m.gguf", the "[bold]" swallowed


def _console_script() -> str:
    script = Path(sys.executable).parent / "ggroute"
    return str(script) if script.is_file() else (shutil.which("ggroute") or "ggroute")


@pytest.mark.slow
def test_ctrl_c_stops_generation(write_config, tmp_path: Path) -> None:
    data = small_config()
    data["models"]["coder"].update(context_size=4096, max_tokens=4000, timeout_s=600)  # type: ignore[index]
    path = write_config(data)
    task = "Write a very long and detailed story about a dragon who learns to code. Make it at least 3000 words."
    proc = subprocess.Popen(
        [_console_script(), "generate", "-m", "coder", task, "--max-tokens", "2000", "-c", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 60
        first = b""
        while not first and time.monotonic() < deadline:  # wait until it is streaming the answer
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                first = os.read(proc.stdout.fileno(), 4096)  # type: ignore[union-attr]
                if not first:
                    break  # EOF: the process ended before printing anything
        assert first, f"no output before the deadline (rc={proc.poll()})"
        assert proc.poll() is None, "generation ended before Ctrl+C could be sent"
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            pytest.fail("ggroute did not exit within 2 s of Ctrl+C")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = stderr.decode("utf-8", errors="replace")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
    assert "finish=cancelled" in err
    # The partial answer is kept, and the request is logged as cancelled.
    assert len(first + stdout) > 0
    record = json.loads((tmp_path / "requests.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert record["finish_reason"] == "cancelled"
    assert 0 < record["usage"]["completion_tokens"] < 2000


@pytest.mark.parametrize("command", [("generate",), ("run",), ("bench",), ("eval", "routing"), ("config", "check")])
def test_help_shows_flags_without_a_value(command: tuple[str, ...]) -> None:
    # typer 0.29 writes `<bool>` beside every flag, as if `--json true` were how to write it (it is an error).
    result = invoke(*command, "--help")
    assert_exit(result, 0)
    flags = [line for line in result.stdout.splitlines() if "--json" in line or "--help" in line]
    assert len(flags) >= 2 and all("<bool>" not in line for line in flags), flags


@pytest.mark.parametrize("command", [(), ("eval",), ("router",)])
def test_group_help_shows_help_without_a_value(command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")
    assert_exit(result, 0)
    flags = [line for line in result.stdout.splitlines() if "--help" in line]
    assert flags and all("<bool>" not in line for line in flags), flags

