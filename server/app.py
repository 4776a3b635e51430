"""The HTTP face: a Starlette app with the OpenAI endpoints, ggroute's own and the status page.

    POST /v1/chat/completions   POST /v1/completions   GET /v1/models   GET /health
    GET /ggroute/models         POST /ggroute/models/{name}/unload      GET /   (status page)

Errors are OpenAI-shaped (server/errors.py); streams are server-sent events in the OpenAI chunk format, ending
with `data: [DONE]`, written by sse-starlette.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ggroute.server import responses
from ggroute.server.errors import ApiError, unknown_model
from ggroute.server.protocol import Kind, parse_body
from ggroute.server.service import SHUTDOWN_GRACE_S, ClientGone, Job, Service
from ggroute.server.status_page import render_status_page

log = logging.getLogger("ggroute.server")
OPEN_PATHS = {"/health"}  # answered without the API key


class ApiKeyMiddleware:
    """401 in the OpenAI shape for every path but /health when a key is set and the request lacks it."""

    def __init__(self, app: ASGIApp, key: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode() if key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is not None and scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                message = "missing API key" if not given else "wrong API key"
                error = ApiError(401, f"{message}: send the header 'Authorization: Bearer KEY' with the key from "
                                 "server.api_key or $GGROUTE_API_KEY", type="authentication_error",
                                 code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be larger than `limit` bytes."""
    too_large = ApiError(413, f"the request body is larger than {limit} bytes (server.max_body_bytes)",
                         code="request_too_large")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def create_app(service: Service) -> Starlette:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "shutting_down" if service.closing else "ok"})

    def model_object(model_id: str) -> dict[str, object]:
        routes = service.routes
        kind = "auto" if model_id == "auto" else "route" if model_id in routes else "model"
        runs_on = routes.get(model_id, model_id if kind == "model" else None)
        return {"id": model_id, "object": "model", "created": 0, "owned_by": "ggroute",
                "ggroute": {"kind": kind, "model": runs_on}}

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [model_object(m) for m in service.model_ids()]})

    async def retrieve_model(request: Request) -> Response:
        model_id = request.path_params["model_id"]
        if model_id not in service.model_ids():
            raise unknown_model(model_id, service.model_ids())
        return JSONResponse(model_object(model_id))

    async def chat(request: Request) -> Response:
        return await generate(request, "chat", "/v1/chat/completions")

    async def completions(request: Request) -> Response:
        return await generate(request, "completion", "/v1/completions")

    async def generate(request: Request, kind: Kind, endpoint: str) -> Response:
        parsed = parse_body(await read_body(request, service.settings.max_body_bytes), kind)
        disconnected = request.is_disconnected
        try:
            decision = await service.decide(parsed, disconnected)
            job = await service.start(parsed, decision, endpoint, disconnected)
        except ClientGone:
            return Response(status_code=499)  # nobody reads it; uvicorn's access log shows it
        ids = responses.ResponseIds(kind, job.model or decision.model)  # a route's fallback may answer
        if parsed.stream:
            return EventSourceResponse(stream(job, ids), sep="\n", ping=15,
                                       shutdown_grace_period=SHUTDOWN_GRACE_S)
        try:
            event, payload = await service.next_event(job, disconnected)
        except ClientGone:
            return Response(status_code=499)
        if event == "error":
            raise service.api_error(payload, kind)
        assert job.result is not None  # "done" is the only other event of a request that does not stream
        info = responses.ggroute_info(job.result, decision, job.queue_wait_s)
        return JSONResponse(responses.full_response(ids, job.result, info))

    async def stream(job: Job, ids: responses.ResponseIds) -> AsyncIterator[str]:
        finished = False
        try:
            first = responses.first_chunk(ids)
            if first is not None:
                yield json.dumps(first)
            while True:
                event, payload = await job.events.get()
                if event == "text":
                    yield json.dumps(responses.text_chunk(ids, str(payload)))
                elif event == "done":
                    assert job.result is not None
                    info = responses.ggroute_info(job.result, job.decision, job.queue_wait_s)
                    for chunk in responses.final_chunks(ids, job.result, info, job.request.include_usage):
                        yield json.dumps(chunk)
                    break
                elif event == "error":  # after the stream began: an error event, as the OpenAI API sends
                    yield json.dumps(service.api_error(payload, job.request.kind).body())
                    break
            finished = True
            yield "[DONE]"
        finally:
            if not finished:  # the client went away: stop generating at the next token
                job.cancel.set()

    async def models_status(request: Request) -> Response:
        return JSONResponse(service.models_status())

    async def unload(request: Request) -> Response:
        return JSONResponse(service.unload(request.path_params["name"]))

    async def status_page(request: Request) -> Response:
        return HTMLResponse(render_status_page(service.models_status(), list(service.recent), service.closing))

    routes = [
        Route("/", status_page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", retrieve_model, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/ggroute/models", models_status, methods=["GET"]),
        Route("/ggroute/models/{name}/unload", unload, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers=_exception_handlers())
    app.add_middleware(ApiKeyMiddleware, key=service.api_key)
    app.state.service = service
    return app


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _exception_handlers() -> dict[int | type[Exception], Handler]:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: f"no endpoint {request.url.path}", 405: f"{request.method} is not allowed on "
                   f"{request.url.path}"}.get(exc.status_code, str(exc.detail))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return ApiError(exc.status_code, message, code=code,
                        headers=dict(exc.headers or {})).response()

    async def internal(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s", request.url.path, exc_info=exc)
        return ApiError(500, f"internal error: {exc!r}", type="server_error").response()

    return {ApiError: api_error, HTTPException: http_error, Exception: internal}
