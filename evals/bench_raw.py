"""Tokens/s through ggroute vs llama-cpp-python called directly, on the same Llama, alternating in one run.

Same prompt tokens, sampler settings and stop strings on both sides; the KV cache is reset before every request
so both do the full prefill. ggroute's side is a normal Generation; the raw side is create_completion(stream).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.llamacpp.model import LlamaModel
from ggroute.models.sampling import Sampling

DEFAULT_TASK = (
    "Write a Python class for a bank account with deposit, withdraw and a transaction history, with docstrings."
)


@dataclass(frozen=True)
class PairedRun:
    ggroute_decode: float
    raw_decode: float
    ggroute_prefill: float
    raw_prefill: float
    ggroute_tokens: int
    raw_tokens: int


@dataclass(frozen=True)
class RawComparison:
    runs: list[PairedRun]

    def _median(self, key: str) -> float:
        return float(statistics.median(float(getattr(r, key)) for r in self.runs))

    def summary(self) -> dict[str, object]:
        decode = (self._median("ggroute_decode"), self._median("raw_decode"))
        prefill = (self._median("ggroute_prefill"), self._median("raw_prefill"))
        return {
            "pairs": len(self.runs),
            "decode_tokens_per_s": {"ggroute": round(decode[0], 2), "raw": round(decode[1], 2)},
            "prefill_tokens_per_s": {"ggroute": round(prefill[0], 2), "raw": round(prefill[1], 2)},
            "decode_ratio": round(decode[0] / decode[1], 4),
            "decode_ratio_median_of_pairs": round(statistics.median(r.ggroute_decode / r.raw_decode
                                                                    for r in self.runs), 4),
            "prefill_ratio": round(prefill[0] / prefill[1], 4),
        }


def through_ggroute(model: LlamaModel, task: str, max_tokens: int) -> tuple[float, float, int]:
    model.forget_context()
    result = Generation(model, task, RequestOptions(max_tokens=max_tokens, timeout_s=3600)).run()
    t = result.timings
    return t.decode_tokens_per_s or 0.0, t.prefill_tokens_per_s or 0.0, result.usage.completion_tokens


def through_raw(model: LlamaModel, task: str, max_tokens: int) -> tuple[float, float, int]:
    llama, prepared = model.llama, model.prepare(task)
    sampling = Sampling.of(model.spec.settings)
    stop = list(dict.fromkeys([*model.spec.settings.stop, *prepared.stop]))
    model.forget_context()
    started = time.perf_counter()
    stamps: list[float] = []
    for chunk in llama.create_completion(prepared.tokens, max_tokens=max_tokens,
                                         temperature=sampling.temperature, top_k=sampling.top_k,
                                         top_p=sampling.top_p, min_p=sampling.min_p,
                                         repeat_penalty=sampling.repeat_penalty,
                                         presence_penalty=sampling.presence_penalty,
                                         frequency_penalty=sampling.frequency_penalty, stop=stop or None,
                                         stream=True):
        if chunk["choices"][0]["finish_reason"] is None:  # the closing chunk carries no token
            stamps.append(time.perf_counter())
    decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    prefill = len(prepared.tokens) / (stamps[0] - started) if stamps else 0.0
    return decode, prefill, len(stamps)


def compare_with_raw(model: LlamaModel, *, repeat: int, max_tokens: int, task: str = DEFAULT_TASK,
                     on_pair: Callable[[PairedRun], None] | None = None) -> RawComparison:
    through_ggroute(model, task, 8)  # warm-up: page in the weights, build the chat formatter
    through_raw(model, task, 8)
    runs: list[PairedRun] = []
    for _ in range(repeat):
        a = through_ggroute(model, task, max_tokens)
        b = through_raw(model, task, max_tokens)
        runs.append(PairedRun(a[0], b[0], a[1], b[1], a[2], b[2]))
        if on_pair is not None:
            on_pair(runs[-1])
    return RawComparison(runs)
