"""Per-request figures: measured, never derived from limits."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FinishReason = Literal["stop", "length", "timeout", "cancelled", "repetition"]


class Usage(BaseModel):
    prompt_tokens: int = Field(description="Tokens in the prompt.")
    cached_prompt_tokens: int = Field(description="Prompt tokens reused from the KV cache, not evaluated.")
    completion_tokens: int = Field(description="Tokens generated (counted, EOS/EOG excluded).")


class Timings(BaseModel):
    load_s: float | None = Field(None, description="Model load time, when this request loaded it.")
    prefill_s: float = Field(description="Prompt processing up to the first sampled token.")
    prefill_tokens_per_s: float | None = Field(None, description="Evaluated prompt tokens / prefill_s.")
    decode_s: float = Field(description="First to last sampled token.")
    decode_tokens_per_s: float | None = Field(None, description="Tokens sampled after the first / decode_s.")
    time_to_first_token_s: float | None = Field(None, description="Request start to first sampled token.")
    wall_s: float = Field(description="Whole request, load included.")


class Limits(BaseModel):
    max_tokens: int
    timeout_s: float
    context_size: int
    stop: list[str]


class Repetition(BaseModel):
    cycle: str = Field(description="The repeated text, once (its first 200 characters).")
    repeats: int = Field(description="Times it had been written when the loop was recognised.")
    dropped_chars: int = Field(description="Characters of repeats cut from the text.")
    tokens_saved: int = Field(description="Tokens not generated: what was left of max_tokens (or the context).")


class GenerationResult(BaseModel):
    model: str
    text: str
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    limits: Limits
    evicted: list[str] = Field(default_factory=list, description="Models unloaded to make room.")
    repetition: Repetition | None = Field(None, description="Set when the loop guard stopped generation.")
    prompt_preview: str = ""


def rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 2) if count > 0 and seconds > 0 else None
