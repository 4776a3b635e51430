"""How the next token is chosen: a model's configured sampler settings, with per-request overrides applied."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ggroute.models.config import ModelConfig


@dataclass(frozen=True)
class Dry:
    """llama.cpp's DRY sampler settings (see ModelConfig's dry_* fields)."""

    multiplier: float
    base: float
    allowed_length: int
    penalty_last_n: int
    sequence_breakers: tuple[str, ...]


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
    dry: Dry | None = None  # None: the DRY sampler is off

    @classmethod
    def of(cls, settings: ModelConfig) -> Sampling:
        dry = None
        if settings.dry_multiplier > 0:
            # llama.cpp reads -1 as "the training context", which this build's API cannot be told: pass ours.
            last_n = settings.context_size if settings.dry_penalty_last_n == -1 else settings.dry_penalty_last_n
            dry = Dry(settings.dry_multiplier, settings.dry_base, settings.dry_allowed_length, last_n,
                      tuple(settings.dry_sequence_breakers))
        return cls(temperature=settings.temperature, seed=settings.seed, top_k=settings.top_k,
                   top_p=settings.top_p, min_p=settings.min_p, repeat_penalty=settings.repeat_penalty,
                   presence_penalty=settings.presence_penalty, frequency_penalty=settings.frequency_penalty,
                   dry=dry)

    def with_overrides(self, temperature: float | None = None, seed: int | None = None) -> Sampling:
        return replace(self, temperature=self.temperature if temperature is None else temperature,
                       seed=self.seed if seed is None else seed)
