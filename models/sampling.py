"""How the next token is chosen: a model's configured sampler settings, with per-request overrides applied."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ggroute.models.config import ModelConfig


@dataclass(frozen=True)
class Sampling:
    temperature: float
    seed: int
    top_k: int
    top_p: float
    min_p: float
    repeat_penalty: float
    presence_penalty: float
    frequency_penalty: float

    @classmethod
    def of(cls, settings: ModelConfig) -> Sampling:
        return cls(temperature=settings.temperature, seed=settings.seed, top_k=settings.top_k,
                   top_p=settings.top_p, min_p=settings.min_p, repeat_penalty=settings.repeat_penalty,
                   presence_penalty=settings.presence_penalty, frequency_penalty=settings.frequency_penalty)

    def with_overrides(self, temperature: float | None = None, seed: int | None = None) -> Sampling:
        return replace(self, temperature=self.temperature if temperature is None else temperature,
                       seed=self.seed if seed is None else seed)
