"""Request bodies of /v1/chat/completions and /v1/completions, checked field by field.

Every refusal is a 400 naming the field (`param`). A field ggroute does not implement is refused as unsupported,
never ignored, unless its value means "off" (`"n": 1`, `"logprobs": false`, `"tools": []`); `null` counts as
absent, as in the OpenAI API. docs/server.md lists the fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Literal

from ggroute.models.backend import Conversation, Message, RawText, TaskInput
from ggroute.server.errors import bad_request, unsupported

Kind = Literal["chat", "completion"]

COMMON_FIELDS = {"model", "stream", "stream_options", "max_tokens", "stop", "temperature", "seed", "user",
                 "timeout_s"}
CHAT_FIELDS = COMMON_FIELDS | {"messages", "max_completion_tokens"}
COMPLETION_FIELDS = COMMON_FIELDS | {"prompt"}
# Fields ggroute does not implement, with the values that mean "off" (accepted, since they change nothing).
OFF_VALUES: dict[str, list[object]] = {
    "n": [1], "logprobs": [False], "top_logprobs": [0], "tools": [[]], "tool_choice": ["none"], "functions": [[]],
    "parallel_tool_calls": [True, False], "response_format": [{"type": "text"}], "logit_bias": [{}], "echo": [False],
    "best_of": [1], "suffix": [""],
}
# OpenAI sampling fields a request cannot set: the model's values in config.json apply.
MODEL_SAMPLING = {key: f"{key} is the model's setting in config.json (models.NAME.{key}); a request can set "
                  "temperature and seed" for key in ("top_p", "presence_penalty", "frequency_penalty")}
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class ParsedRequest:
    kind: Kind
    model: str  # "auto", a route or a model name
    task: TaskInput
    route_text: str  # what "auto" routes: the last user message, or the prompt
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    seed: int | None = None
    timeout_s: float | None = None
    user: str | None = None


def parse_body(raw: bytes, kind: Kind) -> ParsedRequest:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:  # Python's parser gives up on arrays or objects nested a few thousand deep
        raise bad_request("the request body nests arrays or objects too deeply to parse; send the OpenAI request "
                          "shape (docs/server.md)", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_json")
    body = {k: v for k, v in body.items() if v is not None}
    allowed = CHAT_FIELDS if kind == "chat" else COMPLETION_FIELDS
    for key, value in body.items():
        if key in allowed:
            continue
        if key in OFF_VALUES and value in OFF_VALUES[key]:
            continue
        raise unsupported(key, "" if key in OFF_VALUES else MODEL_SAMPLING.get(key, "unknown field"))
    task: TaskInput
    if kind == "chat":
        task = conversation = _conversation(body)
        route_text = next(m.content for m in reversed(conversation.messages) if m.role == "user")
        max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    else:
        task = RawText(_prompt(body))
        route_text = task.text
        max_tokens = _positive_int(body, "max_tokens")
    return ParsedRequest(
        kind=kind, model=_string(body, "model", required=True) or "", task=task, route_text=route_text,
        stream=_bool(body, "stream"), include_usage=_include_usage(body), max_tokens=max_tokens, stop=_stop(body),
        temperature=_number(body, "temperature", 0.0, 2.0), seed=_seed(body),
        timeout_s=_timeout(body), user=_string(body, "user"),
    )


def _conversation(body: dict[str, object]) -> Conversation:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list of {role, content} objects", param="messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"'{where}' must be an object with 'role' and 'content'", param=where)
        for key in message:
            if key not in ("role", "content") and message[key] is not None:
                raise unsupported(f"{where}.{key}")
        role = message.get("role")
        if role in ("tool", "function"):
            raise unsupported(f"{where}.role", f"role '{role}' (tool calls)")
        if role not in ROLES:
            raise bad_request(f"'{where}.role' must be one of {', '.join(ROLES)} (got {json.dumps(role)})",
                              param=f"{where}.role")
        out.append(Message(ROLES[str(role)], _content(message.get("content"), f"{where}.content")))  # type: ignore[arg-type]
    if out[-1].role != "user":
        raise bad_request(f"the last message must have role 'user' (messages[{len(out) - 1}] has role "
                          f"'{out[-1].role}')", param=f"messages[{len(out) - 1}].role")
    return Conversation(tuple(out))


def _json_type(value: object) -> str:
    """A value's type in JSON's words, for messages about a request body."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _content(content: object, where: str) -> str:
    if isinstance(content, list):  # content parts: text only
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else _json_type(part)
                raise unsupported(f"{where}[{j}]", f"content part of type {json.dumps(kind)} (only text)")
            texts.append(part["text"])
        content = "".join(texts)
    if not isinstance(content, str):
        raise bad_request(f"'{where}' must be a string or a list of {{\"type\": \"text\", \"text\": ...}} parts "
                          f"(got {_json_type(content)})", param=where)
    if not content.strip():
        raise bad_request(f"'{where}' is empty", param=where)
    return content


def _prompt(body: dict[str, object]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise unsupported("prompt", "a list of prompts or token ids (send one string)")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request("'prompt' must be a string", param="prompt")
    if not prompt.strip():
        raise bad_request("'prompt' is empty", param="prompt")
    return prompt


def _string(body: dict[str, object], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise bad_request(f"'{key}' must be a non-empty string", param=key)
    return value


def _bool(body: dict[str, object], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise bad_request(f"'{key}' must be true or false", param=key)
    return value


def _include_usage(body: dict[str, object]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", param="stream_options")
    for key in options:
        if key != "include_usage":
            raise unsupported(f"stream_options.{key}")
    return _bool(options, "include_usage")


def _positive_int(body: dict[str, object], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"'{key}' must be an integer of at least 1", param=key)
    return value


def _number(body: dict[str, object], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad_request(f"'{key}' must be a number from {low} to {high}", param=key)
    return float(value)


def _seed(body: dict[str, object]) -> int | None:
    value = body.get("seed")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise bad_request("'seed' must be an integer from 0 to 2**32 - 1", param="seed")
    return value


def _timeout(body: dict[str, object]) -> float | None:
    value = body.get("timeout_s")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise bad_request("'timeout_s' must be a number of seconds above 0", param="timeout_s")
    return float(value)


def _stop(body: dict[str, object]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise bad_request("'stop' must be a non-empty string or a list of them", param="stop")
    return tuple(stops)

