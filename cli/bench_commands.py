"""`ggroute bench`: measure models under swept settings, optionally write the fastest back into config.json."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Annotated, get_args

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from ggroute.cli.app import EXIT_INTERRUPTED, ConfigOption, JsonOption, app, emit_json, err, fail, guarded, out
from ggroute.core.errors import UnknownModelError, UsageError
from ggroute.evals.bench import NO_CONVERSION, BenchResult, BenchSettings, measure_in_child, skip_reason
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import CacheType, WeightsType, load_config

# Swept flag -> (config field, smallest allowed value)
SWEEPS = {"--threads": ("n_threads", 1), "--ctx": ("context_size", 64), "--batch": ("n_batch", 1),
          "--n-gpu-layers": ("n_gpu_layers", -1)}
# Swept flag -> (config field, allowed values)
CHOICE_SWEEPS = {"--weights-type": ("weights_type", [NO_CONVERSION, *get_args(WeightsType)]),
                 "--cache-type-k": ("cache_type_k", list(get_args(CacheType)))}
FIELDS = {flag: spec[0] for flag, spec in {**SWEEPS, **CHOICE_SWEEPS}.items()}
NOT_APPLIED = {"context_size"}  # a smaller context is always faster but holds less: the user's call
Sweep = list[int] | list[str] | None


def parse_sweep(flag: str, raw: str | None) -> Sweep:
    if raw is None:
        return None
    if flag in CHOICE_SWEEPS:
        return parse_choice_sweep(flag, raw)
    field, minimum = SWEEPS[flag]
    values: list[int] = []
    for part in raw.split(","):
        try:
            value = int(part.strip())
        except ValueError:
            raise typer.BadParameter(
                f"'{part.strip()}' is not an integer (expected e.g. 1,2)", param_hint=flag
            ) from None
        if value < minimum:
            raise typer.BadParameter(f"{value} is below the smallest {field}, {minimum}", param_hint=flag)
        values.append(value)
    return list(dict.fromkeys(values))


def parse_choice_sweep(flag: str, raw: str) -> list[str]:
    field, allowed = CHOICE_SWEEPS[flag]
    values = [part.strip() for part in raw.split(",")]
    for value in values:
        if value not in allowed:
            raise typer.BadParameter(f"'{value}' is not a {field} (choose from {', '.join(allowed)})", param_hint=flag)
    return list(dict.fromkeys(values))


def combinations(sweeps: dict[str, Sweep]) -> list[BenchSettings]:
    axes = [[(FIELDS[f], v) for v in values] if values else [(FIELDS[f], None)] for f, values in sweeps.items()]
    return [BenchSettings(**dict(combo)) for combo in itertools.product(*axes)]


def ranking_metrics(catalog: ModelCatalog) -> dict[str, str]:
    """What "fastest" means per model: a model that only routes never generates, so its prompt speed counts."""
    router = catalog.loaded.config.router
    route_models = {route.model for route in router.routes.values()} if router else set()
    only_routes = router.model if router and router.model not in route_models else None
    return {name: "prefill_tokens_per_s" if name == only_routes else "decode_tokens_per_s" for name in catalog.names}


def _speed(result: BenchResult, metrics: dict[str, str]) -> float | None:
    return getattr(result, metrics.get(result.model, "decode_tokens_per_s"))


def best_per_model(results: list[BenchResult], metrics: dict[str, str]) -> dict[str, BenchResult]:
    best: dict[str, BenchResult] = {}
    for r in results:
        speed = _speed(r, metrics)
        if r.skipped is None and speed is not None:
            current = best.get(r.model)
            if current is None or speed > (_speed(current, metrics) or 0):
                best[r.model] = r
    return best


def render_table(results: list[BenchResult], best: dict[str, BenchResult], metrics: dict[str, str]) -> Table:
    table = Table(title="ggroute bench (medians; fastest first: decode tokens/s, or prefill for a router that "
                  "only routes)")
    for col in ("model", "settings", "load s", "prefill tok/s", "decode tok/s", "TTFT s", "peak RSS MB",
                "estimate MB", ""):
        table.add_column(col, justify="left" if col in ("model", "settings", "") else "right")
    ordered = sorted(results, key=lambda r: (r.model, r.skipped is not None, -(_speed(r, metrics) or 0)))
    for r in ordered:
        mark = "[green]fastest within budget[/]" if best.get(r.model) is r else ""
        if r.skipped:
            skipped = f"[yellow]skipped: {escape(r.skipped)}[/]"
            table.add_row(r.model, r.settings.label(), "", "", "", "", "", "", skipped)
            continue
        table.add_row(r.model, r.settings.label(), f"{r.load_s:.2f}", f"{r.prefill_tokens_per_s:.1f}",
                      f"{r.decode_tokens_per_s:.1f}", f"{r.time_to_first_token_s:.3f}", f"{r.peak_rss_mb:.0f}",
                      f"{r.estimate_mb:.0f}", mark)
    return table


def timeout_advice(catalog: ModelCatalog, best: dict[str, BenchResult]) -> list[dict[str, object]]:
    advice = []
    for name, result in best.items():
        settings = catalog.spec(name).settings
        expected = settings.max_tokens / (result.decode_tokens_per_s or 1)
        advice.append({"model": name, "max_tokens": settings.max_tokens, "timeout_s": settings.timeout_s,
                       "decode_tokens_per_s": result.decode_tokens_per_s, "expected_s": round(expected, 1),
                       "too_short": settings.timeout_s < expected})
    return advice


def write_csv(path: Path, results: list[BenchResult]) -> None:
    rows = [r.row() for r in results]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_plot(path: Path, results: list[BenchResult]) -> None:
    _check_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in results if r.skipped is None]
    labels = [f"{r.model}\n" + "\n".join(r.settings.label().split()) for r in measured]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(measured)), 5))
    xs = range(len(measured))
    ax.bar([x - 0.2 for x in xs], [r.decode_tokens_per_s or 0 for r in measured], width=0.4, label="decode tok/s")
    ax.bar([x + 0.2 for x in xs], [r.prefill_tokens_per_s or 0 for r in measured], width=0.4, label="prefill tok/s")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("tokens / s (median)")
    ax.set_title("ggroute bench")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@app.command()
def bench(
    models: Annotated[list[str] | None, typer.Argument(help="Models to measure (default: all in config).")] = None,
    prompt_tokens: Annotated[int, typer.Option(min=1, help="Prompt length in tokens.")] = 512,
    gen_tokens: Annotated[int, typer.Option(min=2, help="Tokens generated per run.")] = 128,
    repeat: Annotated[int, typer.Option(min=1, help="Runs per combination; medians are reported.")] = 3,
    threads: Annotated[str | None, typer.Option("--threads", help="Sweep n_threads, e.g. 1,2.")] = None,
    ctx: Annotated[str | None, typer.Option("--ctx", help="Sweep context_size, e.g. 2048,4096.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Sweep n_batch, e.g. 128,512.")] = None,
    n_gpu_layers: Annotated[str | None, typer.Option("--n-gpu-layers", help="Sweep n_gpu_layers, e.g. 0,8,-1.")] = None,
    weights_type: Annotated[str | None, typer.Option(
        "--weights-type", help="Sweep weights_type, e.g. none,bf16,q8_0 (none: the file as it is).")] = None,
    cache_type_k: Annotated[str | None, typer.Option(
        "--cache-type-k", help="Sweep cache_type_k, e.g. f16,q8_0.")] = None,
    as_json: JsonOption = False,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Also write the results as CSV.")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Write the fastest swept values into config.json.")] = False,
    vs_raw: Annotated[bool, typer.Option("--vs-raw", help="Compare ggroute with llama-cpp-python direct.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw tokens/s per configuration (PNG).")] = None,
    config: ConfigOption = None,
) -> None:
    """Measure load time, prefill and decode tokens/s, time to first token and peak RSS per model and setting."""
    sweeps = {flag: parse_sweep(flag, raw) for flag, raw in
              (("--threads", threads), ("--ctx", ctx), ("--batch", batch), ("--n-gpu-layers", n_gpu_layers),
               ("--weights-type", weights_type), ("--cache-type-k", cache_type_k))}
    loaded = guarded(lambda: load_config(config))
    catalog = ModelCatalog(loaded)
    names = models or catalog.names
    unknown = [n for n in names if n not in catalog.names]
    if unknown:
        raise fail(UnknownModelError(unknown[0], catalog.names))
    if plot is not None:
        guarded(_check_matplotlib)  # before measuring, not after minutes of it
    results, interrupted = _measure_all(catalog, names, combinations(sweeps), prompt_tokens, gen_tokens, repeat)
    metrics = ranking_metrics(catalog)
    best = best_per_model(results, metrics)
    advice = timeout_advice(catalog, best)
    payload: dict[str, object] = {"results": [r.row() for r in results], "interrupted": interrupted,
                                  "best": {n: r.settings.label() for n, r in best.items()}, "timeout_advice": advice}
    if vs_raw and not interrupted:
        payload["vs_raw"] = {n: _vs_raw(catalog, n, repeat, gen_tokens) for n in names}
    if apply and not interrupted:
        payload["applied"] = _apply(loaded.source, best, sweeps)
    if csv_file is not None:
        write_csv(csv_file, results)
    if plot is not None:
        guarded(lambda: write_plot(plot, results))
    if as_json:
        emit_json(payload)
    else:
        _print_report(results, best, metrics, advice, payload)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'ggroute[plot]'") from None


def _measure_all(catalog: ModelCatalog, names: list[str], combos: list[BenchSettings], prompt_tokens: int,
                 gen_tokens: int, repeat: int) -> tuple[list[BenchResult], bool]:
    results: list[BenchResult] = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("measuring", total=len(names) * len(combos))
        try:
            for name in names:
                for settings in combos:
                    progress.update(task, description=f"{name} {settings.label()}")
                    results.append(guarded(lambda n=name, s=settings: _measure_one(catalog, n, s, prompt_tokens,
                                                                                   gen_tokens, repeat)))
                    progress.advance(task)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: showing what was measured so far")
            return results, True
    return results, False


def _measure_one(catalog: ModelCatalog, name: str, settings: BenchSettings, prompt_tokens: int, gen_tokens: int,
                 repeat: int) -> BenchResult:
    spec = catalog.spec_with(name, settings.overrides())
    s = spec.settings
    effective = {"n_threads": s.n_threads, "context_size": s.context_size, "n_batch": s.n_batch,
                 "n_gpu_layers": s.n_gpu_layers, "weights_type": s.weights_type, "cache_type_k": s.cache_type_k}
    result = BenchResult(name, settings, effective, estimate_mb=round(spec.plan.own_bytes / 1e6, 1))
    result.skipped = skip_reason(spec, settings, prompt_tokens, gen_tokens, catalog.budget_bytes)
    if result.skipped is None:
        measured = measure_in_child(str(catalog.loaded.source), name, settings, prompt_tokens, gen_tokens, repeat)
        for key, value in measured.items():
            setattr(result, key, value)
    return result


def _vs_raw(catalog: ModelCatalog, name: str, repeat: int, gen_tokens: int) -> dict[str, object]:
    from ggroute.evals.bench_raw import compare_with_raw
    from ggroute.models.llamacpp.model import load_llama_model

    model = guarded(lambda: load_llama_model(catalog.spec(name)))
    try:
        return compare_with_raw(model, repeat=max(repeat, 3), max_tokens=gen_tokens).summary()
    finally:
        model.close()


def _apply(source: Path, best: dict[str, BenchResult], sweeps: dict[str, Sweep]) -> dict[str, object]:
    from ggroute.models.config_edit import apply_model_fields

    swept = [FIELDS[flag] for flag, values in sweeps.items() if values and FIELDS[flag] not in NOT_APPLIED]
    updates = {name: {key: result.effective[key] for key in swept} for name, result in best.items()}
    updates = {name: fields for name, fields in updates.items() if fields}
    if not updates:
        return {"config": str(source), "changed": {}, "note": "nothing to apply: sweep --threads, --batch, "
                "--n-gpu-layers, --weights-type or --cache-type-k (context_size is never applied: choose it "
                "from the table)"}
    backup = guarded(lambda: apply_model_fields(source, updates))
    return {"config": str(source), "changed": updates, "backup": str(backup)}


def _print_report(results: list[BenchResult], best: dict[str, BenchResult], metrics: dict[str, str],
                  advice: list[dict[str, object]], payload: dict[str, object]) -> None:
    out.print(render_table(results, best, metrics))
    for item in advice:
        line = (f"{item['model']}: max_tokens {item['max_tokens']} at {item['decode_tokens_per_s']:.1f} tok/s "
                f"takes ~{item['expected_s']} s; timeout_s is {item['timeout_s']}")
        out.print(f"[red]warning:[/] {escape(line)}: raise timeout_s" if item["too_short"] else escape(line))
    for name, summary in (payload.get("vs_raw") or {}).items():
        out.print(f"{name}: ggroute vs llama-cpp-python direct, decode ratio {summary['decode_ratio']:.3f}, "
                  f"prefill ratio {summary['prefill_ratio']:.3f} (medians of {summary['pairs']} alternating pairs)")
    applied = payload.get("applied")
    if applied:
        out.print(escape(json.dumps(applied)))
    if "context_size" in {k for r in results for k in r.settings.overrides()}:
        out.print("context_size is not applied by --apply: a smaller context is faster but holds less.")

