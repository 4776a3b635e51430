"""OpenAI response bodies and stream chunks, plus the `ggroute` object every finished response carries.

`finish_reason` is ggroute's own: `stop` and `length` as in the OpenAI API, and the documented extensions
`timeout` (timeout_s passed: the text is partial), `repetition` (the loop guard stopped a loop) and `cancelled`
(the server shut down mid-request).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from ggroute.models.metrics import GenerationResult
from ggroute.router.routing import RouteOutcome
from ggroute.server.protocol import Kind


@dataclass(frozen=True)
class Decision:
    """Which model serves a request, and why."""

    model: str
    route: RouteOutcome | None  # None when the request named a model
    reason: str

    def log_fields(self) -> dict[str, object]:
        if self.route is None:
            return {"route": None, "confidence": None, "reason": self.reason, "route_latency_ms": 0.0}
        return self.route.log_fields()


class ResponseIds:
    """The id, object names and creation time shared by a response and all its chunks."""

    def __init__(self, kind: Kind, model: str) -> None:
        self.kind = kind
        self.model = model
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(12)
        self.created = int(time.time())

    def head(self, *, chunk: bool) -> dict[str, object]:
        chat = "chat.completion.chunk" if chunk else "chat.completion"
        obj = chat if self.kind == "chat" else "text_completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}


def usage(result: GenerationResult) -> dict[str, object]:
    u = result.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_prompt_tokens}}


def ggroute_info(result: GenerationResult, decision: Decision, queue_wait_s: float) -> dict[str, object]:
    fields = decision.log_fields()
    t = result.timings
    return {
        "route": fields["route"], "confidence": fields["confidence"], "reason": fields["reason"],
        "route_latency_ms": fields["route_latency_ms"], "model": result.model, "finish_reason": result.finish_reason,
        "prefill_tokens_per_s": t.prefill_tokens_per_s, "decode_tokens_per_s": t.decode_tokens_per_s,
        "time_to_first_token_s": t.time_to_first_token_s, "load_s": t.load_s,
        "queue_wait_s": round(queue_wait_s, 4), "wall_s": t.wall_s,
        "cached_prompt_tokens": result.usage.cached_prompt_tokens, "limits": result.limits.model_dump(),
        "evicted": result.evicted,
        "repetition": result.repetition.model_dump() if result.repetition is not None else None,
        "fallback": result.fallback.model_dump() if result.fallback is not None else None,
    }


def full_response(ids: ResponseIds, result: GenerationResult, info: dict[str, object]) -> dict[str, object]:
    """The non-streaming response body."""
    if ids.kind == "chat":
        choice: dict[str, object] = {"index": 0, "message": {"role": "assistant", "content": result.text},
                                     "logprobs": None, "finish_reason": result.finish_reason}
    else:
        choice = {"index": 0, "text": result.text, "logprobs": None, "finish_reason": result.finish_reason}
    return {**ids.head(chunk=False), "choices": [choice], "usage": usage(result), "ggroute": info}


def _choice(ids: ResponseIds, text: str | None, finish_reason: str | None) -> dict[str, object]:
    if ids.kind == "chat":
        delta: dict[str, object] = {} if text is None else {"content": text}
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}


def first_chunk(ids: ResponseIds) -> dict[str, object] | None:
    """Chat streams open with the assistant role (and no text); completion streams have no such chunk."""
    if ids.kind != "chat":
        return None
    choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
    return {**ids.head(chunk=True), "choices": [choice]}


def text_chunk(ids: ResponseIds, text: str) -> dict[str, object]:
    return {**ids.head(chunk=True), "choices": [_choice(ids, text, None)]}


def final_chunks(ids: ResponseIds, result: GenerationResult, info: dict[str, object],
                 include_usage: bool) -> list[dict[str, object]]:
    """The chunk with the finish reason (and the `ggroute` object), then the usage chunk when asked for."""
    chunks = [{**ids.head(chunk=True), "choices": [_choice(ids, None, result.finish_reason)], "ggroute": info}]
    if include_usage:
        chunks.append({**ids.head(chunk=True), "choices": [], "usage": usage(result)})
    return chunks
