"""Per-request figures: measured, never derived from limits."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

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


FigureSource = Literal["upstream", "stream"]


class Remote(BaseModel):
    """Where a remote model's answer came from, and where its figures came from."""

    backend: str = Field(description="The remote backend (`openai`: an OpenAI-compatible server).")
    base_url: str = Field(description="The server's API root.")
    upstream_model: str = Field(description="The model name sent to the server.")
    usage_from: FigureSource = Field(description="`upstream`: usage is the server's `usage` field; `stream`: "
                                     "completion tokens counted from the stream (prompt tokens then unknown: 0).")
    timings_from: FigureSource = Field(description="`upstream`: prefill and decode figures are the server's own "
                                       "timings; `stream`: measured here, prefill as the time to the first token.")


class Fallback(BaseModel):
    """The request ran on a route's fallback model because its own model's server failed before any text."""

    from_model: str = Field(description="The route's model, which could not answer.")
    reason: str = Field(description="Why: unreachable, an HTTP error, over its queue, a broken stream.")


_OMITTED_WHEN_NONE = ("remote", "fallback")  # local results print exactly what they printed before these existed


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
    remote: Remote | None = Field(None, description="Set for a remote model (left out of dumps otherwise).")
    fallback: Fallback | None = Field(None, description="Set when a route's fallback ran the request.")

    @model_serializer(mode="wrap")
    def _leave_out_unset_remote_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in _OMITTED_WHEN_NONE:
            if key in data and data[key] is None:
                del data[key]
        return data


def rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 2) if count > 0 and seconds > 0 else None
