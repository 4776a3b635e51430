"""Errors as the OpenAI API shapes them: `{"error": {"message", "type", "param", "code"}}` with an HTTP status.

`ApiError` is what the server raises for a request it refuses; `from_ggroute` translates the error tree of
core/errors.py at this boundary (the CLI does the same with exit codes). docs/server.md has the table.
"""

from __future__ import annotations

import math
import re

from starlette.responses import JSONResponse

from ggroute.core.errors import (
    ConfigError,
    GgrouteError,
    OverBudgetError,
    PoolBusyError,
    PromptTooLongError,
    UnknownModelError,
    UpstreamError,
    UsageError,
)

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
UPSTREAM_OVER_QUEUE = (429, 503)  # an engine saying it is over its queue (models/remote/stream.py reads them so)


class ApiError(Exception):
    """A refused request: its status, the OpenAI error fields and any headers (Retry-After)."""

    def __init__(self, status: int, message: str, *, type: str = INVALID_REQUEST, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def unsupported(param: str, why: str = "") -> ApiError:
    detail = f": {why}" if why else ""
    return ApiError(400, f"'{param}' is not supported by ggroute serve{detail} (docs/server.md lists the fields)",
                    param=param, code="unsupported_parameter")


def unknown_model(name: str, known: list[str]) -> ApiError:
    return ApiError(404, f"the model '{name}' does not exist: use 'auto', a route or a model name "
                    f"({', '.join(known)}); GET /v1/models lists them", param="model", code="model_not_found")


def retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def from_ggroute(exc: GgrouteError, retry_after_s: float = 5.0, prompt_field: str = "messages") -> ApiError:
    """The HTTP answer to an error raised below the server; `prompt_field` is the endpoint's (messages, prompt)."""
    message = str(exc)
    if isinstance(exc, PromptTooLongError):
        return ApiError(400, message, param=prompt_field, code="context_length_exceeded")
    if isinstance(exc, UnknownModelError):
        return ApiError(404, message, param="model", code="model_not_found")
    if isinstance(exc, UsageError):
        return ApiError(400, message)
    if isinstance(exc, PoolBusyError):
        return ApiError(503, message, type=SERVER_ERROR, code="pool_busy", headers=retry_after(retry_after_s))
    if isinstance(exc, UpstreamError):  # a remote model's engine failed: the server is a gateway to it
        if exc.status in UPSTREAM_OVER_QUEUE:
            return ApiError(503, message, type=SERVER_ERROR, code="upstream_over_queue",
                            headers=retry_after(retry_after_s))
        return ApiError(502, message, type=SERVER_ERROR, code="upstream_error")
    if isinstance(exc, OverBudgetError):
        return ApiError(500, message, type=SERVER_ERROR, code="over_memory_budget")
    if isinstance(exc, ConfigError):
        return ApiError(500, message, type=SERVER_ERROR, code="config_error")
    code = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()  # GenerationError -> generation_error
    return ApiError(500, message, type=SERVER_ERROR, code=code)
