"""`ggroute models`, `ggroute config check` and `ggroute config docs`: what config.json defines and what it costs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ggroute.cli import render
from ggroute.cli.common import ConfigOption, JsonOption, emit_json, err, flag_option, guarded, out
from ggroute.cli.exit_codes import EXIT_RUNTIME
from ggroute.cli.payloads import ConfigCheckPayload, ModelRow, ModelsPayload, PlanRow, RemoteModelRow
from ggroute.core.errors import GgrouteError
from ggroute.models.config import LoadedConfig, config_warnings, load_config
from ggroute.models.memory import ModelPlan

ProbeOption = Annotated[bool, flag_option(
    "--probe", help="Ask each remote model's server for its model list: reachable, latency, whether it lists the "
                    "model. Exit 1 when one cannot be reached.")]


def _probe_fields(name: str, loaded: LoadedConfig) -> RemoteModelRow:
    """The probe's answer for one remote model, as row fields."""
    from ggroute.models.catalog import RemoteSpec
    from ggroute.models.remote.probe import probe

    found = probe(RemoteSpec(name, loaded.model(name)))
    settings = loaded.model(name)
    return {"name": name, "base_url": settings.base_url or "", "upstream_model": settings.model or "",
            "api_key_env": settings.api_key_env, "api_key_set": _key_set(settings.api_key_env),
            "reachable": found.reachable, "latency_ms": found.latency_ms, "lists_model": found.lists_model,
            "probe_error": found.error}


def _key_set(env: str | None) -> bool | None:
    return None if env is None else bool(os.environ.get(env))


def _remote_row(name: str, loaded: LoadedConfig, with_probe: bool) -> ModelRow:
    settings = loaded.model(name)
    row: ModelRow = {"name": name, "loaded": False, "path_ref": settings.base_url or "", "file": None,
                     "backend": settings.backend, "base_url": settings.base_url or "",
                     "upstream_model": settings.model or ""}
    if _key_set(settings.api_key_env) is False:  # as config check: a warning, the listing itself is fine
        row["warning"] = (f"models.{name}.api_key_env names ${settings.api_key_env}, which is not set here: "
                          "requests to this model will fail until you export it (or remove api_key_env)")
    if with_probe:
        found = _probe_fields(name, loaded)
        row["reachable"] = found["reachable"]
        row["latency_ms"] = found["latency_ms"]
        row["lists_model"] = found["lists_model"]
        row["probe_error"] = found["probe_error"]
    return row


def _probe_text(row: ModelRow | RemoteModelRow) -> str:
    if "reachable" not in row:
        return ""
    if not row["reachable"]:  # the error says which: unreachable, an HTTP error, or a key that was never sent
        return f"[red]not usable[/]: {escape(row.get('probe_error') or '')}"
    listed = {True: "lists the model", False: "[yellow]does not list the model[/]", None: ""}[row.get("lists_model")]
    return f"[green]reachable[/] {row.get('latency_ms')} ms {listed}".rstrip()


def _unreachable(rows: list[ModelRow] | list[RemoteModelRow]) -> list[str]:
    return [r["name"] for r in rows if r.get("reachable") is False]


def _print_probe_failures(rows: list[ModelRow] | list[RemoteModelRow]) -> None:
    """One line per remote model the probe found unusable, with its reason (also with --json, which has no probe
    column to point at)."""
    for r in rows:
        if r.get("reachable") is False:
            err.print(f"[red]error:[/] {escape(r['name'])}: {escape(r.get('probe_error') or 'the probe failed')}",
                      soft_wrap=True)


PlanOption = Annotated[bool, flag_option(
    "--plan", help="The memory each local model needs at its context_size and at other sizes (from GGUF headers; "
                   "an hf: model not downloaded yet is read remotely), and whether they fit memory_budget_mb and "
                   "this machine's RAM.")]


def models(config: ConfigOption = None, as_json: JsonOption = False, with_probe: ProbeOption = False,
           plan: PlanOption = False) -> None:
    """List the configured models: file, size, memory estimate, loaded or not; remote models with their server."""
    loaded = guarded(lambda: load_config(config))
    if plan:
        from ggroute.cli.plan_commands import models_plan

        models_plan(loaded, as_json)
        return
    from ggroute.models.catalog import ModelCatalog

    catalog = ModelCatalog(loaded)
    rows: list[ModelRow] = []
    for name in catalog.names:
        if catalog.is_remote(name):
            rows.append(_remote_row(name, loaded, with_probe))
            continue
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
        out.print(_models_table(loaded, rows, with_probe))
    for row in rows:
        if "warning" in row:
            err.print(f"[yellow]warning:[/] {escape(row['warning'])}")
    _print_probe_failures(rows)
    if any("error" in r for r in rows) or _unreachable(rows):
        raise typer.Exit(EXIT_RUNTIME)


def _models_table(loaded: LoadedConfig, rows: list[ModelRow], with_probe: bool) -> Table:
    table = Table(title=f"Models in {loaded.source}")
    for col in ("name", "file", "size", "quant", "context", "estimate", "loaded", *(["probe"] if with_probe else [])):
        table.add_column(col)
    for r in rows:
        probe = [_probe_text(r)] if with_probe else []
        if "error" in r:
            table.add_row(r["name"], f"[red]{escape(r['error'])}[/]", "", "", "", "", "no", *probe)
        elif "backend" in r:
            where = f"remote: {escape(r['upstream_model'])} at {escape(r['base_url'])}"
            table.add_row(r["name"], where, "-", "-", "-", "none (remote)", "-", *probe)
        else:
            table.add_row(r["name"], Path(str(r["file"])).name, render.mb(r["size_bytes"]), r["quantization"],
                          str(r["context_size"]), render.mb(r["estimate_bytes"]), "no", *probe)
    return table


def _remote_table(rows: list[RemoteModelRow], with_probe: bool) -> Table:
    table = Table(title="Remote models (no memory budget: their servers hold them)")
    for col in ("model", "server", "upstream model", "API key", *(["probe"] if with_probe else [])):
        table.add_column(col)
    for r in rows:
        key = {None: "none", True: f"${r['api_key_env']} set", False: f"[yellow]${r['api_key_env']} not set[/]"}
        table.add_row(r["name"], escape(r["base_url"]), escape(r["upstream_model"]), key[r["api_key_set"]],
                      *([_probe_text(r)] if with_probe else []))
    return table


def plan_row(plan: ModelPlan) -> PlanRow:
    return {"name": plan.name, "path": plan.path, "context_size": plan.context_size,
            "weight_bytes": plan.weight_bytes, "repacked_bytes": plan.repacked_bytes, "kv_bytes": plan.kv_bytes,
            "compute_bytes": plan.compute_bytes,
            "shares_weights_with": plan.shares_weights_with, "own_bytes": plan.own_bytes,
            "added_bytes": plan.added_bytes}


def config_check(config: ConfigOption = None, as_json: JsonOption = False, with_probe: ProbeOption = False) -> None:
    """Validate config.json, print its warnings and the memory plan per model and in total against the budget;
    remote models with their server (and, with --probe, whether it answers)."""
    loaded: LoadedConfig = guarded(lambda: load_config(config, warn=False))  # printed below, not logged
    warnings = config_warnings(loaded.config)
    from ggroute.models.llamacpp.runtime import cpu_features, weights_type_warnings

    warnings += weights_type_warnings(loaded.config, cpu_features())  # hardware advice: config check only
    from ggroute.models.catalog import ModelCatalog
    from ggroute.models.memory import kv_table
    from ggroute.router.request_log import check_log_file
    from ggroute.router.routing import check_route_head, check_route_labels

    catalog = ModelCatalog(loaded)
    guarded(lambda: check_route_head(loaded.config.router, catalog, loaded.router_head_path))  # as serve does
    guarded(lambda: check_route_labels(loaded.config.router, catalog))  # as the first routed request does
    guarded(lambda: check_log_file(loaded.log_path, loaded.source))  # as every command that logs requests does
    plan = guarded(catalog.budget_plan)
    remote = [_remote_check_row(n, loaded, with_probe) for n in catalog.names if catalog.is_remote(n)]
    warnings += [f"models.{r['name']}.api_key_env: ${r['api_key_env']} is not set in this environment: requests to "
                 "this model will fail until it is" for r in remote if r["api_key_set"] is False]
    specs = {n: catalog.spec(n) for n in catalog.local_names}
    kv = {n: kv_table(s.info, s.settings.swa_full, s.settings.cache_type_k) for n, s in specs.items()}
    too_big = [p.name for p in plan.models if p.own_bytes > plan.budget_bytes]
    if as_json:
        payload: ConfigCheckPayload = {
            "config": str(loaded.source),
            "budget_bytes": plan.budget_bytes,
            "total_bytes": plan.total_bytes,
            "fits": plan.fits,
            "models": [plan_row(p) for p in plan.models],
            "kv_cache_bytes_by_context": {n: {str(k): v for k, v in t.items()} for n, t in kv.items()},
            "over_budget_alone": too_big,
            "warnings": warnings,
        }
        if remote:
            payload["remote_models"] = remote
        emit_json(payload)
    else:
        out.print(f"config: {loaded.source} [green]valid[/]")
        out.print(render.plan_table(plan, {n: catalog.spec(n).path.name for n in catalog.local_names}))
        out.print(render.kv_table(kv))
        if remote:
            out.print(_remote_table(remote, with_probe))
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    if too_big:
        err.print(f"[red]error:[/] {', '.join(too_big)} cannot load under memory_budget_mb "
                  f"({loaded.config.memory_budget_mb}): lower context_size or raise the budget")
    _print_probe_failures(remote)
    if too_big or _unreachable(remote):
        raise typer.Exit(EXIT_RUNTIME)


def _remote_check_row(name: str, loaded: LoadedConfig, with_probe: bool) -> RemoteModelRow:
    if with_probe:
        return _probe_fields(name, loaded)
    settings = loaded.model(name)
    return {"name": name, "base_url": settings.base_url or "", "upstream_model": settings.model or "",
            "api_key_env": settings.api_key_env, "api_key_set": _key_set(settings.api_key_env)}


def config_docs() -> None:
    """Print the config.json field reference as Markdown (generated from the schema)."""
    from ggroute.models.config_docs import markdown_reference

    sys.stdout.write(markdown_reference())
