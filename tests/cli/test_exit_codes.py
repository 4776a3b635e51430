"""`ggroute generate` exit codes and output over the scripted fake backend (monkeypatched over
ggroute.models.backend.load_backend): 0 done, 1 runtime error, 2 usage or config, 3 timeout. The same command on
the real models: test_cli.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ggroute.cli.app import app
from tests.fakes import Script, ScriptedLoader

TASK = "Say hello."
JSON_FIELDS = {"model", "text", "finish_reason", "usage", "timings", "limits", "evicted", "repetition"}


@pytest.fixture
def config_path(write_config, test_config: dict[str, object]) -> Path:
    return write_config(test_config)


@pytest.fixture
def generate(config_path: Path, scripted_backends: Callable[..., ScriptedLoader]) -> Callable[..., Result]:
    """generate(*args, script=Script(...)): `ggroute generate --model coder ARGS -c CONFIG` on a scripted coder."""

    def run(*args: str, script: Script | None = None, input: str | None = None) -> Result:
        scripted_backends(coder=script or Script())
        return CliRunner().invoke(app, ["generate", "--model", "coder", *args, "-c", str(config_path)], input=input)

    return run


def assert_exit(result: Result, code: int) -> None:
    """The command ended through its own exit path (no escaped exception, no traceback) with `code`."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_text_on_stdout_footer_on_stderr(generate) -> None:
    result = generate(TASK, script=Script(pieces=("Hello", ",", " world", ".")))
    assert_exit(result, 0)
    assert result.stdout == "Hello, world.\n"
    footer = result.stderr.strip()
    assert footer.startswith("finish=stop | prompt=2 tok (0 cached) | completion=4 tok | prefill ")
    assert "load 0.25 s" in footer and "wall " in footer


def test_length_is_a_normal_end(generate) -> None:
    result = generate(TASK, "--max-tokens", "3", script=Script(pieces=("ab",), repeat=True))
    assert_exit(result, 0)
    assert result.stdout == "ababab\n"
    assert "finish=length" in result.stderr and "completion=3 tok" in result.stderr


def test_task_from_stdin(generate, scripted_backends) -> None:
    result = generate("-", input="Say hello from stdin.\n")
    assert_exit(result, 0)
    assert result.stdout == "Hello, world.\n"


def test_timeout_exits_3_and_keeps_the_partial_output(generate) -> None:
    result = generate(TASK, "--timeout", "0.3", "--max-tokens", "10000",
                      script=Script(pieces=("a",), repeat=True, token_delay_s=0.02))
    assert_exit(result, 3)
    assert result.stdout.endswith("\n") and set(result.stdout.strip()) == {"a"}
    assert "finish=timeout" in result.stderr
    assert "timed out after 0.3 s: partial output kept" in result.stderr


def test_timeout_during_prompt_processing_exits_3(generate) -> None:
    result = generate(TASK, "--timeout", "0.05", script=Script(prefill_s=float("inf")))
    assert_exit(result, 3)
    assert result.stdout == "\n"
    assert "finish=timeout" in result.stderr and "completion=0 tok" in result.stderr


def test_timeout_in_json_mode_exits_3_with_the_payload(generate) -> None:
    result = generate(TASK, "--json", "--timeout", "0.05", script=Script(prefill_s=float("inf")))
    assert_exit(result, 3)
    payload = json.loads(result.stdout)
    assert payload["finish_reason"] == "timeout" and payload["text"] == ""


def test_generation_error_exits_1_with_one_error_line(generate) -> None:
    result = generate(TASK, script=Script(pieces=("partial", " more"), fail_at_token=2))
    assert_exit(result, 1)
    assert one_error_line(result) == "error: scripted failure at token 2 on model 'coder'"
    assert "finish=" not in result.stderr  # no footer for a failed request


def test_generation_error_before_any_token_exits_1(generate) -> None:
    result = generate(TASK, "--json", script=Script(fail_at_token=0))
    assert_exit(result, 1)
    assert result.stdout == ""  # no half-written JSON
    assert one_error_line(result).startswith("error: scripted failure at token 0")


def test_prompt_too_long_exits_1(generate) -> None:
    result = generate(TASK, script=Script(prompt_tokens=5000))
    assert_exit(result, 1)
    line = one_error_line(result)
    assert "prompt is 5000 tokens but model 'coder' has context_size 1024" in line


def test_unknown_model_exits_2_before_anything_loads(config_path: Path, scripted_backends) -> None:
    loader = scripted_backends()
    result = CliRunner().invoke(app, ["generate", "--model", "gpt", TASK, "-c", str(config_path)])
    assert_exit(result, 2)
    assert one_error_line(result) == "error: unknown model 'gpt': the config defines coder, algorithm"
    assert loader.loads() == []


@pytest.mark.parametrize(("task", "stdin"), [("", None), ("   \n", None), ("-", "  \n")])
def test_empty_task_exits_2(generate, scripted_backends, task: str, stdin: str | None) -> None:
    loader = scripted_backends()
    result = generate(task, input=stdin)
    assert_exit(result, 2)
    assert "the task is empty" in one_error_line(result)
    assert loader.loads() == []


def test_json_output_has_the_documented_fields(generate) -> None:
    result = generate(TASK, "--json", script=Script(pieces=("Hi", "!"), cached_tokens=1))
    assert_exit(result, 0)
    payload = json.loads(result.stdout)  # exactly one JSON object on stdout, nothing streamed around it
    assert set(payload) == JSON_FIELDS
    assert payload["model"] == "coder" and payload["text"] == "Hi!" and payload["finish_reason"] == "stop"
    assert payload["usage"] == {"prompt_tokens": 2, "cached_prompt_tokens": 1, "completion_tokens": 2}
    assert set(payload["timings"]) == {"load_s", "prefill_s", "prefill_tokens_per_s", "decode_s",
                                       "decode_tokens_per_s", "time_to_first_token_s", "wall_s"}
    assert payload["timings"]["load_s"] == 0.25
    assert payload["limits"] == {"max_tokens": 32, "timeout_s": 300.0, "context_size": 1024, "stop": []}
    assert payload["evicted"] == []
    assert result.stderr == ""  # no footer in JSON mode


def test_json_limits_show_the_overrides(generate) -> None:
    result = generate(TASK, "--json", "--max-tokens", "5", "--timeout", "12.5")
    assert_exit(result, 0)
    limits = json.loads(result.stdout)["limits"]
    assert (limits["max_tokens"], limits["timeout_s"]) == (5, 12.5)


def test_every_request_is_logged(generate, config_path: Path) -> None:
    assert_exit(generate(TASK), 0)
    assert_exit(generate(TASK, "--timeout", "0.05", script=Script(prefill_s=float("inf"))), 3)
    lines = (config_path.parent / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["finish_reason"] for line in lines] == ["stop", "timeout"]


@pytest.mark.parametrize(("args", "hint"), [(["--temperature", "3"], "--temperature"), (["--seed", "-1"], "--seed")])
def test_out_of_range_sampling_options_exit_2(generate, args: list[str], hint: str) -> None:
    result = generate(TASK, *args)
    assert result.exit_code == 2
    assert hint in result.output


def test_a_loop_ends_with_repetition_exit_0_and_the_footer_says_what_it_saved(generate) -> None:
    result = generate(TASK, "--max-tokens", "200", script=Script(pieces=("import random\n",), repeat=True))
    assert_exit(result, 0)
    assert result.stderr.startswith("finish=repetition")
    assert "'import random' written 4 times in a row; 196 tokens saved" in " ".join(result.stderr.split())


def test_code_with_no_code_in_the_answer_says_so(generate) -> None:
    result = generate(TASK, "--code", "--max-tokens", "3", script=Script(pieces=("Sure:\n", "```python\n", "\n")))
    assert_exit(result, 0)
    assert result.stdout == "\n"
    assert "warning: the answer has no code (finish=length)" in " ".join(result.stderr.split())


def test_code_prints_only_the_code_and_json_says_whether_it_parses(generate) -> None:
    answer = ("Here:\n", "```python\n", "def add(a, b):\n", "    return a + b\n", "```\n", "Done.")
    result = generate(TASK, "--code", script=Script(pieces=answer))
    assert_exit(result, 0)
    assert result.stdout == "def add(a, b):\n    return a + b\n"
    as_json = generate(TASK, "--code", "--json", script=Script(pieces=answer))
    payload = json.loads(as_json.stdout)
    assert (payload["code"], payload["code_language"], payload["code_parses"]) == (
        "def add(a, b):\n    return a + b", "python", True)
    assert payload["text"].startswith("Here:")
