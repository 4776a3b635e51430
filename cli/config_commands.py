"""`ggroute models`, `ggroute config check` and `ggroute config docs`: what config.json defines and what it costs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ggroute.cli import render
from ggroute.cli.common import ConfigOption, JsonOption, emit_json, err, guarded, out
from ggroute.cli.exit_codes import EXIT_RUNTIME
from ggroute.cli.payloads import ConfigCheckPayload, ModelRow, ModelsPayload, PlanRow
from ggroute.core.errors import GgrouteError
from ggroute.models.config import LoadedConfig, config_warnings, load_config
from ggroute.models.memory import ModelPlan


def models(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the configured models: file, size, memory estimate, loaded or not."""
    loaded = guarded(lambda: load_config(config))
    from ggroute.models.catalog import ModelCatalog

    catalog = ModelCatalog(loaded)
    rows: list[ModelRow] = []
    for name in catalog.names:
        path_ref = loaded.model_path_ref(name)
        try:
            spec = catalog.spec(name)
        except GgrouteError as exc:
            rows.append({"name": name, "loaded": False, "path_ref": path_ref, "file": None, "error": str(exc)})
        else:
            rows.append({"name": name, "loaded": False, "path_ref": path_ref, "file": str(spec.path),
                         "size_bytes": spec.info.file_size, "architecture": spec.info.architecture,
                         "quantization": spec.info.quantization, "context_size": spec.settings.context_size,
                         "estimate_bytes": spec.plan.own_bytes, "chat_template": spec.info.chat_template is not None})
    if as_json:
        payload: ModelsPayload = {"config": str(loaded.source), "models": rows}
        emit_json(payload)
    else:
        out.print(_models_table(loaded, rows))
    if any("error" in r for r in rows):
        raise typer.Exit(EXIT_RUNTIME)


def _models_table(loaded: LoadedConfig, rows: list[ModelRow]) -> Table:
    table = Table(title=f"Models in {loaded.source}")
    for col in ("name", "file", "size", "quant", "context", "estimate", "loaded"):
        table.add_column(col)
    for r in rows:
        if "error" in r:
            table.add_row(r["name"], f"[red]{escape(r['error'])}[/]", "", "", "", "", "no")
            continue
        table.add_row(r["name"], Path(str(r["file"])).name, render.mb(r["size_bytes"]), r["quantization"],
                      str(r["context_size"]), render.mb(r["estimate_bytes"]), "no")
    return table


def _plan_row(plan: ModelPlan) -> PlanRow:
    return {"name": plan.name, "path": plan.path, "context_size": plan.context_size,
            "weight_bytes": plan.weight_bytes, "kv_bytes": plan.kv_bytes, "compute_bytes": plan.compute_bytes,
            "shares_weights_with": plan.shares_weights_with, "own_bytes": plan.own_bytes,
            "added_bytes": plan.added_bytes}


def config_check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Validate config.json, print its warnings and the memory plan per model and in total against the budget."""
    loaded: LoadedConfig = guarded(lambda: load_config(config, warn=False))  # printed below, not logged
    warnings = config_warnings(loaded.config)
    from ggroute.models.catalog import ModelCatalog
    from ggroute.models.memory import kv_table

    catalog = ModelCatalog(loaded)
    plan = guarded(catalog.budget_plan)
    specs = {n: catalog.spec(n) for n in catalog.names}
    kv = {n: kv_table(s.info, s.settings.swa_full, s.settings.cache_type_k) for n, s in specs.items()}
    too_big = [p.name for p in plan.models if p.own_bytes > plan.budget_bytes]
    if as_json:
        payload: ConfigCheckPayload = {
            "config": str(loaded.source),
            "budget_bytes": plan.budget_bytes,
            "total_bytes": plan.total_bytes,
            "fits": plan.fits,
            "models": [_plan_row(p) for p in plan.models],
            "kv_cache_bytes_by_context": {n: {str(k): v for k, v in t.items()} for n, t in kv.items()},
            "over_budget_alone": too_big,
            "warnings": warnings,
        }
        emit_json(payload)
    else:
        out.print(f"config: {loaded.source} [green]valid[/]")
        out.print(render.plan_table(plan, {n: catalog.spec(n).path.name for n in catalog.names}))
        out.print(render.kv_table(kv))
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    if too_big:
        err.print(f"[red]error:[/] {', '.join(too_big)} cannot load under memory_budget_mb "
                  f"({loaded.config.memory_budget_mb}): lower context_size or raise the budget")
        raise typer.Exit(EXIT_RUNTIME)


def config_docs() -> None:
    """Print the config.json field reference as Markdown (generated from the schema)."""
    from ggroute.models.config_docs import markdown_reference

    sys.stdout.write(markdown_reference())
