"""The sampler settings every generating model uses (temperature and seed are per model, in config.json)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sampling:
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0  # off: llama-cpp-python's generate() default


SAMPLING = Sampling()
