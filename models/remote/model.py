"""A model on an OpenAI-compatible server: the `Backend` contract (models/backend.py) over HTTP.

Nothing is rendered or tokenized here: a chat prompt goes out as messages (the server applies its own chat
template), a completion prompt as text. The server generates; `Generation` (models/generate.py) enforces
max_tokens, stop strings, the loop guard, the timeout and Ctrl+C as for a local model, closing the stream, which
closes the HTTP response. Requests are not serialised here: the server has its own queue.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ggroute.core.errors import ConfigError
from ggroute.models.backend import EventStream, Message, Prompt, StopCheck
from ggroute.models.catalog import RemoteSpec
from ggroute.models.remote.stream import Where, read_events
from ggroute.models.sampling import Sampling

if TYPE_CHECKING:
    import openai


class RemoteModel:
    """A client for one remote model; `close()` (idempotent) closes its connections."""

    def __init__(self, spec: RemoteSpec, client: openai.OpenAI, load_s: float) -> None:
        self._spec = spec
        self.client = client
        self._load_s = load_s
        self._closed = False
        s = spec.settings
        self.where = Where(spec.name, spec.base_url, s.connect_timeout_s, s.read_timeout_s)

    @property
    def spec(self) -> RemoteSpec:
        return self._spec

    @property
    def load_s(self) -> float:
        return self._load_s

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.client.close()

    # --- prompts ------------------------------------------------------------------------------------------

    def prepare(self, task: str) -> Prompt:
        return self.prepare_conversation([Message("user", task)])

    def prepare_conversation(self, messages: Sequence[Message]) -> Prompt:
        settings = self._spec.settings
        if settings.prompt_format == "completion":  # "auto" and "chat": the server's chat template
            task = "\n\n".join(m.content for m in messages)
            return self.prepare_raw(settings.completion_template.replace("{task}", task))
        chat = list(messages)
        if settings.system_prompt and not any(m.role == "system" for m in chat):
            chat.insert(0, Message("system", settings.system_prompt))
        preview = "\n\n".join(f"{m.role}: {m.content}" for m in chat)
        return Prompt(preview, [], messages=tuple(chat))

    def prepare_raw(self, text: str) -> Prompt:
        text.encode("utf-8")  # text with lone surrogates fails here, as with a local tokenizer
        return Prompt(text, [])

    # --- generation ---------------------------------------------------------------------------------------

    def stream(self, prompt: Prompt, max_tokens: int, sampling: Sampling, should_stop: StopCheck) -> EventStream:
        request = self._request(max_tokens, sampling)
        if prompt.messages is not None:
            messages: Any = [{"role": m.role, "content": m.content} for m in prompt.messages]
            return read_events(lambda: self.client.chat.completions.create(messages=messages, **request),
                               self.where, should_stop)
        return read_events(lambda: self.client.completions.create(prompt=prompt.text, **request), self.where,
                           should_stop)

    def _request(self, max_tokens: int, sampling: Sampling) -> dict[str, Any]:
        """The OpenAI API's own sampling fields only: the other samplers are the server's settings."""
        request: dict[str, Any] = {
            "model": self._spec.upstream_model, "max_tokens": max_tokens, "temperature": sampling.temperature,
            "top_p": sampling.top_p, "presence_penalty": sampling.presence_penalty,
            "frequency_penalty": sampling.frequency_penalty, "stream": True,
            "stream_options": {"include_usage": True},  # usage in a last chunk, from servers that support it
        }
        if sampling.temperature > 0:
            request["seed"] = sampling.seed
        return request


NO_KEY = "no-key"  # sent when no api_key_env is configured: servers started without a key ignore it


def api_key(spec: RemoteSpec) -> str:
    """The key from the environment variable api_key_env names; NO_KEY when none is configured."""
    name = spec.settings.api_key_env
    if name is None:
        return NO_KEY
    key = os.environ.get(name, "")
    if not key:
        raise ConfigError(f"model '{spec.name}': api_key_env names ${name}, which is not set (or empty) in this "
                          f"environment: export {name}=<the key for {spec.base_url}>, or remove api_key_env if the "
                          "server needs no key")
    return key


def make_client(spec: RemoteSpec) -> openai.OpenAI:
    import openai

    s = spec.settings
    timeout = openai.Timeout(None, connect=s.connect_timeout_s, read=s.read_timeout_s, write=s.read_timeout_s,
                             pool=s.connect_timeout_s)
    # Always an explicit key: the client must never pick up $OPENAI_API_KEY on its own. No retries: a failure
    # before the first token is the route's fallback's to handle, visibly.
    key = api_key(spec)
    try:
        return openai.OpenAI(base_url=spec.base_url, api_key=key, timeout=timeout, max_retries=0)
    except openai.OpenAIError as exc:
        raise ConfigError(f"model '{spec.name}': the OpenAI client refused its settings: {exc}") from None


def connect_remote_model(spec: RemoteSpec) -> RemoteModel:
    """"Load" a remote model: check its key and build its client (nothing is sent until a request)."""
    started = time.perf_counter()
    client = make_client(spec)
    return RemoteModel(spec, client, time.perf_counter() - started)
