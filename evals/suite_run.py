"""Run suite cases on a Pipeline and check them; the totals of a run. Nothing here prints or exits.

A case fails when any of its checks fails, when routing or generation raised a GgrouteError (the message is the
reason), or when generation timed out or was cancelled and `finish_reason` does not accept that.
"""

from __future__ import annotations

import math
import re
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ggroute.core.code import extract_code
from ggroute.core.errors import GgrouteError
from ggroute.evals.sandbox import Isolation, SandboxLimits, run_python
from ggroute.evals.suite import Case, Checks, Suite
from ggroute.models.generate import RequestOptions
from ggroute.models.metrics import GenerationResult
from ggroute.router.pipeline import Pipeline
from ggroute.router.routing import RouteOutcome

_STDERR_TAIL = 2000
_SCRIPT_LINE_RE = re.compile(r'File "[^"]*main\.py", line (\d+)')


@dataclass
class CheckResult:
    name: str  # contains, not_contains, regex, python, max_seconds, finish_reason, expect_route, error
    passed: bool
    detail: str  # what was checked, and why it failed
    stderr: str = ""  # python checks: the tail of the script's stderr


@dataclass
class CaseResult:
    suite: str
    file: str
    id: str
    task: str
    expect_route: str | None
    route: str | None = None
    model: str | None = None
    route_reason: str | None = None
    confidence: float | None = None
    output: str | None = None
    finish_reason: str | None = None
    completion_tokens: int | None = None
    decode_tokens_per_s: float | None = None
    seconds: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "passed": self.passed}


def run_case(pipeline: Pipeline, path: Path, suite: Suite, case: Case,
             cancel: threading.Event | None = None, *, isolation: Isolation = Isolation.BWRAP) -> CaseResult:
    """Route (and generate, unless the suite is routing-only), then evaluate every check of the case.

    `isolation` is how python checks run the generated code (bwrap unless the user opted out).
    """
    result = CaseResult(suite.name, str(path), case.id, case.task, case.expect_route)
    started = time.perf_counter()
    generated: GenerationResult | None = None
    try:
        if suite.generate:
            generated = _generate(pipeline, suite, case, result, cancel, started)
        else:
            _record_route(result, pipeline.route(case.task))
    except GgrouteError as exc:
        result.checks.append(CheckResult("error", False, str(exc)))
    result.seconds = round(time.perf_counter() - started, 3)
    if case.expect_route is not None:
        ok = result.route == case.expect_route
        result.checks.append(CheckResult("expect_route", ok, f"expected route '{case.expect_route}', "
                                         f"got '{result.route}' ({result.route_reason})"))
    if generated is not None:
        result.checks.extend(check_output(generated, case.checks, result.seconds, isolation, cancel))
    return result


def _record_route(result: CaseResult, outcome: RouteOutcome) -> None:
    result.route, result.model = outcome.route, outcome.model
    result.route_reason, result.confidence = outcome.reason, outcome.confidence


def _generate(pipeline: Pipeline, suite: Suite, case: Case, result: CaseResult,
              cancel: threading.Event | None, started: float) -> GenerationResult:
    target = suite.target(case)
    options = RequestOptions(max_tokens=target.max_tokens, timeout_s=target.timeout_s)
    if target.model is not None:
        result.model, result.route_reason = target.model, "model given by the suite"
        with pipeline.generate(target.model, case.task, options, cancel=cancel, started=started,
                               log_extra={"suite": suite.name, "case": case.id}) as generation:
            generated = generation.run()
    else:
        with pipeline.run(case.task, options, forced_route=target.route, cancel=cancel) as (outcome, generation):
            _record_route(result, outcome)
            if target.route is not None:
                result.route_reason = "route given by the suite"
            generated = generation.run()
    result.output = generated.text
    result.finish_reason = generated.finish_reason
    result.completion_tokens = generated.usage.completion_tokens
    result.decode_tokens_per_s = generated.timings.decode_tokens_per_s
    return generated


def check_output(generated: GenerationResult, checks: Checks, seconds: float,
                 isolation: Isolation = Isolation.BWRAP, cancel: threading.Event | None = None) -> list[CheckResult]:
    text = generated.text
    results: list[CheckResult] = []
    finish = generated.finish_reason
    if checks.finish_reason:
        results.append(CheckResult("finish_reason", finish in checks.finish_reason,
                                   f"finish_reason '{finish}', expected {' or '.join(checks.finish_reason)}"))
    elif finish in ("timeout", "cancelled"):
        what = f"timed out after {generated.limits.timeout_s} s" if finish == "timeout" else "was cancelled"
        results.append(CheckResult("finish_reason", False, f"generation {what} (finish_reason '{finish}')"))
    for needle in checks.contains:
        results.append(CheckResult("contains", needle in text, f"output must contain {needle!r}"))
    for needle in checks.not_contains:
        results.append(CheckResult("not_contains", needle not in text, f"output must not contain {needle!r}"))
    results.extend(regex_check(pattern, text) for pattern in checks.regex)
    if checks.python is not None:
        results.append(python_check(text, checks.python, checks.python_timeout_s, isolation, cancel))
    if checks.max_seconds is not None:
        results.append(CheckResult("max_seconds", seconds <= checks.max_seconds,
                                   f"took {seconds:.2f} s, limit {checks.max_seconds} s"))
    return results


def regex_check(pattern: str, text: str) -> CheckResult:
    shown = f"'{pattern}'"  # as the regex reads, not repr's escaping: \b56\b, not \\b56\\b
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return CheckResult("regex", False, f"regex {shown} does not compile: {exc}")
    return CheckResult("regex", compiled.search(text) is not None, f"output must match regex {shown}")


def python_check(text: str, test: str, timeout_s: float, isolation: Isolation = Isolation.BWRAP,
                 cancel: threading.Event | None = None) -> CheckResult:
    """Run the code extracted from `text`, then `test`, as one sandboxed script; passes when it exits 0."""
    try:
        compile(test, "<python check>", "exec")
    except SyntaxError as exc:
        return CheckResult("python", False, f"the check's test code does not compile: {exc.msg} (line {exc.lineno})")
    code = extract_code(text)
    script = f"{code}\n\n# --- suite check ---\n{test}\n"
    limits = SandboxLimits(timeout_s=timeout_s, cpu_s=max(1, math.ceil(timeout_s)))
    run = run_python(script, limits, isolation=isolation, cancel=cancel)
    if run.ok:
        return CheckResult("python", True, "test code passed")
    detail = f"{run.reason}{_where(run.stderr, code, test)}"
    return CheckResult("python", False, detail, run.stderr[-_STDERR_TAIL:])


def _where(stderr: str, code: str, test: str) -> str:
    """' (in the test, line 2: assert add(2, 3) == 5)' from the script's last traceback line number."""
    found = _SCRIPT_LINE_RE.findall(stderr)
    if not found:
        return " (the generated code does not compile)" if "SyntaxError" in stderr else ""
    line = int(found[-1])
    code_lines = code.count("\n") + 1
    test_start = code_lines + 3  # the code, a blank line, the marker comment
    if line >= test_start:
        test_lines = test.splitlines()
        index = line - test_start
        source = test_lines[index].strip() if index < len(test_lines) else ""
        return f" (in the test, line {index + 1}: {source})"
    code_line = code.splitlines()[line - 1].strip() if line <= code_lines and code else ""
    return f" (in the generated code, line {line}: {code_line})"


def summarize(results: list[CaseResult]) -> dict[str, object]:
    routed = [r for r in results if r.expect_route is not None]
    correct = sum(r.route == r.expect_route for r in routed)
    rates = [r.decode_tokens_per_s for r in results if r.decode_tokens_per_s is not None]
    passed = sum(r.passed for r in results)
    return {
        "cases": len(results),
        "passed": passed,
        "failed": len(results) - passed,
        "route_checked": len(routed),
        "route_correct": correct,
        "route_accuracy": round(correct / len(routed), 4) if routed else None,
        "decode_tokens_per_s_median": round(statistics.median(rates), 2) if rates else None,
        "seconds": round(sum(r.seconds for r in results), 2),
    }


def build_report(runs: list[tuple[Path, Suite, list[CaseResult]]], **header: object) -> dict[str, object]:
    """The JSON report: per-suite and overall totals, and every case with its checks."""
    everything = [result for _, _, results in runs for result in results]
    return {
        **header,
        "suites": [{"file": str(path), "name": suite.name, "phase": suite.phase, "generate": suite.generate,
                    **summarize(results)} for path, suite, results in runs],
        "cases": [result.as_dict() for result in everything],
        "totals": summarize(everything),
    }
