"""`ggroute router train`: a route head from labeled tasks (router/head.py, evals/head_training.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, cast, get_args

import typer
from rich.markup import escape

from ggroute.cli.common import ConfigOption, JsonOption, check_output_file, emit_json, fail, guarded, out
from ggroute.cli.payloads import TrainHeadPayload
from ggroute.core.errors import UsageError
from ggroute.models.config import load_config

FeatureOption = Literal["last", "mean", "last+mean"]


def train(
    paths: Annotated[list[Path], typer.Argument(
        help="Labeled JSONL files ({\"task\", \"route\"[, \"source\"]} lines) or folders of them.")],
    output: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Head file to write (required; an existing file is replaced).")] = None,
    features: Annotated[str, typer.Option(
        help="Router hidden state the head reads: last (the last token's), mean (over the task's tokens) or "
             "last+mean.")
    ] = "last+mean",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train a route head on the router model's hidden state; at least 20 labeled tasks per route."""
    from ggroute.evals.head_training import train_route_head
    from ggroute.router.pipeline import Pipeline

    if features not in get_args(FeatureOption):  # checked here: typer 0.29 words a Literal's error as pydantic does
        raise fail(UsageError(f"--features must be {', '.join(get_args(FeatureOption))} (got '{features}')"))
    loaded = guarded(lambda: load_config(config))
    if output is None:  # no default: one in the current folder silently replaced the shipped head in a checkout
        raise fail(UsageError("--out FILE is required: the head file to write (an existing file is replaced), "
                              "e.g. --out my-head.json"))
    if output.exists() and output.is_dir():
        raise fail(UsageError(f"--out {output} is a folder: give a file name such as router-head.json"))
    check_output_file("--out", output)  # a missing folder: before the router reads every task
    with Pipeline(loaded, check_log=False) as pipeline:  # routes only: nothing is logged
        trained = guarded(lambda: train_route_head(pipeline.router, paths, cast(FeatureOption, features)))
    guarded(lambda: trained.head.save(output))
    payload: TrainHeadPayload = {
        "head": str(output), "features": features, "n": trained.n, "per_route": trained.per_route,
        "accuracy_in_sample": trained.accuracy_in_sample,
        "accuracy_cross_validated": trained.accuracy_cross_validated,
        "by_source_held_out": trained.by_source_held_out,
        "by_source_not_held_out": trained.by_source_not_held_out,
    }
    if as_json:
        emit_json(payload)
        return
    counts = ", ".join(f"{route} {count}" for route, count in trained.per_route.items())
    out.print(f"trained on {trained.n} tasks ({escape(counts)}): accuracy {trained.accuracy_in_sample:.3f} on "
              f"them, {trained.accuracy_cross_validated:.3f} cross-validated (5 folds)")
    for source, accuracy in trained.by_source_held_out.items():
        out.print(f"  {escape(source):<24} {accuracy:.3f} when left out of training")
    for source, why in trained.by_source_not_held_out.items():
        out.print(f"  {escape(source):<24} not left out: {escape(why)}", soft_wrap=True)
    reference = output.resolve()
    if reference.is_relative_to(loaded.base_dir):  # config paths are relative to the config's folder
        reference = reference.relative_to(loaded.base_dir)
    out.print(f"wrote {escape(str(output))}; use it with this under `router` in {escape(str(loaded.source))} "
              "(and remove `calibration`):")
    out.print(escape(json.dumps({"head": str(reference)})))

