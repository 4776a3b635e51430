"""`ggroute route`, `ggroute run` and `ggroute eval routing`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.markup import escape
from rich.table import Table

from ggroute.cli.common import (
    CodeOption,
    ConfigOption,
    JsonOption,
    MaxTokensOption,
    NoLoopGuardOption,
    SeedOption,
    TemperatureOption,
    TimeoutOption,
    VerboseOption,
    consume,
    ctrl_c_cancels,
    emit_json,
    err,
    exit_for,
    flag_option,
    generation_payload,
    guarded,
    out,
    read_task,
    report_result,
)
from ggroute.cli.payloads import (
    CalibrationPayload,
    EvalRoutingPayload,
    FitPayload,
    RoutePayload,
    RunPayload,
    SourceScorePayload,
)
from ggroute.cli.pull_commands import PullOption, pull_if_asked
from ggroute.models.config import load_config
from ggroute.models.generate import RequestOptions
from ggroute.models.metrics import GenerationResult
from ggroute.router.routing import RouteOutcome

if TYPE_CHECKING:
    from ggroute.evals.routing_eval import FitResult
    from ggroute.router.pipeline import Pipeline


def _pipeline(config: Path | None, *, generates: bool = False, pull: bool = False) -> Pipeline:
    """The pipeline of `config`, which must have a router section (Pipeline is imported lazily: --help stays fast).
    `generates`: requests will be logged, so an unusable log_file is an error now, before any model loads.
    `pull`: download missing hf: models first (--pull)."""
    loaded = guarded(lambda: load_config(config))
    pull_if_asked(loaded, pull)
    from ggroute.router.pipeline import Pipeline

    pipeline = guarded(lambda: Pipeline(loaded, check_log=generates))
    guarded(pipeline.router.require_config)
    return pipeline


def _header(outcome: RouteOutcome) -> str:
    confidence = f"{outcome.confidence:.2f}" if outcome.confidence is not None else "-"
    return (f"route={outcome.route} confidence={confidence} model={outcome.model} "
            f"({outcome.reason}, {outcome.latency_ms:.0f} ms)")


def route(task: Annotated[str, typer.Argument(help="The task text, or '-' for stdin.")],
          config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show the routing decision alone: every route's probability and the latency."""
    text = read_task(task)
    with _pipeline(config) as pipeline:
        outcome = guarded(lambda: pipeline.route(text))
    if as_json:
        emit_json(_route_payload(outcome))
        return
    out.print(escape(_header(outcome)))
    for name, p in sorted(outcome.probabilities.items(), key=lambda kv: -kv[1]):
        out.print(f"  {name:<12} {p:.3f}")


def _route_payload(outcome: RouteOutcome) -> RoutePayload:
    return {"route": outcome.route, "model": outcome.model, "confidence": outcome.confidence,
            "reason": outcome.reason, "latency_ms": outcome.latency_ms, "probabilities": outcome.probabilities,
            "label_logits": outcome.label_logits, "truncated": outcome.truncated,
            "evaluated_tokens": outcome.evaluated_tokens}


def run(
    task: Annotated[str, typer.Argument(help="The task text, or '-' for stdin.")],
    route_name: Annotated[str | None, typer.Option("--route", help="Skip the router and use this route.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    max_tokens: MaxTokensOption = None,
    timeout: TimeoutOption = None,
    temperature: TemperatureOption = None,
    seed: SeedOption = None,
    code: CodeOption = False,
    no_loop_guard: NoLoopGuardOption = False,
    verbose: VerboseOption = False,
    pull: PullOption = False,
) -> None:
    """Route TASK with the router model, then run it on the chosen model, streaming the output (with --code:
    printing only its code at the end)."""
    text = read_task(task)
    options = RequestOptions(max_tokens=max_tokens, timeout_s=timeout, temperature=temperature, seed=seed,
                             stop_after_code=code, loop_guard=not no_loop_guard)
    # Until the footer is out, a signal only cancels: one that comes as the answer ends still gets its footer.
    with _pipeline(config, generates=True, pull=pull) as pipeline, ctrl_c_cancels() as cancel:
        if route_name is not None:
            guarded(lambda: pipeline.router.check_route(route_name))

        def _go() -> tuple[RouteOutcome, GenerationResult, str]:
            with pipeline.run(text, options, forced_route=route_name, cancel=cancel) as (outcome, generation):
                if not as_json:
                    err.print(f"[bold]{escape(_header(outcome))}[/]")
                consume(generation, stream=not (as_json or code))
            assert generation.result is not None
            return outcome, generation.result, generation.prompt.text

        outcome, result, prompt_text = guarded(_go)
        payload: RunPayload = {**generation_payload(result, code_of_prompt=prompt_text if code else None),
                               "route": outcome.route,
                               "confidence": outcome.confidence, "reason": outcome.reason,
                               "route_latency_ms": outcome.latency_ms, "probabilities": outcome.probabilities}
        report_result(payload, prompt_text, result, as_json=as_json, code=code, verbose=verbose)
    exit_for(result)


def eval_routing(
    files: Annotated[list[Path], typer.Argument(
        help="JSONL files of {\"task\": ..., \"route\": ...[, \"source\": ...]} lines, or folders of them.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
    fit: Annotated[bool, flag_option("--fit", help="Also fit router.calibration on these tasks, print it.")] = False,
    by_source: Annotated[bool, flag_option(
        "--by-source", help="Accuracy per source style (a line's `source`, else its file's name).")] = False,
) -> None:
    """Accuracy, per-route precision and recall, confusion matrix, fallbacks and latency on labeled tasks."""
    from ggroute.evals.routing_data import read_labeled_files
    from ggroute.evals.routing_eval import evaluate_routing, fit_from_report

    with _pipeline(config) as pipeline:
        routes = list(pipeline.router.require_config().routes)
        has_head = pipeline.router.require_config().head is not None
        rows = guarded(lambda: read_labeled_files(files, routes))
        report = guarded(lambda: evaluate_routing(pipeline.router, rows))
    payload = cast(EvalRoutingPayload, report.as_dict())
    if by_source:
        payload["by_source"] = cast(dict[str, SourceScorePayload], report.by_source)
    if fit:
        payload["fit"] = _fit_payload(guarded(lambda: fit_from_report(report, routes)))
    if as_json:
        emit_json(payload)
        return
    quality = report.confidence
    out.print(f"n={report.n} accuracy={report.accuracy:.3f} fallbacks={report.fallbacks} "
              f"latency p50={report.latency_ms['p50']:.1f} ms p95={report.latency_ms['p95']:.1f} ms "
              f"calibration error={quality['expected_calibration_error']:.3f} "
              f"wrong above 0.9={quality['wrong_above_0_9']:.3f}")
    if by_source:
        sources = Table(title="accuracy by source")
        for column in ("source", "n", "accuracy"):
            sources.add_column(column, justify="left" if column == "source" else "right")
        for name, score in report.by_source.items():
            sources.add_row(escape(name), str(score["n"]), f"{score['accuracy']:.3f}")
        out.print(sources)
    table = Table(title="confusion (rows: expected, columns: routed)")
    table.add_column("expected")
    for r in routes:
        table.add_column(r, justify="right")
    table.add_column("precision", justify="right")
    table.add_column("recall", justify="right")
    for r in routes:
        table.add_row(r, *(str(report.confusion[r][p]) for p in routes),
                      f"{report.per_route[r]['precision']:.3f}", f"{report.per_route[r]['recall']:.3f}")
    out.print(table)
    if fit:
        out.print(f"calibration fitted on {report.n} tasks (accuracy on the same tasks "
                  f"{payload['fit']['accuracy_in_sample']:.3f}); check it on other tasks, then put this in "
                  f"config.json under router{' in place of head' if has_head else ''}:")
        out.print(escape(json.dumps({"calibration": payload["fit"]["calibration"]})))
        if has_head:
            err.print("[yellow]note:[/] this config routes through router.head, which does not use a calibration: "
                      "the calibration is for label-logit scoring, without head (to adapt a head to your tasks, "
                      "train one: `ggroute router train FILE...`)")


def _fit_payload(fit: FitResult) -> FitPayload:
    return {"calibration": cast(CalibrationPayload, fit.calibration.model_dump()), "n": fit.n,
            "accuracy_in_sample": fit.accuracy_in_sample}
