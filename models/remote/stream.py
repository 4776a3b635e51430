"""Reading one streamed answer from an OpenAI-compatible server without ever blocking past a deadline.

The `openai` client parses the server-sent events; it runs in a reader thread that hands each chunk over a
queue. The generator the caller iterates waits on that queue in short steps and polls `should_stop()` between
them, so a server that is slow to answer, or stalls mid-stream, never holds the caller past its timeout or a
Ctrl+C. When the caller stops, the reader closes the HTTP response after the chunk in hand (the server sees the
connection close and stops generating); a reader stuck on a silent server ends at the read timeout.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ggroute.core.errors import UpstreamError
from ggroute.models.backend import (
    EndOfText,
    EngineFigures,
    EventStream,
    LengthReached,
    PromptEvaluated,
    StopCheck,
    TextChunk,
)

POLL_S = 0.05
OVER_QUEUE = (429, 503)  # the server's way of saying it is over its queue


@dataclass(frozen=True)
class Where:
    """What an error message names: the model, the server, the timeouts in force."""

    model: str
    base_url: str
    connect_timeout_s: float
    read_timeout_s: float


class _Reader:
    """The reader thread: opens the stream (the HTTP request) and queues ("chunk", c), ("end", None) or
    ("error", exc)."""

    def __init__(self, open_stream: Callable[[], Any]) -> None:
        self.open_stream = open_stream
        self.items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ggroute-remote-reader", daemon=True)

    def _run(self) -> None:
        stream: Any = None
        try:
            stream = self.open_stream()
            chunks: Iterable[Any] = stream
            for chunk in chunks:
                if self.stop.is_set():
                    break
                self.items.put(("chunk", chunk))
            self.items.put(("end", None))
        except BaseException as exc:  # handed to the caller's thread, which raises it as an UpstreamError
            self.items.put(("error", exc))
        finally:
            if stream is not None:
                with contextlib.suppress(Exception):  # closing a broken connection may fail; it is gone anyway
                    stream.close()


def read_events(open_stream: Callable[[], Any], where: Where, should_stop: StopCheck) -> EventStream:
    """The contract's events for one streamed answer; `open_stream()` sends the request (in the reader thread)."""
    reader = _Reader(open_stream)
    reader.thread.start()
    parser = _ChunkParser(where)
    try:
        while True:
            try:
                kind, payload = reader.items.get(timeout=POLL_S)
            except queue.Empty:
                if should_stop():  # the caller's timeout or cancel: end the stream, the reader closes it
                    return
                continue
            if kind == "error":
                raise upstream_error(payload, where, before_output=not parser.text_seen) from None
            if kind == "end":
                yield from parser.finish()
                return
            yield from parser.feed(payload)
    finally:
        reader.stop.set()


class _ChunkParser:
    """Chunks (chat or completion) to events. The finish reason is held until the stream ends, because the
    usage chunk comes after it; then EngineFigures, then EndOfText or LengthReached."""

    def __init__(self, where: Where) -> None:
        self.where = where
        self.text_seen = False
        self.started = False
        self.finish_reason: str | None = None
        self.figures: EngineFigures | None = None

    def feed(self, chunk: Any) -> EventStream:
        try:
            choices = getattr(chunk, "choices", None) or []  # a usage chunk may have none
            figures = _figures(chunk)
            texts = [(_text_of(c), c.finish_reason) for c in choices if getattr(c, "index", 0) in (0, None)]
        except (AttributeError, TypeError, ValueError) as exc:
            raise self._malformed(f"a chunk without the expected fields ({exc})") from None
        if figures is not None:
            self.figures = _merge(self.figures, figures)
        for text, finish in texts:
            if text is not None and not isinstance(text, str):
                raise self._malformed(f"text that is not a string ({type(text).__name__})")
            if not self.started:
                self.started = True
                yield PromptEvaluated(cached_tokens=0)
            if text:
                self.text_seen = True
                yield TextChunk(text)
            if finish is not None:
                self.finish_reason = str(finish)

    def finish(self) -> EventStream:
        if self.finish_reason is None:
            raise UpstreamError(f"model '{self.where.model}': {self.where.base_url} ended its stream without a "
                                "finish_reason (the connection was cut, or the server is not OpenAI-compatible)",
                                before_output=not self.text_seen)
        if self.figures is not None:
            yield self.figures
        yield LengthReached() if self.finish_reason == "length" else EndOfText()

    def _malformed(self, what: str) -> UpstreamError:
        return UpstreamError(f"model '{self.where.model}': {self.where.base_url} sent {what}",
                             before_output=not self.text_seen)


def _text_of(choice: Any) -> Any:
    delta = getattr(choice, "delta", None)
    if delta is not None:  # chat completion chunk
        return delta.content
    return choice.text  # completion chunk


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _seconds(ms: Any) -> float | None:
    return float(ms) / 1000 if isinstance(ms, int | float) and not isinstance(ms, bool) and ms >= 0 else None


def _figures(chunk: Any) -> EngineFigures | None:
    """The server's `usage` (OpenAI: with stream_options include_usage) and `timings` (llama.cpp's server)."""
    usage = getattr(chunk, "usage", None)
    extra = getattr(chunk, "model_extra", None) or {}
    timings = extra.get("timings") if isinstance(extra, dict) else None
    if usage is None and not isinstance(timings, dict):
        return None
    found: dict[str, Any] = {}
    if usage is not None:
        details = getattr(usage, "prompt_tokens_details", None)
        found.update(prompt_tokens=_int(usage.prompt_tokens), completion_tokens=_int(usage.completion_tokens),
                     cached_prompt_tokens=_int(getattr(details, "cached_tokens", None)) if details else None)
    if isinstance(timings, dict):
        found.update(prefill_tokens=_int(timings.get("prompt_n")), prefill_s=_seconds(timings.get("prompt_ms")),
                     decode_tokens=_int(timings.get("predicted_n")), decode_s=_seconds(timings.get("predicted_ms")))
    return EngineFigures(**found)


def _merge(old: EngineFigures | None, new: EngineFigures) -> EngineFigures:
    if old is None:
        return new
    return EngineFigures(**{k: getattr(new, k) if getattr(new, k) is not None else getattr(old, k)
                            for k in EngineFigures.__dataclass_fields__})


def upstream_error(exc: BaseException, where: Where, *, before_output: bool) -> UpstreamError:
    """What went wrong, in words, for any failure of the request or the stream."""
    import openai

    if isinstance(exc, UpstreamError):
        return exc
    head = f"model '{where.model}': {where.base_url}"
    if isinstance(exc, openai.APITimeoutError):
        kind = type(exc.__cause__).__name__ if exc.__cause__ is not None else ""
        if "Connect" in kind or "Pool" in kind:
            return UpstreamError(f"{head} is unreachable: no connection within connect_timeout_s "
                                 f"({where.connect_timeout_s} s)", before_output=before_output)
        return UpstreamError(f"{head} went silent: nothing for read_timeout_s ({where.read_timeout_s} s)"
                             f"{' before the first token' if before_output else ' in the middle of the answer'}",
                             before_output=before_output)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        return UpstreamError(f"{head} is unreachable ({detail})", before_output=before_output)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        what = ("is over its queue" if status in OVER_QUEUE else "failed" if status >= 500
                else "refused the request")
        return UpstreamError(f"{head} {what}: HTTP {status}: {_message(exc)}", before_output=before_output,
                             status=status)
    if isinstance(exc, openai.APIError):  # an error event inside the stream
        return UpstreamError(f"{head} reported an error in its stream: {exc.message}", before_output=before_output)
    if isinstance(exc, json.JSONDecodeError):
        return UpstreamError(f"{head} sent malformed JSON in its stream ({exc.msg} at column {exc.colno})",
                             before_output=before_output)
    if isinstance(exc, UnicodeDecodeError):
        return UpstreamError(f"{head} sent a stream that is not UTF-8 text ({exc.reason} at byte {exc.start})",
                             before_output=before_output)
    return UpstreamError(f"{head} failed: {type(exc).__name__}: {exc}", before_output=before_output)


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return str(message)[:300]
        detail = body.get("detail")
        if detail:
            return str(detail)[:300]
    text = str(getattr(exc, "message", "") or exc)
    return text[:300]
