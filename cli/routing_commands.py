"""`ggroute route`, `ggroute run` and `ggroute eval routing`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ggroute.cli import render
from ggroute.cli.app import (
    ConfigOption,
    JsonOption,
    MaxTokensOption,
    TimeoutOption,
    VerboseOption,
    app,
    consume,
    ctrl_c_cancels,
    emit_json,
    err,
    exit_for,
    generation_payload,
    guarded,
    out,
    read_task,
)
from ggroute.models.config import load_config
from ggroute.models.generate import RequestOptions
from ggroute.router.routing import RouteOutcome

eval_app = typer.Typer(no_args_is_help=True, help="Measure routing and generation.")
app.add_typer(eval_app, name="eval")


def _pipeline(config: Path | None):  # noqa: ANN202 - Pipeline, imported lazily to keep --help fast
    loaded = guarded(lambda: load_config(config))
    from ggroute.router.pipeline import Pipeline

    pipeline = Pipeline(loaded)
    guarded(pipeline.router.require_config)
    return pipeline


def _header(outcome: RouteOutcome) -> str:
    confidence = f"{outcome.confidence:.2f}" if outcome.confidence is not None else "-"
    return (f"route={outcome.route} confidence={confidence} model={outcome.model} "
            f"({outcome.reason}, {outcome.latency_ms:.0f} ms)")


@app.command()
def route(task: Annotated[str, typer.Argument(help="The task text, or '-' for stdin.")],
          config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show the routing decision alone: every route's probability and the latency."""
    text = read_task(task)
    with _pipeline(config) as pipeline:
        outcome = guarded(lambda: pipeline.route(text))
    if as_json:
        emit_json(dataclasses.asdict(outcome))
        return
    out.print(escape(_header(outcome)))
    for name, p in sorted(outcome.probabilities.items(), key=lambda kv: -kv[1]):
        out.print(f"  {name:<12} {p:.3f}")


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="The task text, or '-' for stdin.")],
    route_name: Annotated[str | None, typer.Option("--route", help="Skip the router and use this route.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    max_tokens: MaxTokensOption = None,
    timeout: TimeoutOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Route TASK with the router model, then run it on the chosen model, streaming the output."""
    text = read_task(task)
    options = RequestOptions(max_tokens=max_tokens, timeout_s=timeout)
    with _pipeline(config) as pipeline, ctrl_c_cancels() as cancel:
        if route_name is not None:
            guarded(lambda: pipeline.router.check_route(route_name))

        def _go():  # noqa: ANN202
            with pipeline.run(text, options, forced_route=route_name, cancel=cancel) as (outcome, generation):
                if not as_json:
                    err.print(f"[bold]{escape(_header(outcome))}[/]")
                consume(generation, stream=not as_json)
            return outcome, generation.result

        outcome, result = guarded(_go)
    if as_json:
        emit_json({**generation_payload(result), "route": outcome.route, "confidence": outcome.confidence,
                   "reason": outcome.reason, "route_latency_ms": outcome.latency_ms,
                   "probabilities": outcome.probabilities})
    else:
        err.print(f"[dim]{escape(render.footer(result))}[/]")
        if verbose:
            render.verbose_report(err, result)
    exit_for(result)


@eval_app.command("routing")
def eval_routing(
    file: Annotated[Path, typer.Argument(help="JSONL of {\"task\": ..., \"route\": ...} lines.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
    fit: Annotated[bool, typer.Option("--fit", help="Also fit router.calibration on this file and print it.")] = False,
) -> None:
    """Accuracy, per-route precision and recall, confusion matrix, fallbacks and latency on a labeled file."""
    from ggroute.evals.routing_eval import evaluate_routing, read_labeled

    with _pipeline(config) as pipeline:
        routes = list(pipeline.router.require_config().routes)
        rows = guarded(lambda: read_labeled(file, routes))
        report = guarded(lambda: evaluate_routing(pipeline.router, rows))
    payload = report.as_dict()
    if fit:
        payload["fit"] = guarded(lambda: _fit(report, routes))
    if as_json:
        emit_json(payload)
        return
    out.print(f"n={report.n} accuracy={report.accuracy:.3f} fallbacks={report.fallbacks} "
              f"latency p50={report.latency_ms['p50']:.1f} ms p95={report.latency_ms['p95']:.1f} ms")
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
                  "config.json under router:")
        out.print(escape(json.dumps({"calibration": payload["fit"]["calibration"]})))


def _fit(report, routes: list[str]) -> dict[str, object]:  # noqa: ANN001 - RoutingReport
    import numpy as np

    from ggroute.core.errors import UsageError
    from ggroute.router.calibrate import accuracy, fit_calibration

    scored = [(row, label) for row, label in zip(report.label_logits, report.labels, strict=True) if row]
    if len({label for _, label in scored}) < len(routes) or len(scored) < 2 * len(routes):
        raise UsageError(f"--fit needs tasks the router scored for every route ({', '.join(routes)})")
    logits = np.array([row for row, _ in scored])
    labels = np.array([label for _, label in scored])
    calibration = fit_calibration(logits, labels, routes)
    return {"calibration": calibration.model_dump(), "n": len(scored),
            "accuracy_in_sample": round(accuracy(logits, labels, calibration, routes), 4)}
