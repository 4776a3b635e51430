"""The `ggroute` command line. Errors become exit codes here and only here.

Exit codes: 0 done (finish stop or length), 1 runtime error (load, budget, llama.cpp), 2 bad config or usage,
3 the request timed out (partial output kept), 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ggroute.cli import render
from ggroute.core.errors import ConfigError, GgrouteError, UsageError
from ggroute.models.config import LoadedConfig, load_config
from ggroute.models.generate import RequestOptions
from ggroute.models.metrics import GenerationResult

EXIT_RUNTIME, EXIT_USAGE, EXIT_TIMEOUT, EXIT_INTERRUPTED = 1, 2, 3, 130

app = typer.Typer(no_args_is_help=True, add_completion=False, help="CPU-first multi-model router on GGUF models.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect config.json.")
app.add_typer(config_app, name="config")

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="config.json to use (else $GGROUTE_CONFIG, ./config.json, the default)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
MaxTokensOption = Annotated[int | None, typer.Option(min=1, help="Override the model's max_tokens.")]
TimeoutOption = Annotated[float | None, typer.Option(min=0.01, help="Override the model's timeout_s.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show prompt, limits, timings.")]
T = TypeVar("T")


def fail(exc: GgrouteError) -> typer.Exit:
    code = EXIT_USAGE if isinstance(exc, ConfigError | UsageError) else EXIT_RUNTIME
    err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(code)


def guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except GgrouteError as exc:
        raise fail(exc) from None


def read_task(task: str) -> str:
    text = sys.stdin.read() if task == "-" else task
    if not text.strip():
        raise fail(UsageError("the task is empty: give the text of the task (or '-' to read it from stdin)"))
    return text


def emit_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


@contextmanager
def ctrl_c_cancels() -> Iterator[threading.Event]:
    """While generating, Ctrl+C sets an event the generation loop and llama.cpp's abort callback watch."""
    cancel = threading.Event()

    def _on_sigint(_signum: int, _frame: object) -> None:
        if cancel.is_set():  # a second Ctrl+C: stop waiting
            raise KeyboardInterrupt
        cancel.set()

    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def exit_for(result: GenerationResult) -> None:
    if result.finish_reason == "cancelled":
        err.print("[yellow]interrupted[/]: partial output kept above")
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.finish_reason == "timeout":
        err.print(f"[yellow]timed out[/] after {result.limits.timeout_s} s: partial output kept")
        raise typer.Exit(EXIT_TIMEOUT)


def generation_payload(result: GenerationResult) -> dict[str, object]:
    return result.model_dump(exclude={"prompt_preview"})


@app.command()
def models(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the configured models: file, size, memory estimate, loaded or not."""
    loaded = guarded(lambda: load_config(config))
    from ggroute.models.catalog import ModelCatalog

    catalog = ModelCatalog(loaded)
    rows: list[dict[str, object]] = []
    for name in catalog.names:
        row: dict[str, object] = {"name": name, "loaded": False, "path_ref": loaded.model_path_ref(name)}
        try:
            spec = catalog.spec(name)
        except GgrouteError as exc:
            row.update(file=None, error=str(exc))
        else:
            row.update(file=str(spec.path), size_bytes=spec.info.file_size, architecture=spec.info.architecture,
                       quantization=spec.info.quantization, context_size=spec.settings.context_size,
                       estimate_bytes=spec.plan.own_bytes, chat_template=spec.info.chat_template is not None)
        rows.append(row)
    if as_json:
        emit_json({"config": str(loaded.source), "models": rows})
    else:
        from rich.table import Table

        table = Table(title=f"Models in {loaded.source}")
        for col in ("name", "file", "size", "quant", "context", "estimate", "loaded"):
            table.add_column(col)
        for r in rows:
            if "error" in r:
                table.add_row(str(r["name"]), f"[red]{escape(str(r['error']))}[/]", "", "", "", "", "no")
                continue
            table.add_row(str(r["name"]), Path(str(r["file"])).name, render.mb(int(r["size_bytes"])),
                          str(r["quantization"]), str(r["context_size"]), render.mb(int(r["estimate_bytes"])), "no")
        out.print(table)
    if any("error" in r for r in rows):
        raise typer.Exit(EXIT_RUNTIME)


@config_app.command("check")
def config_check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Validate config.json and print the memory plan per model and in total against the budget."""
    loaded: LoadedConfig = guarded(lambda: load_config(config))
    from ggroute.models.catalog import ModelCatalog
    from ggroute.models.memory import kv_table

    catalog = ModelCatalog(loaded)
    plan = guarded(catalog.budget_plan)
    specs = {n: catalog.spec(n) for n in catalog.names}
    kv = {n: kv_table(s.info, s.settings.swa_full, s.settings.cache_type_k) for n, s in specs.items()}
    too_big = [p.name for p in plan.models if p.own_bytes > plan.budget_bytes]
    if as_json:
        emit_json({
            "config": str(loaded.source),
            "budget_bytes": plan.budget_bytes,
            "total_bytes": plan.total_bytes,
            "fits": plan.fits,
            "models": [{**p.__dict__, "own_bytes": p.own_bytes, "added_bytes": p.added_bytes} for p in plan.models],
            "kv_cache_bytes_by_context": {n: {str(k): v for k, v in t.items()} for n, t in kv.items()},
            "over_budget_alone": too_big,
        })
    else:
        out.print(f"config: {loaded.source} [green]valid[/]")
        out.print(render.plan_table(plan, {n: catalog.spec(n).path.name for n in catalog.names}))
        out.print(render.kv_table(kv))
    if too_big:
        err.print(f"[red]error:[/] {', '.join(too_big)} cannot load under memory_budget_mb "
                  f"({loaded.config.memory_budget_mb}): lower context_size or raise the budget")
        raise typer.Exit(EXIT_RUNTIME)


@config_app.command("docs")
def config_docs() -> None:
    """Print the config.json field reference as Markdown (generated from the schema)."""
    from ggroute.models.config_docs import markdown_reference

    sys.stdout.write(markdown_reference())


@app.command()
def generate(
    task: Annotated[str, typer.Argument(help="The task text, or '-' to read it from stdin.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name from config.json (no routing).")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
    max_tokens: MaxTokensOption = None,
    timeout: TimeoutOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run TASK on one model, streaming the output."""
    text = read_task(task)
    loaded = guarded(lambda: load_config(config))
    from ggroute.router.pipeline import Pipeline

    options = RequestOptions(max_tokens=max_tokens, timeout_s=timeout)
    with Pipeline(loaded) as pipeline, ctrl_c_cancels() as cancel:
        result = guarded(lambda: _stream(pipeline, model, text, options, cancel, stream=not as_json))
    if as_json:
        emit_json(generation_payload(result))
    else:
        err.print(f"[dim]{escape(render.footer(result))}[/]")
        if verbose:
            render.verbose_report(err, result)
    exit_for(result)


def consume(generation: Iterable[str], *, stream: bool) -> None:
    """Run a generation to its end, writing its text to stdout as it comes when `stream`."""
    for piece in generation:
        if stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
    if stream:
        sys.stdout.write("\n")


def _stream(pipeline, model: str, text: str, options: RequestOptions, cancel: threading.Event, *,  # noqa: ANN001
            stream: bool) -> GenerationResult:
    with pipeline.generate(model, text, options, cancel=cancel) as generation:
        consume(generation, stream=stream)
    assert generation.result is not None
    return generation.result


def main() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        app()
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        sys.exit(EXIT_INTERRUPTED)


# These register their commands on `app`; imported last because they build on the names above.
import ggroute.cli.bench_commands  # noqa: E402, F401  (bench)
import ggroute.cli.routing_commands  # noqa: E402, F401  (route, run, eval routing)
import ggroute.cli.suite_commands  # noqa: E402, F401  (eval suite, eval humaneval)
