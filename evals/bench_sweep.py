"""`ggroute bench` sweeps: parse the swept values, combine them, rank the results, advise on timeouts, pick what
`--apply` writes, write CSV. Nothing here prints or exits; a bad swept value raises UsageError.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from ggroute.core.errors import UsageError
from ggroute.evals.bench import NO_CONVERSION, BenchResult, BenchSettings
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import CacheType, WeightsType

# Swept flag -> (config field, smallest allowed value)
SWEEPS: dict[str, tuple[str, int]] = {
    "--threads": ("n_threads", 1), "--ctx": ("context_size", 64), "--batch": ("n_batch", 1),
    "--n-gpu-layers": ("n_gpu_layers", -1),
}
# Swept flag -> (config field, allowed values)
CHOICE_SWEEPS: dict[str, tuple[str, list[str]]] = {
    "--weights-type": ("weights_type", [NO_CONVERSION, *get_args(WeightsType)]),
    "--cache-type-k": ("cache_type_k", list(get_args(CacheType))),
}
FIELDS: dict[str, str] = {flag: spec[0] for flag, spec in {**SWEEPS, **CHOICE_SWEEPS}.items()}
NOT_APPLIED = {"context_size"}  # a smaller context is always faster but holds less: the user's call
Sweep = list[int] | list[str] | None  # the values of one swept flag; None: not swept


def parse_sweep(flag: str, raw: str | None) -> Sweep:
    """The values of `flag` given as "a,b,c" (duplicates dropped, order kept); UsageError for a bad value."""
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
            raise UsageError(f"'{part.strip()}' is not an integer (expected e.g. 1,2)") from None
        if value < minimum:
            raise UsageError(f"{value} is below the smallest {field}, {minimum}")
        values.append(value)
    return list(dict.fromkeys(values))


def parse_choice_sweep(flag: str, raw: str) -> list[str]:
    field, allowed = CHOICE_SWEEPS[flag]
    values = [part.strip() for part in raw.split(",")]
    for value in values:
        if value not in allowed:
            raise UsageError(f"'{value}' is not a {field} (choose from {', '.join(allowed)})")
    return list(dict.fromkeys(values))


def combinations(sweeps: Mapping[str, Sweep]) -> list[BenchSettings]:
    """Every combination of the swept values (flag -> values); an unswept flag keeps the config's value."""
    axes: list[list[tuple[str, int | str | None]]] = [
        [(FIELDS[flag], v) for v in values] if values else [(FIELDS[flag], None)] for flag, values in sweeps.items()
    ]
    combos: list[dict[str, Any]] = [dict(combo) for combo in itertools.product(*axes)]
    return [BenchSettings(**combo) for combo in combos]


def ranking_metrics(catalog: ModelCatalog) -> dict[str, str]:
    """What "fastest" means per model: a model that only routes never generates, so its prompt speed counts."""
    router = catalog.loaded.config.router
    route_models = {route.model for route in router.routes.values()} if router else set()
    only_routes = router.model if router and router.model not in route_models else None
    return {name: "prefill_tokens_per_s" if name == only_routes else "decode_tokens_per_s" for name in catalog.names}


def speed(result: BenchResult, metrics: Mapping[str, str]) -> float | None:
    """The figure `result` is ranked by (see ranking_metrics); None when it was not measured."""
    value: float | None = getattr(result, metrics.get(result.model, "decode_tokens_per_s"))
    return value


def best_per_model(results: list[BenchResult], metrics: Mapping[str, str]) -> dict[str, BenchResult]:
    """The fastest measured result of each model (skipped ones never win)."""
    best: dict[str, BenchResult] = {}
    for r in results:
        value = speed(r, metrics)
        if r.skipped is None and value is not None:
            current = best.get(r.model)
            if current is None or value > (speed(current, metrics) or 0):
                best[r.model] = r
    return best


@dataclass(frozen=True)
class TimeoutAdvice:
    """How long max_tokens takes at a model's best measured decode speed, against its timeout_s."""

    model: str
    max_tokens: int
    timeout_s: float
    decode_tokens_per_s: float | None
    expected_s: float
    too_short: bool


def timeout_advice(catalog: ModelCatalog, best: Mapping[str, BenchResult]) -> list[TimeoutAdvice]:
    advice = []
    for name, result in best.items():
        settings = catalog.spec(name).settings
        expected = settings.max_tokens / (result.decode_tokens_per_s or 1)
        advice.append(TimeoutAdvice(name, settings.max_tokens, settings.timeout_s, result.decode_tokens_per_s,
                                    round(expected, 1), settings.timeout_s < expected))
    return advice


def fields_to_apply(best: Mapping[str, BenchResult], sweeps: Mapping[str, Sweep]) -> dict[str, dict[str, object]]:
    """What `--apply` writes: per model, the swept fields (context_size never) at its fastest result's values.

    Models with nothing to write are left out; an empty dict means nothing to apply.
    """
    swept = [FIELDS[flag] for flag, values in sweeps.items() if values and FIELDS[flag] not in NOT_APPLIED]
    updates = {name: {key: result.effective[key] for key in swept} for name, result in best.items()}
    return {name: fields for name, fields in updates.items() if fields}


def write_csv(path: Path, results: list[BenchResult]) -> None:
    """One row per result (BenchResult.row()), columns in first-seen order."""
    rows = [r.row() for r in results]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
