"""`ggroute models --plan`: the memory each local model needs at several context sizes, and whether the set fits
memory_budget_mb and this machine's RAM (models/plan_report.py decides; this module renders)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ggroute.cli import render
from ggroute.cli.common import emit_json, err, guarded, out
from ggroute.cli.exit_codes import EXIT_RUNTIME
from ggroute.cli.payloads import ModelsPlanPayload, PlannedModelRow
from ggroute.models.config import LoadedConfig
from ggroute.models.plan_report import PlannedModel, PlanReport


def models_plan(loaded: LoadedConfig, as_json: bool) -> None:
    from ggroute.models.catalog import ModelCatalog
    from ggroute.models.plan_report import plan_report

    report = guarded(lambda: plan_report(ModelCatalog(loaded)))
    if as_json:
        emit_json(_payload(loaded, report))
    else:
        out.print(_table(loaded, report))
        for m in report.models:  # below the table: a path does not fit a column on an 80-column terminal
            missing = "" if m.downloaded else " [yellow](not downloaded)[/]"
            out.print(f"{escape(m.name)}: {escape(Path(str(m.info.path)).name)}{missing}", soft_wrap=True)
        for line in _verdict(loaded, report):
            out.print(line)
    for problem in report.errors.values():
        err.print(f"[red]error:[/] {escape(problem)}", soft_wrap=True)  # the message names the model
    if report.errors or report.over_budget_alone:
        raise typer.Exit(EXIT_RUNTIME)


def _row(m: PlannedModel) -> PlannedModelRow:
    return {"name": m.name, "source": m.source, "downloaded": m.downloaded, "file": str(m.info.path),
            "file_bytes": m.info.file_size, "quantization": m.info.quantization, "context_size": m.plan.context_size,
            "n_ctx_train": m.info.n_ctx_train, "weight_bytes": m.plan.weight_bytes,
            "repacked_bytes": m.plan.repacked_bytes, "kv_bytes": m.plan.kv_bytes,
            "compute_bytes": m.plan.compute_bytes, "own_bytes": m.plan.own_bytes, "added_bytes": m.plan.added_bytes,
            "shares_weights_with": m.plan.shares_weights_with,
            "bytes_by_context": {str(k): v for k, v in m.by_context.items()}}


def _payload(loaded: LoadedConfig, report: PlanReport) -> ModelsPlanPayload:
    return {"config": str(loaded.source), "models": [_row(m) for m in report.models], "errors": report.errors,
            "budget_bytes": report.budget_bytes, "total_bytes": report.total_bytes, "fits_budget": report.fits_budget,
            "over_budget_alone": report.over_budget_alone, "ram_bytes": report.ram_bytes,
            "budget_above_ram": report.budget_above_ram}


def _context_label(tokens: int) -> str:
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else str(tokens)


def _table(loaded: LoadedConfig, report: PlanReport) -> Table:
    contexts = sorted({c for m in report.models for c in m.by_context})
    table = Table(title=f"Memory plan of {loaded.source}: MB, estimated from GGUF headers (weights + repacked "
                  "copy + KV cache + compute)")
    table.add_column("model", no_wrap=True)
    table.add_column("quant", no_wrap=True)
    table.add_column("context", justify="right", no_wrap=True)
    table.add_column("needs", justify="right", no_wrap=True)
    for context in contexts:
        table.add_column(_context_label(context), justify="right", no_wrap=True)
    for m in report.models:
        cells = [f"{m.by_context[c] / render.MB:,.0f}" if c in m.by_context else "-" for c in contexts]
        cells = [f"[bold]{c}[/]" if ctx == m.plan.context_size else c for c, ctx in zip(cells, contexts, strict=True)]
        table.add_row(m.name, m.info.quantization, str(m.plan.context_size),
                      f"{m.plan.own_bytes / render.MB:,.0f}", *cells)
    table.caption = ("needs: the model alone at its configured context (bold); 2K ... 32K: the same at that "
                     "context_size")
    return table


def _verdict(loaded: LoadedConfig, report: PlanReport) -> list[str]:
    budget = loaded.config.memory_budget_mb
    shared = [m.name for m in report.models if m.plan.shares_weights_with]
    note = f" ({', '.join(shared)} share weights with another model: counted once)" if shared else ""
    partial = (f"; [yellow]this counts only the models planned: {escape(', '.join(report.errors))} could not be "
               "(see below)[/]" if report.errors else "")
    lines = [f"all at once: {render.mb(report.total_bytes)} of memory_budget_mb {budget} "
             + ("[green]fits[/]" if report.fits_budget else "[yellow]does not fit at once: the pool loads them in "
                "turn, evicting the least recently used[/]") + note + partial]
    for name in report.over_budget_alone:
        lines.append(f"[red]{escape(name)} alone is over memory_budget_mb[/]: lower its context_size, use a smaller "
                     "quantization, or raise the budget")
    ram = f"this machine: {render.mb(report.ram_bytes)} of RAM"
    if report.budget_above_ram:
        lines.append(f"{ram}; [yellow]memory_budget_mb is above it[/]: lower it, or the machine swaps")
    else:
        lines.append(f"{ram}; memory_budget_mb is within it")
    return lines
