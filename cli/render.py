"""Rich rendering of ggroute's results; nothing here decides anything."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ggroute.models.catalog import BudgetPlan
from ggroute.models.memory import KV_TABLE_CONTEXTS
from ggroute.models.metrics import GenerationResult

MB = 1_000_000


def mb(n: int | float) -> str:
    return f"{n / MB:,.0f} MB"


def fmt_rate(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def footer(result: GenerationResult) -> str:
    u, t = result.usage, result.timings
    parts = [
        f"finish={result.finish_reason}",
        f"prompt={u.prompt_tokens} tok ({u.cached_prompt_tokens} cached)",
        f"completion={u.completion_tokens} tok",
        f"prefill {fmt_rate(t.prefill_tokens_per_s)} tok/s",
        f"decode {fmt_rate(t.decode_tokens_per_s)} tok/s",
    ]
    if t.load_s is not None:
        parts.append(f"load {t.load_s:.2f} s")
    if result.evicted:
        parts.append(f"evicted {', '.join(result.evicted)}")
    parts.append(f"wall {t.wall_s:.2f} s")
    if result.remote is not None:
        r = result.remote
        parts.append(f"remote {r.upstream_model} at {r.base_url} (usage from {r.usage_from}, timings from "
                     f"{r.timings_from})")
    line = " | ".join(parts)
    if result.fallback is not None:
        line += f"\nfallback: model '{result.fallback.from_model}' could not answer ({result.fallback.reason})"
    loop = result.repetition
    if loop is not None:
        line += (f"\nstopped a loop: {loop.cycle.strip()[:60]!r} written {loop.repeats} times in a row; "
                 f"{loop.tokens_saved} tokens saved, the repeats ({loop.dropped_chars} chars) left out of the "
                 "text in --json and the request log (--no-loop-guard if it was not a loop)")
    return line


def verbose_report(console: Console, result: GenerationResult) -> None:
    limits = result.limits
    console.print(f"[dim]prompt preview:[/] {escape(repr(result.prompt_preview))}")
    console.print(
        f"[dim]limits:[/] max_tokens={limits.max_tokens} timeout_s={limits.timeout_s} "
        f"context_size={limits.context_size} stop={escape(repr(limits.stop))}"
    )
    timings = " ".join(f"{k}={v}" for k, v in result.timings.model_dump().items())
    console.print(f"[dim]timings:[/] {escape(timings)}", soft_wrap=True)
    console.print(f"[dim]output preview:[/] {escape(repr(result.text[:200]))}")


def plan_table(plan: BudgetPlan, files: dict[str, str]) -> Table:
    """Fits 80 columns: no vertical rules, the model name whole, the file folded, a note column only when a
    model has a note."""
    notes = {p.name: "[red]over budget alone[/]" if p.own_bytes > plan.budget_bytes else
             f"shares weights with {p.shares_weights_with}" if p.shares_weights_with else "" for p in plan.models}
    table = Table(title="Memory plan (estimates before loading)", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("model", no_wrap=True)
    table.add_column("file", overflow="fold")
    for col in ("weights", "repacked", "KV cache", "compute", "adds"):
        table.add_column(col, justify="right")
    if any(notes.values()):
        table.add_column("note")
    for p in plan.models:
        note = [notes[p.name]] if any(notes.values()) else []
        table.add_row(p.name, files[p.name], mb(p.weight_bytes), mb(p.repacked_bytes), mb(p.kv_bytes),
                      mb(p.compute_bytes), mb(p.added_bytes), *note)
    status = "[green]fits[/]" if plan.fits else "[yellow]does not fit at once: the pool will evict[/]"
    table.caption = f"all loaded: {mb(plan.total_bytes)} of {mb(plan.budget_bytes)} budget, {status}"
    return table


def kv_table(rows: dict[str, dict[int, int]]) -> Table:
    table = Table(title="KV cache size by context_size")
    table.add_column("model")
    for ctx in KV_TABLE_CONTEXTS:
        table.add_column(str(ctx), justify="right")
    for name, sizes in rows.items():
        table.add_row(name, *(mb(sizes[c]) for c in KV_TABLE_CONTEXTS))
    return table
