"""The real server process with the real models, spoken to with the official `openai` package (and httpx for
the raw stream). One server per module (queue_size 1); requests lower max_tokens to keep the module quick."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.server.conftest import ServerProcess, openai_client, wait_until

pytestmark = pytest.mark.slow

TASK = "Write a Python function that reverses a string."
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"  # SmolLM2 goes on counting: a long generation


def _ggroute(response: Any) -> dict[str, Any]:
    extra = response.model_extra or {}
    assert "ggroute" in extra, f"no ggroute object in {response}"
    return extra["ggroute"]


def test_auto_routes_and_answers_with_usage_and_the_ggroute_object(served: ServerProcess) -> None:
    client = openai_client(served)
    response = client.chat.completions.create(
        model="auto", max_tokens=12,
        messages=[{"role": "system", "content": "You are a terse assistant."}, {"role": "user", "content": TASK}],
    )
    info = _ggroute(response)
    assert info["route"] in ("coder", "algorithm") and response.model == info["model"]
    assert info["reason"] and info["model"] in ("coder", "algorithm")
    assert info["limits"]["max_tokens"] == 12  # the request lowered it
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = response.usage
    assert usage is not None and usage.prompt_tokens > 10 and 0 < usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert info["decode_tokens_per_s"] is None or info["decode_tokens_per_s"] > 0
    line = served.log_lines()[-1]  # one request-log line, like the CLI's, with the server's fields
    assert line["endpoint"] == "/v1/chat/completions" and line["requested_model"] == "auto"
    assert line["route"] == info["route"] and line["usage"]["completion_tokens"] == usage.completion_tokens


def test_streaming_chat_ends_with_usage_when_asked(served: ServerProcess) -> None:
    client = openai_client(served)
    chunks = list(client.chat.completions.create(
        model="coder", max_tokens=10, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": TASK}],
    ))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason in ("stop", "length")
    assert _ggroute(finish[0])["model"] == "coder" and _ggroute(finish[0])["route"] == "coder"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert 0 < last.usage.completion_tokens <= 10 and text.strip()


def test_raw_stream_is_openai_sse_ending_with_done(served: ServerProcess) -> None:
    body = {"model": "coder", "prompt": "def add(a, b):", "max_tokens": 6, "stream": True}
    with httpx.stream("POST", served.url + "/v1/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert sum(1 for c in chunks if c["choices"][0]["text"]) >= 1


def test_completions_take_the_prompt_as_it_is(served: ServerProcess) -> None:
    client = openai_client(served)
    response = client.completions.create(model="coder", prompt="def add(a, b):\n    return", max_tokens=4)
    assert response.object == "text_completion" and response.choices[0].finish_reason in ("stop", "length")
    assert response.usage is not None and response.usage.prompt_tokens < 20  # no chat template around it


def test_a_conversation_goes_through_the_chat_template(served: ServerProcess) -> None:
    client = openai_client(served)
    system = {"role": "system", "content": "Answer in one word."}
    one = client.chat.completions.create(model="coder", max_tokens=1,
                                         messages=[system, {"role": "user", "content": "Hi"}])
    turns = client.chat.completions.create(model="coder", max_tokens=1, messages=[
        system, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Hi"}])
    default = client.chat.completions.create(model="coder", max_tokens=1,
                                             messages=[{"role": "user", "content": "Hi"}])
    assert one.usage is not None and turns.usage is not None and default.usage is not None
    # Each message adds its text plus the template's role markers (<|im_start|>assistant ... <|im_end|>\n).
    assert turns.usage.prompt_tokens >= one.usage.prompt_tokens + 8
    # Without a system message SmolLM2's template writes its own (a longer one): the request's replaced it.
    assert default.usage.prompt_tokens > one.usage.prompt_tokens


def test_unknown_model_is_not_found_and_names_the_choices(served: ServerProcess) -> None:
    client = openai_client(served)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": TASK}])
    error = info.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found" and error["param"] == "model"
    assert "auto" in error["message"] and "coder" in error["message"]
    ids = {m.id for m in client.models.list().data}
    assert {"auto", "router", "coder", "algorithm"} <= ids


def test_prompt_over_the_context_is_400_naming_the_context_length(served: ServerProcess) -> None:
    client = openai_client(served)
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="coder", prompt="word " * 1500, max_tokens=4)
    assert info.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
    assert "context_size 1024" in str(info.value)
    assert client.completions.create(model="coder", prompt="x = 1", max_tokens=1).choices  # still serving


def test_timeout_ends_with_the_partial_text(served: ServerProcess) -> None:
    client = openai_client(served)
    response = client.completions.create(model="coder", prompt=COUNTING, max_tokens=400,
                                         extra_body={"timeout_s": 1.5})
    assert response.choices[0].finish_reason == "timeout"
    assert response.choices[0].text and _ggroute(response)["limits"]["timeout_s"] == 1.5
    assert response.usage is not None and 0 < response.usage.completion_tokens < 400


def test_full_queue_is_429_and_a_disconnect_frees_the_model(served: ServerProcess) -> None:
    """A long stream holds the coder; one request waits (queue_size 1); the next is refused with 429 and
    Retry-After. Closing the stream stops its generation: the waiting request is served at once."""
    before = len(served.log_lines())
    client = openai_client(served)
    queued: dict[str, Any] = {}

    def wait_in_queue() -> None:
        queued["response"] = client.completions.create(model="coder", prompt="x =", max_tokens=2)

    stream = client.completions.create(model="coder", prompt=COUNTING, max_tokens=400, stream=True)
    chunks = iter(stream)
    for _ in range(3):  # the generation is under way
        next(chunks)
    waiter = threading.Thread(target=wait_in_queue)
    waiter.start()
    with httpx.Client(timeout=60) as http:
        assert wait_until(lambda: _coder(http, served)["queued"] == 1)
        with pytest.raises(openai.RateLimitError) as info:
            client.completions.create(model="coder", prompt="x =", max_tokens=2)
        assert int(info.value.response.headers["retry-after"]) >= 1
        assert info.value.body["code"] == "queue_full"  # type: ignore[index]
        stream.close()  # the client leaves, long before 400 tokens
        waiter.join(30)
        assert "response" in queued and queued["response"].choices[0].text is not None
        assert _ggroute(queued["response"])["queue_wait_s"] > 0
        assert wait_until(lambda: not _coder(http, served)["busy"])
    lines_logged = served.log_lines()[before:]
    cancelled = [line for line in lines_logged if line["finish_reason"] == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["usage"]["completion_tokens"] < 400
    assert cancelled[0]["stream"] is True and lines_logged[-1]["queue_wait_s"] > 0


def test_a_client_that_gives_up_in_the_queue_is_logged_cancelled(served: ServerProcess) -> None:
    client = openai_client(served)
    stream = client.completions.create(model="coder", prompt=COUNTING, max_tokens=400, stream=True)
    chunks = iter(stream)
    next(chunks)  # the coder is busy
    body = {"model": "coder", "prompt": "x =", "max_tokens": 2, "user": "gave-up-in-queue"}
    with httpx.Client(timeout=60) as http:
        with pytest.raises(httpx.ReadTimeout):  # waits behind the stream, then leaves
            http.post(served.url + "/v1/completions", json=body, timeout=1.5)
        stream.close()
        assert wait_until(lambda: not _coder(http, served)["busy"] and _coder(http, served)["queued"] == 0)
    assert wait_until(lambda: any(line.get("user") == "gave-up-in-queue" for line in served.log_lines()))
    line = next(line for line in served.log_lines() if line.get("user") == "gave-up-in-queue")
    assert line["finish_reason"] == "cancelled" and line["cancelled_in"] == "queue" and line["model"] == "coder"
    assert line["endpoint"] == "/v1/completions" and line["queue_wait_s"] >= 1.0


def _coder(http: httpx.Client, served: ServerProcess) -> dict[str, Any]:
    models = http.get(served.url + "/ggroute/models").json()["models"]
    return next(m for m in models if m["name"] == "coder")


def test_status_page_shows_models_and_recent_requests(served: ServerProcess) -> None:
    page = httpx.get(served.url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for outside in ("<script", "src=", 'href="http', "url(", "@import"):  # no JavaScript, nothing fetched
        assert outside not in html
    for name in ("router", "coder", "algorithm"):
        assert f"<td>{name}</td>" in html
    assert "Last requests" in html and "No requests yet" not in html


def test_status_page_screenshot_looks_like_a_page(served: ServerProcess, tmp_path: Path) -> None:
    """As a person would see it: headless Chromium's screenshot of the page (benchmarks/status_page_screenshot.py)."""
    from benchmarks.status_page_screenshot import check_page, find_chromium

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the status page screenshot is not checked")
    openai_client(served).completions.create(model="coder", prompt="x =", max_tokens=2)  # a request to show
    out = tmp_path / "status.png"
    assert check_page(served.url, out, chromium) == []
    shutil.copy(out, Path(tempfile.gettempdir()) / "ggroute-status-page.png")  # to look at after the run
