"""The app in-process through httpx's ASGI transport, its models played by the scripted fake (tests/fakes.py):
the error shapes and status codes of bad input, auth, the queue's 429. After every refusal the server still
serves a good request."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ggroute.models.backend import Backend
from ggroute.models.catalog import ModelSpec
from ggroute.models.config import load_config
from ggroute.server.app import create_app
from ggroute.server.service import Service
from tests.conftest import small_config
from tests.fakes import Script, ScriptedLoader

GOOD = {"model": "coder", "messages": [{"role": "user", "content": "Sort a list"}]}


@pytest.fixture
def make_client(write_config: Callable[..., Path], scripted_backends: Callable[..., ScriptedLoader],
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    services: list[Service] = []

    def make(script: Script | None = None, env_key: str | None = None, **server: object) -> httpx.AsyncClient:
        if env_key is not None:
            monkeypatch.setenv("GGROUTE_API_KEY", env_key)
        scripted_backends(coder=script or Script())
        service = Service(load_config(write_config(small_config(server=server))))
        services.append(service)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)), base_url="http://test")

    yield make
    for service in services:
        service.close()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _expect(client: httpx.AsyncClient, status: int, *, path: str = "/v1/chat/completions",
                  body: object = None, content: bytes | None = None, **kwargs: Any) -> dict[str, Any]:
    if content is None and body is not None:
        content = json.dumps(body).encode()
    response = await client.request("POST" if content is not None else "GET", path, content=content, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    good = await client.post("/v1/chat/completions", json=GOOD, headers=kwargs.get("headers"))
    assert good.status_code == 200, f"the server stopped serving after a {status}: {good.text}"
    return error


@pytest.mark.parametrize(("body", "param", "says"), [
    ({"model": "coder"}, "messages", "non-empty list"),
    ({"model": "coder", "messages": []}, "messages", "non-empty list"),
    ({"messages": GOOD["messages"]}, "model", "non-empty string"),
    ({"model": "coder", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role", "one of"),
    ({"model": "coder", "messages": [{"role": "user", "content": "  "}]}, "messages[0].content", "is empty"),
    ({"model": "coder", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "must be a string"),
    ({"model": "coder", "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
     "messages[1].role", "last message"),
    ({**GOOD, "max_tokens": 0}, "max_tokens", "at least 1"),
    ({**GOOD, "temperature": 3}, "temperature", "from 0.0 to 2.0"),
    ({**GOOD, "stream": "yes"}, "stream", "true or false"),
    ({**GOOD, "stop": [""]}, "stop", "non-empty string"),
    ({**GOOD, "timeout_s": -1}, "timeout_s", "above 0"),
])
def test_bad_fields_are_400_naming_the_field(make_client: Callable[..., Any], body: dict[str, Any], param: str,
                                             says: str) -> None:
    async def check() -> None:
        async with make_client() as client:
            error = await _expect(client, 400, body=body)
            assert error["param"] == param and says in error["message"] and error["type"] == "invalid_request_error"

    _run(check())


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 2}, "n"), ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"logprobs": True}, "logprobs"), ({"top_p": 0.5}, "top_p"), ({"frobnicate": 1}, "frobnicate"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages[0].name"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]"),
])
def test_unsupported_fields_are_400_saying_so(make_client: Callable[..., Any], extra: dict[str, Any],
                                              param: str) -> None:
    async def check() -> None:
        async with make_client() as client:
            error = await _expect(client, 400, body={**GOOD, **extra})
            assert error["param"] == param and error["code"] == "unsupported_parameter"
            assert "not supported" in error["message"]

    _run(check())


def test_values_that_mean_off_are_accepted(make_client: Callable[..., Any]) -> None:
    async def check() -> None:
        async with make_client() as client:
            body = {**GOOD, "n": 1, "logprobs": False, "tools": [], "top_p": None, "response_format": {"type": "text"},
                    "messages": [{"role": "developer", "content": "Be brief."},
                                 {"role": "user", "content": [{"type": "text", "text": "Sort a list"}]}]}
            response = await client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text

    _run(check())


def test_json_nested_too_deeply_is_a_400_not_a_crash(make_client: Callable[..., Any]) -> None:
    async def check() -> None:
        async with make_client() as client:  # 200 KB: under the default body limit
            error = await _expect(client, 400, content=b"[" * 100_000 + b"]" * 100_000)
            assert error["code"] == "invalid_json" and "too deeply" in error["message"]

    _run(check())


def test_malformed_json_and_oversized_bodies(make_client: Callable[..., Any]) -> None:
    async def check() -> None:
        async with make_client(max_body_bytes=2048) as client:
            error = await _expect(client, 400, content=b'{"model": "coder", "messages": [')
            assert error["code"] == "invalid_json" and "not valid JSON" in error["message"]
            error = await _expect(client, 400, content=b"[1, 2]")
            assert "JSON object" in error["message"]
            big = {**GOOD, "messages": [{"role": "user", "content": "x" * 4000}]}
            error = await _expect(client, 413, body=big)
            assert error["code"] == "request_too_large" and "2048 bytes" in error["message"]

            async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while it arrives
                yield b'{"model": "coder", "prompt": "'
                for _ in range(10):
                    yield b"y" * 500
                yield b'"}'

            response = await client.post("/v1/completions", content=chunked())
            assert response.status_code == 413 and "content-length" not in response.request.headers

    _run(check())


def test_unknown_model_and_unknown_path_are_404(make_client: Callable[..., Any]) -> None:
    async def check() -> None:
        async with make_client() as client:
            error = await _expect(client, 404, body={**GOOD, "model": "gpt-4"})
            assert error["code"] == "model_not_found" and "'gpt-4'" in error["message"] and "coder" in error["message"]
            error = await _expect(client, 404, body={**GOOD, "model": "auto"})  # this config has no router
            assert "router" in error["message"]
            error = await _expect(client, 404, path="/v1/embeddings", body={"input": "x"})
            assert error["code"] == "not_found"

    _run(check())


def test_error_messages_speak_json_and_name_the_endpoint_field(make_client: Callable[..., Any]) -> None:
    async def check() -> None:
        async with make_client() as client:
            error = await _expect(client, 400, body={**GOOD, "messages": [{"role": "user", "content": None}]})
            assert "(got null)" in error["message"] and "list of" in error["message"]  # no Python type names
            error = await _expect(client, 400, body={**GOOD, "top_p": 0.5})
            assert "unknown field" not in error["message"] and "models.NAME.top_p" in error["message"]
            error = await _expect(client, 400, path="/v1/completions",
                                  body={"model": "coder", "prompt": "word " * 2000})  # context_size 1024
            assert error["code"] == "context_length_exceeded" and error["param"] == "prompt"
            error = await _expect(client, 405, content=None, path="/v1/chat/completions")  # GET
            assert error["code"] == "method_not_allowed"
            error = await _expect(client, 404, path="/ggroute/models/auto/unload", content=b"")
            assert "not auto or a route" in error["message"] and "use 'auto'" not in error["message"]

    _run(check())


def test_a_model_is_retrieved_by_id_as_the_openai_client_does(make_client: Callable[..., Any]) -> None:
    async def check() -> None:
        async with make_client() as client:
            coder = await client.get("/v1/models/coder")
            assert coder.status_code == 200
            assert coder.json() == {"id": "coder", "object": "model", "created": 0, "owned_by": "ggroute",
                                    "ggroute": {"kind": "model", "model": "coder"}}
            error = await _expect(client, 404, path="/v1/models/gpt-4")
            assert error["code"] == "model_not_found" and "coder" in error["message"]

    _run(check())


def test_api_key_guards_everything_but_health(make_client: Callable[..., Any]) -> None:
    async def check() -> None:
        async with make_client(api_key="from-config") as client:
            assert (await client.get("/health")).status_code == 200
            for path in ("/", "/v1/models", "/ggroute/models"):
                response = await client.get(path)
                assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
            wrong = await client.post("/v1/chat/completions", json=GOOD, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and "wrong API key" in wrong.json()["error"]["message"]
            good = await client.post("/v1/chat/completions", json=GOOD,
                                     headers={"Authorization": "Bearer from-config"})
            assert good.status_code == 200
        async with make_client(env_key="from-env", api_key="from-config") as client:  # the variable wins
            assert (await client.get("/v1/models", headers={"Authorization": "Bearer from-env"})).status_code == 200
            assert (await client.get("/v1/models", headers={"Authorization": "Bearer from-config"})).status_code == 401

    _run(check())


def test_a_full_queue_is_429_with_retry_after_and_the_queue_is_fifo(make_client: Callable[..., Any]) -> None:
    slow = Script(pieces=("a",) * 10, token_delay_s=0.03)

    async def check() -> None:
        async with make_client(script=slow, queue_size=1) as client:
            async def ask(tag: str) -> httpx.Response:
                body = {**GOOD, "messages": [{"role": "user", "content": f"task {tag}"}]}
                return await client.post("/v1/chat/completions", json=body)

            first = asyncio.ensure_future(ask("1"))
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(ask("2"))
            await asyncio.sleep(0.05)
            third = await ask("3")  # one runs, one waits: no room
            assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
            assert f"retry in about {third.headers['retry-after']} s" in third.json()["error"]["message"]
            assert third.json()["error"]["code"] == "queue_full" and third.json()["error"]["type"] == "rate_limit_error"
            done = [await first, await second]
            assert [r.status_code for r in done] == [200, 200]
            waits = [r.json()["ggroute"]["queue_wait_s"] for r in done]
            assert waits[0] < 0.05 < waits[1]  # the second waited for the first

    _run(check())


def test_request_limits_are_capped_by_the_config(make_client: Callable[..., Any]) -> None:
    async def check() -> None:
        async with make_client(script=Script(pieces=("a",) * 100)) as client:  # config: max_tokens 32
            raised = await client.post("/v1/chat/completions", json={**GOOD, "max_tokens": 1000, "timeout_s": 1e6})
            info = raised.json()["ggroute"]
            assert info["limits"]["max_tokens"] == 32 and info["limits"]["timeout_s"] == 300.0
            assert raised.json()["usage"]["completion_tokens"] == 32
            lowered = await client.post("/v1/chat/completions", json={**GOOD, "max_tokens": 3, "stop": "zz"})
            assert lowered.json()["ggroute"]["limits"]["max_tokens"] == 3 and "zz" in lowered.json()["ggroute"][
                "limits"]["stop"]
            assert lowered.json()["choices"][0]["finish_reason"] == "length"

    _run(check())


def test_a_failing_model_is_500_in_the_openai_shape(make_client: Callable[..., Any]) -> None:
    async def check() -> None:
        async with make_client(script=Script(fail_at_token=0)) as client:
            response = await client.post("/v1/chat/completions", json=GOOD)
            assert response.status_code == 500
            error = response.json()["error"]
            assert error["type"] == "server_error" and error["code"] == "generation_error"
            assert "scripted failure" in error["message"]

    _run(check())



def test_models_status_and_unload(make_client: Callable[..., Any]) -> None:
    async def check() -> None:
        async with make_client() as client:
            status = (await client.get("/ggroute/models")).json()
            assert status["memory_budget_bytes"] == 8000 * 1_000_000 and status["used_bytes"] == 0
            coder = next(m for m in status["models"] if m["name"] == "coder")
            assert coder["loaded"] is False and coder["busy"] is False and coder["queued"] == 0
            assert coder["estimate_bytes"] > 0 and coder["context_size"] == 1024
            assert (await client.post("/v1/chat/completions", json=GOOD)).status_code == 200
            status = (await client.get("/ggroute/models")).json()
            assert next(m for m in status["models"] if m["name"] == "coder")["loaded"] is True
            assert status["used_bytes"] > 0
            unloaded = await client.post("/ggroute/models/coder/unload")
            assert unloaded.json() == {"model": "coder", "unloaded": True}
            again = await client.post("/ggroute/models/coder/unload")
            assert again.json() == {"model": "coder", "unloaded": False}  # not loaded: nothing to do
            error = await _expect(client, 404, path="/ggroute/models/nope/unload", content=b"")
            assert error["code"] == "model_not_found"
            listed = (await client.get("/v1/models")).json()
            assert [m["id"] for m in listed["data"]] == ["coder", "algorithm"]  # no router: no auto

    _run(check())


def test_shutdown_answers_queued_requests_503_and_cancels_the_running_one(make_client: Callable[..., Any]) -> None:
    slow = Script(pieces=("a",), repeat=True, token_delay_s=0.1)  # 32 tokens: 3.2 s, cancelled long before

    async def check() -> None:
        async with make_client(script=slow, queue_size=2) as client:
            service = client._transport.app.state.service  # type: ignore[attr-defined]
            running = asyncio.ensure_future(client.post("/v1/chat/completions", json={**GOOD, "max_tokens": 32}))
            await asyncio.sleep(0.1)
            waiting = asyncio.ensure_future(client.post("/v1/chat/completions", json=GOOD))
            await asyncio.sleep(0.1)
            busy = await client.post("/ggroute/models/coder/unload")
            assert busy.status_code == 409 and busy.json()["error"]["code"] == "model_busy"
            status = (await client.get("/ggroute/models")).json()
            assert next(m for m in status["models"] if m["name"] == "coder")["queued"] == 1
            service.begin_shutdown()
            refused, cancelled = await waiting, await running
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
            assert cancelled.status_code == 200
            assert cancelled.json()["choices"][0]["finish_reason"] == "cancelled"
            late = await client.post("/v1/chat/completions", json=GOOD)
            assert late.status_code == 503
            assert (await client.get("/health")).json() == {"status": "shutting_down"}

    _run(check())


def test_a_model_loading_does_not_hold_up_requests_to_a_loaded_one(
        write_config: Callable[..., Path], cached_headers: None) -> None:
    inner = ScriptedLoader()
    loading, release = threading.Event(), threading.Event()

    def slow_loader(spec: ModelSpec) -> Backend:
        if spec.name == "algorithm":
            loading.set()
            release.wait(10)  # a load taking seconds
        return inner(spec)

    service = Service(load_config(write_config(small_config())), slow_loader)

    async def check() -> None:
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.post("/v1/chat/completions", json=GOOD)).status_code == 200  # coder loaded
            slow = asyncio.ensure_future(client.post("/v1/chat/completions", json={**GOOD, "model": "algorithm"}))
            while not loading.is_set():
                await asyncio.sleep(0.01)
            status = (await client.get("/ggroute/models")).json()
            assert next(m for m in status["models"] if m["name"] == "algorithm")["loading"] is True
            served = await asyncio.wait_for(client.post("/v1/chat/completions", json=GOOD), 5)
            assert served.status_code == 200 and not slow.done()
            release.set()
            assert (await slow).status_code == 200

    try:
        _run(check())
    finally:
        release.set()
        service.close()
    assert inner.loads() == ["coder", "algorithm"]
