"""`ggroute bench`: options and rendering; sweeps are ggroute.evals.bench_sweep, measuring ggroute.evals.bench."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, cast

import typer
from rich import box
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from ggroute.cli.common import (
    ConfigOption,
    JsonOption,
    check_output_file,
    emit_json,
    err,
    fail,
    flag_option,
    guarded,
    out,
)
from ggroute.cli.exit_codes import EXIT_INTERRUPTED
from ggroute.cli.payloads import AppliedPayload, BenchPayload, BenchRow, TimeoutAdvicePayload, VsRawPayload
from ggroute.core.errors import GgrouteError, UnknownModelError, UsageError
from ggroute.evals.bench import BenchResult, BenchSettings, compare_with_raw_llama, measure
from ggroute.evals.bench_sweep import (
    Sweep,
    TimeoutAdvice,
    best_per_model,
    combinations,
    fields_to_apply,
    parse_sweep,
    ranking_metrics,
    speed,
    timeout_advice,
    write_csv,
)
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import CONFIG_ENV, LoadedConfig, find_config, load_config, packaged_default_config


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
    apply: Annotated[bool, flag_option("--apply", help="Write the fastest swept values into config.json.")] = False,
    vs_raw: Annotated[bool, flag_option("--vs-raw", help="Compare ggroute with llama-cpp-python direct.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw tokens/s per configuration (PNG).")] = None,
    config: ConfigOption = None,
) -> None:
    """Measure load time, prefill and decode tokens/s, time to first token and peak RSS per model and setting."""
    sweeps = _parse_sweeps((("--threads", threads), ("--ctx", ctx), ("--batch", batch),
                            ("--n-gpu-layers", n_gpu_layers), ("--weights-type", weights_type),
                            ("--cache-type-k", cache_type_k)))
    loaded = guarded(lambda: load_config(config))
    catalog = ModelCatalog(loaded)
    names = models or catalog.local_names  # remote models run on their servers: nothing to tune here
    unknown = [n for n in names if n not in catalog.names]
    if unknown:
        raise fail(UnknownModelError(unknown[0], catalog.names))
    remote = [n for n in names if catalog.is_remote(n)]
    if remote:
        raise fail(UsageError(f"model '{remote[0]}' is remote: bench measures local llama.cpp models "
                              "(benchmarks/remote_vs_direct.py measures a remote one against its server)"))
    if apply and find_config(config) == packaged_default_config():
        raise fail(UsageError("--apply writes into the config file, but none was found (no --config, no "
                              f"${CONFIG_ENV}, no ./config.json), and the packaged default is part of the "
                              f"installation: copy {packaged_default_config()} to ./config.json (or pass --config "
                              "FILE) and run again"))
    check_output_file("--csv", csv_file)  # before measuring, not after minutes of it
    check_output_file("--plot", plot)
    if plot is not None:
        guarded(_check_matplotlib)
    results, interrupted = _measure_all(catalog, names, combinations(sweeps), prompt_tokens, gen_tokens, repeat)
    metrics = ranking_metrics(catalog)
    best = best_per_model(results, metrics)
    advice = timeout_advice(catalog, best)
    payload: BenchPayload = {"results": [cast(BenchRow, r.row()) for r in results], "interrupted": interrupted,
                             "best": {n: r.settings.label() for n, r in best.items()},
                             "timeout_advice": [_advice_payload(a) for a in advice]}
    if vs_raw and not interrupted:
        payload["vs_raw"] = {n: _vs_raw(catalog, n, repeat, gen_tokens) for n in names}
    if apply and not interrupted:
        payload["applied"] = _apply(loaded, best, sweeps)
    if csv_file is not None:
        guarded(lambda: _write_file("--csv", csv_file, lambda: write_csv(csv_file, results)))
    if plot is not None:
        guarded(lambda: write_plot(plot, results))
    if as_json:
        emit_json(payload)
        for item in advice:  # warnings go to stderr in JSON mode too (docs/json-output.md)
            if item.too_short:
                err.print(f"[red]warning:[/] {escape(_advice_line(item))}: raise timeout_s")
    else:
        _print_report(results, best, metrics, advice, payload)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _parse_sweeps(raw_by_flag: tuple[tuple[str, str | None], ...]) -> dict[str, Sweep]:
    """Flag -> swept values; a bad value is click's usage error on that flag (exit 2)."""
    sweeps: dict[str, Sweep] = {}
    for flag, raw in raw_by_flag:
        try:
            sweeps[flag] = parse_sweep(flag, raw)
        except UsageError as exc:
            raise typer.BadParameter(str(exc), param_hint=flag) from None
    return sweeps


def _advice_payload(advice: TimeoutAdvice) -> TimeoutAdvicePayload:
    return {"model": advice.model, "max_tokens": advice.max_tokens, "timeout_s": advice.timeout_s,
            "decode_tokens_per_s": advice.decode_tokens_per_s, "expected_s": advice.expected_s,
            "too_short": advice.too_short}


def _check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'ggroute[plot]'") from None


def _measure_all(catalog: ModelCatalog, names: list[str], combos: list[BenchSettings], prompt_tokens: int,
                 gen_tokens: int, repeat: int) -> tuple[list[BenchResult], bool]:
    """Measure every model under every combination with a progress bar; Ctrl+C keeps what was measured."""
    results: list[BenchResult] = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("measuring", total=len(names) * len(combos))
        try:
            for name in names:
                for settings in combos:
                    progress.update(task, description=f"{name} {settings.label()}")
                    results.append(guarded(partial(measure, catalog, name, settings, prompt_tokens, gen_tokens,
                                                   repeat)))
                    progress.advance(task)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: showing what was measured so far")
            return results, True
    return results, False


def _vs_raw(catalog: ModelCatalog, name: str, repeat: int, gen_tokens: int) -> VsRawPayload:
    return cast(VsRawPayload, guarded(lambda: compare_with_raw_llama(catalog, name, repeat, gen_tokens)))


def _apply(loaded: LoadedConfig, best: dict[str, BenchResult], sweeps: dict[str, Sweep]) -> AppliedPayload:
    from ggroute.models.config_edit import apply_model_fields

    source = loaded.source
    swept = fields_to_apply(best, sweeps)
    updates = {name: changed for name, fields in swept.items()
               if (changed := {k: v for k, v in fields.items() if getattr(loaded.model(name), k) != v})}
    if swept and not updates:
        return {"config": str(source), "changed": {}, "note": f"the fastest values are those {source.name} has "
                "already: nothing written"}
    if not updates:
        return {"config": str(source), "changed": {}, "note": "nothing to apply: sweep --threads, --batch, "
                "--n-gpu-layers, --weights-type or --cache-type-k (context_size is never applied: choose it "
                "from the table)"}
    backup = guarded(lambda: apply_model_fields(source, updates))
    applied: AppliedPayload = {"config": str(source), "changed": updates, "backup": str(backup)}
    warning = _stale_head_warning(source, updates, backup)
    if warning is not None:
        applied["head_warning"] = warning
    return applied


def _stale_head_warning(source: Path, updates: dict[str, dict[str, object]], backup: Path) -> str | None:
    """A route head is trained for the router's weights and keys: applied router settings can leave it stale,
    which routing then refuses. Say so now, with the shipped head that matches the new settings, if one does."""
    from ggroute.models.locate import resolve_package_file
    from ggroute.router.classify import head_identity
    from ggroute.router.head import SHIPPED_HEADS, load_head

    loaded = load_config(source)
    router = loaded.config.router
    if router is None or not router.head or router.model not in updates:
        return None
    try:
        identity = head_identity(ModelCatalog(loaded).spec(router.model), router)
    except GgrouteError as exc:
        return f"could not check router.head against the router's new settings: {exc}"
    try:
        load_head(cast(Path, loaded.router_head_path), list(router.routes), identity)
        return None
    except GgrouteError as exc:
        stale = str(exc)
    for shipped in SHIPPED_HEADS:
        try:
            load_head(resolve_package_file(shipped, "router.head"), list(router.routes), identity)
        except GgrouteError:
            continue
        return (f"router.head ({router.head}) was trained for other router settings; the shipped head {shipped} "
                f"matches the new ones: set \"head\": \"{shipped}\" under router in {source}")
    return (f"{stale}. Routing refuses the head until then; the previous config is {backup}")


def render_table(results: list[BenchResult], best: dict[str, BenchResult], metrics: dict[str, str]) -> Table:
    """Readable at 80 columns: short headers that wrap, settings folded rather than cut, the fastest marked by a *
    beside the model, a skipped row's reason below the table (skipped_lines)."""
    table = Table(title="ggroute bench (medians, fastest first)", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True,
                  caption="* fastest within memory_budget_mb (decode tok/s; prefill for a router)")
    table.add_column("model", no_wrap=True)
    table.add_column("settings", overflow="fold", min_width=14)  # weights=iq4_nl
    for col in ("load\ns", "prefill\ntok/s", "decode\ntok/s", "TTFT\ns", "peak\nRSS MB", "est.\nMB"):
        table.add_column(col, justify="right", overflow="fold")
    ordered = sorted(results, key=lambda r: (r.model, r.skipped is not None, -(speed(r, metrics) or 0)))
    for r in ordered:
        model = f"{escape(r.model)} *" if best.get(r.model) is r else escape(r.model)
        if r.skipped:
            table.add_row(model, escape(r.settings.label()), *["[yellow]skipped[/]"] + [""] * 5)
            continue
        table.add_row(model, escape(r.settings.label()), f"{r.load_s:.2f}", f"{r.prefill_tokens_per_s:.1f}",
                      f"{r.decode_tokens_per_s:.1f}", f"{r.time_to_first_token_s:.3f}", f"{r.peak_rss_mb:.0f}",
                      f"{r.estimate_mb:.0f}")
    return table


def skipped_lines(results: list[BenchResult]) -> list[str]:
    return [f"[yellow]skipped[/] {escape(r.model)} {escape(r.settings.label())}: {escape(r.skipped)}"
            for r in results if r.skipped]


def _write_file(flag: str, path: Path, write: Callable[[], None]) -> None:
    try:
        write()
    except OSError as exc:  # checked before measuring, but the disk can fill or the folder go meanwhile
        raise UsageError(f"{flag} {path}: cannot write it: {exc.strerror or exc}") from None


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


def _advice_line(item: TimeoutAdvice) -> str:
    return (f"{item.model}: max_tokens {item.max_tokens} at {item.decode_tokens_per_s:.1f} tok/s "
            f"takes ~{item.expected_s} s; timeout_s is {item.timeout_s}")


def _print_report(results: list[BenchResult], best: dict[str, BenchResult], metrics: dict[str, str],
                  advice: list[TimeoutAdvice], payload: BenchPayload) -> None:
    out.print(render_table(results, best, metrics))
    for line in skipped_lines(results):
        out.print(line, soft_wrap=True)
    for item in advice:
        line = _advice_line(item)
        out.print(f"[red]warning:[/] {escape(line)}: raise timeout_s" if item.too_short else escape(line))
    for name, summary in payload.get("vs_raw", {}).items():
        out.print(f"{name}: ggroute vs llama-cpp-python direct, decode ratio {summary['decode_ratio']:.3f}, "
                  f"prefill ratio {summary['prefill_ratio']:.3f} (medians of {summary['pairs']} alternating pairs)")
    applied = payload.get("applied")
    if applied:
        if applied["changed"]:
            fields = "; ".join(f"{name}: " + " ".join(f"{k}={json.dumps(v)}" for k, v in changed.items())
                               for name, changed in applied["changed"].items())
            out.print(f"applied to {escape(applied['config'])}: {escape(fields)} (the previous file: "
                      f"{escape(applied.get('backup', ''))})", soft_wrap=True)
        else:
            out.print(f"--apply: {escape(applied.get('note', 'nothing written'))}", soft_wrap=True)
        if "head_warning" in applied:
            err.print(f"[yellow]warning:[/] {escape(applied['head_warning'])}")
    if "context_size" in {k for r in results for k in r.settings.overrides()}:
        out.print("context_size is not applied by --apply: a smaller context is faster but holds less.")
