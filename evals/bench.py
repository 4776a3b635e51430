"""Measure a model under given settings: load time, prefill and decode tokens/s, time to first token, peak RSS.

Each settings combination runs in a fresh child process (`python -m ggroute.evals.bench JSON`), so load time,
peak RSS and memory freed between combinations are its own. The child generates exactly `gen_tokens` tokens
(end-of-generation tokens do not stop it) after a prompt of exactly `prompt_tokens` tokens; the figures are
medians over `repeat` runs, each with a fresh load.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from ggroute.core.errors import UsageError
from ggroute.models.catalog import ModelCatalog, ModelSpec
from ggroute.models.config import load_config
from ggroute.models.llamacpp.runtime import available_cores, gpu_offload_supported
from ggroute.models.memory import key_type_problem

_FILLER = " The quick brown fox jumps over the lazy dog while the compiler checks every type."


NO_CONVERSION = "none"  # --weights-type value: load the file as it is


@dataclass(frozen=True)
class BenchSettings:
    """One combination of the swept settings; None means the config's own value."""

    n_threads: int | None = None
    context_size: int | None = None
    n_batch: int | None = None
    n_gpu_layers: int | None = None
    weights_type: str | None = None  # NO_CONVERSION, or a weights_type of config.json
    cache_type_k: str | None = None

    def swept(self) -> dict[str, int | str]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def overrides(self) -> dict[str, object]:
        """The swept values as config.json fields."""
        return {k: (None if k == "weights_type" and v == NO_CONVERSION else v) for k, v in self.swept().items()}

    def label(self) -> str:
        short = {"n_threads": "threads", "context_size": "ctx", "n_batch": "batch", "n_gpu_layers": "gpu",
                 "weights_type": "weights", "cache_type_k": "keys"}
        return " ".join(f"{short[k]}={v}" for k, v in self.swept().items()) or "config"


@dataclass
class BenchResult:
    model: str
    settings: BenchSettings
    effective: dict[str, object] = field(default_factory=dict)  # the values actually used
    estimate_mb: float | None = None
    load_s: float | None = None
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    time_to_first_token_s: float | None = None
    peak_rss_mb: float | None = None
    skipped: str | None = None  # why this combination was not measured
    fits_budget: bool = True

    def row(self) -> dict[str, object]:
        return {"model": self.model, "settings": self.settings.label(), **self.effective,
                **{k: v for k, v in asdict(self).items() if k not in ("model", "settings", "effective")}}


def spec_for(catalog: ModelCatalog, name: str, settings: BenchSettings) -> ModelSpec:
    return catalog.spec_with(name, settings.overrides())


def skip_reason(spec: ModelSpec, settings: BenchSettings, prompt_tokens: int, gen_tokens: int,
                budget_bytes: int) -> str | None:
    if settings.n_gpu_layers not in (None, 0) and not gpu_offload_supported():
        return "this llama.cpp build cannot offload to a GPU (llama_supports_gpu_offload() is false)"
    if prompt_tokens + gen_tokens > spec.settings.context_size:
        return (f"prompt {prompt_tokens} + {gen_tokens} generated tokens exceed context_size "
                f"{spec.settings.context_size}")
    key_problem = key_type_problem(spec.info, spec.settings.cache_type_k)
    if key_problem is not None:
        return key_problem
    if spec.plan.own_bytes > budget_bytes:
        return f"needs ~{spec.plan.own_bytes / 1e6:.0f} MB, over memory_budget_mb ({budget_bytes / 1e6:.0f} MB)"
    return None


def measure(catalog: ModelCatalog, name: str, settings: BenchSettings, prompt_tokens: int, gen_tokens: int,
            repeat: int) -> BenchResult:
    """One model under one settings combination: measured in a child process, or skipped with the reason."""
    try:
        spec = spec_for(catalog, name, settings)
    except UsageError as exc:  # a swept value the model's other settings refuse (e.g. its prompt_weights_type)
        return BenchResult(name, settings, skipped=f"not a valid combination here: {exc}")
    s = spec.settings
    threads = s.n_threads or available_cores()  # what load_llama_model passes to llama.cpp
    effective: dict[str, object] = {"n_threads": threads, "context_size": s.context_size, "n_batch": s.n_batch,
                                    "n_gpu_layers": s.n_gpu_layers, "weights_type": s.weights_type,
                                    "prompt_weights_type": s.prompt_weights_type, "cache_type_k": s.cache_type_k}
    result = BenchResult(name, settings, effective, estimate_mb=round(spec.plan.own_bytes / 1e6, 1))
    result.skipped = skip_reason(spec, settings, prompt_tokens, gen_tokens, catalog.budget_bytes)
    if result.skipped is None:
        measured = measure_in_child(str(catalog.loaded.source), name, settings, prompt_tokens, gen_tokens, repeat)
        for key, value in measured.items():
            setattr(result, key, value)
    return result


def compare_with_raw_llama(catalog: ModelCatalog, name: str, repeat: int, gen_tokens: int) -> dict[str, object]:
    """`bench --vs-raw`: ggroute against llama-cpp-python direct on the model as configured (at least 3 pairs)."""
    from ggroute.evals.bench_raw import compare_with_raw
    from ggroute.models.llamacpp.model import load_llama_model

    # Without a prompt_weights_type copy: llama-cpp-python alone has none, and the point is ggroute's overhead.
    model = load_llama_model(catalog.spec_with(name, {"prompt_weights_type": None}))
    try:
        return compare_with_raw(model, repeat=max(repeat, 3), max_tokens=gen_tokens).summary()
    finally:
        model.close()


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure_here(spec: ModelSpec, prompt_tokens: int, gen_tokens: int, repeat: int) -> dict[str, float]:
    """Run in the child process: load, prefill, decode, `repeat` times."""
    from ggroute.models.llamacpp.model import load_llama_model

    loads, prefills, decodes, ttfts = [], [], [], []
    for _ in range(repeat):
        model = load_llama_model(spec)
        try:
            llama = model.llama
            prompt = llama.tokenize(b"Summarise:", add_bos=True)
            filler = llama.tokenize(_FILLER.encode(), add_bos=False)
            prompt += (filler * (prompt_tokens // len(filler) + 1))[: prompt_tokens - len(prompt)]
            started = time.perf_counter()
            first = last = started
            model.read_with_copy(prompt, cached=0)  # as a request does: a prompt_weights_type copy reads it
            for count, _token in enumerate(llama.generate(prompt, temp=0.0), start=1):
                last = time.perf_counter()
                if count == 1:
                    first = last
                if count >= gen_tokens:
                    break
        finally:
            model.close()
        loads.append(model.load_s)
        prefills.append(len(prompt) / (first - started))
        ttfts.append(first - started)
        decodes.append((gen_tokens - 1) / (last - first) if gen_tokens > 1 else 0.0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"load_s": _median(loads), "prefill_tokens_per_s": _median(prefills),
            "decode_tokens_per_s": _median(decodes), "time_to_first_token_s": _median(ttfts),
            "peak_rss_mb": round(peak / 1e6, 1)}


def measure_in_child(config_path: str, name: str, settings: BenchSettings, prompt_tokens: int,
                     gen_tokens: int, repeat: int) -> dict[str, float]:
    request = {"config": config_path, "model": name, "settings": asdict(settings), "prompt_tokens": prompt_tokens,
               "gen_tokens": gen_tokens, "repeat": repeat}
    done = subprocess.run([sys.executable, "-m", "ggroute.evals.bench", json.dumps(request)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        from ggroute.core.errors import GenerationError

        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise GenerationError(f"benchmark of '{name}' ({settings.label()}) failed: {tail[0]}")
    measured: dict[str, float] = json.loads(done.stdout)
    return measured


def _child_main(raw: str) -> None:
    request = json.loads(raw)
    catalog = ModelCatalog(load_config(request["config"]))
    spec = spec_for(catalog, request["model"], BenchSettings(**request["settings"]))
    print(json.dumps(measure_here(spec, request["prompt_tokens"], request["gen_tokens"], request["repeat"])))


if __name__ == "__main__":
    _child_main(sys.argv[1])
