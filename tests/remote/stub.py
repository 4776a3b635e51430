"""A small OpenAI-compatible stub server for the remote backend's fault cases: a Starlette app on a free loopback
port, served by uvicorn in a thread of the test process (a real server: real sockets, real HTTP, real SSE).

What it does depends on the `model` a request names (`BEHAVIOURS`), so one server serves every case. It records
each request (path, JSON body, headers) and, per request, whether its stream was closed by the client before
it ended (`disconnected`): that is how the tests see that ggroute closes the HTTP stream on a timeout or cancel.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORDS = ("Hello", ",", " world", ".")


@dataclass
class Seen:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    ended: threading.Event = field(default_factory=threading.Event)  # the stream finished or was closed
    disconnected: bool = False  # closed by the client before the stream's end


def _chunk(model: str, text: str | None, finish: str | None = None, *, chat: bool = True,
           extra: dict[str, Any] | None = None) -> bytes:
    if chat:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text} if text is not None else {},
                                  "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish}
        obj = "text_completion"
    data = {"id": "stub-1", "object": obj, "created": 0, "model": model, "choices": [choice], **(extra or {})}
    return f"data: {json.dumps(data)}\n\n".encode()


def _usage(model: str, prompt: int, completion: int) -> bytes:
    data = {"id": "stub-1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}
    return f"data: {json.dumps(data)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


class Stub:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.url = ""
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self._complete, methods=["POST"]),
            Route("/v1/completions", self._complete, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ])

    def last(self, model: str) -> Seen:
        return [s for s in self.seen if s.body.get("model") == model][-1]

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "ok", "object": "model", "owned_by": "stub"}]})

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        seen = Seen(request.url.path, body, dict(request.headers))
        self.seen.append(seen)
        model = str(body.get("model"))
        chat = request.url.path.endswith("chat/completions")
        behaviour = BEHAVIOURS.get(model.split(":")[0])
        if behaviour is None:
            seen.ended.set()
            return JSONResponse({"error": {"message": f"model '{model}' not found", "type": "invalid_request_error"}},
                                status_code=404)
        if behaviour == "not-streaming":  # a server that ignores stream=true: one JSON body
            seen.ended.set()
            return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]})
        if isinstance(behaviour, int):  # an HTTP error status
            seen.ended.set()
            headers = {"Retry-After": "1"} if behaviour in (429, 503) else {}
            return JSONResponse({"error": {"message": f"stub says {behaviour}", "type": "server_error"}},
                                status_code=behaviour, headers=headers)
        return StreamingResponse(self._stream(behaviour, model, body, chat, seen), media_type="text/event-stream")

    async def _stream(self, behaviour: Any, model: str, body: dict[str, Any], chat: bool,
                      seen: Seen) -> AsyncIterator[bytes]:
        finished = False
        try:
            async for part in behaviour(model, body, chat):
                yield part
            finished = True
        finally:
            seen.disconnected = not finished
            seen.ended.set()

    @contextmanager
    def running(self) -> Iterator[Stub]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="error",
                                               lifespan="off", timeout_graceful_shutdown=0.5))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            server.should_exit = True
            thread.join(5)


# --- behaviours: async generators of SSE bytes, or an HTTP status --------------------------------------------


async def ok(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """Four chunks, finish stop, and usage when asked for (stream_options.include_usage)."""
    yield _chunk(model, None, chat=chat) if chat else _chunk(model, "", chat=chat)
    for word in WORDS:
        yield _chunk(model, word, chat=chat)
    yield _chunk(model, None if chat else "", "stop", chat=chat)
    if (body.get("stream_options") or {}).get("include_usage"):
        yield _usage(model, 11, len(WORDS))
    yield DONE


async def timings(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """llama.cpp's server style: `timings` in the last chunk, no usage."""
    for word in WORDS:
        yield _chunk(model, word, chat=chat)
    yield _chunk(model, None, "stop", chat=chat, extra={"timings": {
        "prompt_n": 9, "prompt_ms": 30.0, "predicted_n": 4, "predicted_ms": 20.0, "predicted_per_second": 200.0}})
    yield DONE


async def counting(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """Numbers up to max_tokens, then finish length (a server that honours max_tokens)."""
    count = int(body.get("max_tokens") or 16)
    for i in range(count):
        yield _chunk(model, f" {i}", chat=chat)
    yield _chunk(model, None, "length", chat=chat)
    if (body.get("stream_options") or {}).get("include_usage"):
        yield _usage(model, 7, count)
    yield DONE


async def slow(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """A token every 50 ms, forever: only a timeout, a cancel or max_tokens on ggroute's side ends it."""
    i = 0
    while True:
        yield _chunk(model, f" w{i}", chat=chat)
        i += 1
        await asyncio.sleep(0.05)


async def looping(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """The same line forever, a token at a time (what the loop guard is for)."""
    while True:
        for piece in ("import", " random", "\n"):
            yield _chunk(model, piece, chat=chat)
        await asyncio.sleep(0)


async def stall_before(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """Headers, then silence for a minute before any token."""
    yield b": stub is thinking\n\n"
    await asyncio.sleep(60)
    yield DONE


async def stall_mid(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """Two tokens, then silence for a minute."""
    yield _chunk(model, "Hello", chat=chat)
    yield _chunk(model, ",", chat=chat)
    await asyncio.sleep(60)
    yield DONE


async def bad_json_first(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    yield b'data: {"id": "x", "choices": [{"delta": {"content": "Hel\n\n'
    yield DONE


async def bad_json_mid(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    yield _chunk(model, "Hello", chat=chat)
    yield b"data: {this is not json}\n\n"
    yield DONE


async def wrong_shape(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """Valid JSON, but its text is a number."""
    yield b'data: {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": ' \
          b'[{"index": 0, "delta": {"content": 42}, "finish_reason": null}]}\n\n'
    yield DONE


async def no_finish(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """Text, then the stream ends: no finish_reason, no [DONE]."""
    yield _chunk(model, "Hello", chat=chat)


async def garbage_sse(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """Bytes that are not server-sent events at all."""
    yield b"this is not an event stream\n\n\xff\xfe\x00 binary\n\n"


async def error_event(model: str, body: dict[str, Any], chat: bool) -> AsyncIterator[bytes]:
    """An error object inside the stream, before any token."""
    yield b'data: {"error": {"message": "out of memory on the GPU", "type": "server_error"}}\n\n'


BEHAVIOURS: dict[str, Any] = {
    "ok": ok, "timings": timings, "counting": counting, "slow": slow, "looping": looping,
    "stall-before": stall_before,
    "stall-mid": stall_mid, "bad-json-first": bad_json_first, "bad-json-mid": bad_json_mid,
    "wrong-shape": wrong_shape, "no-finish": no_finish, "error-event": error_event, "garbage-sse": garbage_sse,
    "not-streaming": "not-streaming",
    "http-400": 400, "http-401": 401, "http-429": 429, "http-500": 500, "http-503": 503,
}
