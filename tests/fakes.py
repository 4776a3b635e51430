"""Scripted fakes for pure-policy tests (docs: DESIGN.md, "Tests").

`ScriptedBackend` implements the backend contract (ggroute.models.backend.Backend) without an engine: each test
scripts what the "model" emits (text pieces, whether it ends with EndOfText, delays, a failure at token N) and
the fake records what the caller did with it (prompts prepared, max_tokens asked for, whether the stream was
closed early, how often the model was closed). Use it to test a policy (limits, stop strings, timeouts, exit
codes, logging, eviction) or to force a fault; behaviour tests use the real models.

`ScriptedLoader` (build one with `scripted_loader(coder=Script(...))`) is a `Loader`: the pool hands it real
`ModelSpec`s from the catalog (which reads the real GGUF headers; nothing is loaded) and it builds one
`ScriptedBackend` per load, recording loads and closes in order. Monkeypatch it over
`ggroute.models.backend.load_backend` to put it under the CLI or the pipeline.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ggroute.core.errors import GenerationError
from ggroute.models.backend import EndOfText, EventStream, Message, Prompt, PromptEvaluated, StopCheck, TextChunk
from ggroute.models.catalog import ModelCatalog, ModelSpec
from ggroute.models.config import SMOLLM2_PATH, parse_config
from ggroute.models.sampling import Sampling

if TYPE_CHECKING:
    from ggroute.models.backend import Backend, Loader

_POLL_S = 0.002  # how often scripted prompt processing polls should_stop()
_LOCK_WAIT_S = 5.0  # a stream left open (never closed) makes the next one fail instead of hanging the test


@dataclass(frozen=True)
class Script:
    """What a scripted model does on every request.

    pieces:        the text chunks it samples, one token each (a `TextChunk` scripts its own token count)
    repeat:        cycle through `pieces` forever (the caller must stop it: max_tokens, timeout, cancel)
    end_of_text:   end with EndOfText after the last piece (False: the stream just ends, which the contract
                   allows only when should_stop() turned true)
    token_delay_s: sleep before each text chunk (decode time)
    prefill_s:     prompt processing time before PromptEvaluated, polling should_stop(); when it turns true the
                   stream ends without any event, as the contract says. `math.inf`: until should_stop()
    fail_at_token: raise `error` instead of sampling text chunk N (1 = the first; 0 = during prompt processing)
    error:         the exception type raised at `fail_at_token`
    cached_tokens: prompt tokens reported as taken from the KV cache
    prompt_tokens: prompt length in tokens (default: one token per whitespace-separated word of the prompt)
    stop:          stop strings the "template" adds to Prompt.stop
    load_s:        reported load time
    """

    pieces: Sequence[str | TextChunk] = ("Hello", ",", " world", ".")
    repeat: bool = False
    end_of_text: bool = True
    token_delay_s: float = 0.0
    prefill_s: float = 0.0
    fail_at_token: int | None = None
    error: type[Exception] = GenerationError
    cached_tokens: int = 0
    prompt_tokens: int | None = None
    stop: tuple[str, ...] = ()
    load_s: float = 0.25

    @property
    def text(self) -> str:
        """Everything the pieces say, once through (what an unlimited request returns)."""
        return "".join(p.text if isinstance(p, TextChunk) else p for p in self.pieces)

    def chunks(self) -> Iterator[TextChunk]:
        chunks = [p if isinstance(p, TextChunk) else TextChunk(p) for p in self.pieces]
        return itertools.cycle(chunks) if self.repeat else iter(chunks)


@dataclass
class StreamRecord:
    """What happened to one `stream()` call, as the fake saw it."""

    prompt: Prompt
    max_tokens: int
    sampling: Sampling
    started: bool = False  # the caller asked for at least one event
    chunks: int = 0  # TextChunk events handed out
    tokens: int = 0  # tokens those chunks stood for
    prefill_stopped: bool = False  # should_stop() ended prompt processing
    ended_with_eot: bool = False
    exhausted: bool = False  # the script ran to its end (with or without EndOfText)
    closed: bool = False  # the stream ended or the caller closed it (the model is free again)
    closed_early: bool = False  # the caller closed it before the script ran out
    raised: Exception | None = None  # the scripted failure, when it fired
    # The stream itself, held so that only the caller's close() (not garbage collection) can close it early.
    events: EventStream | None = field(default=None, repr=False)


class ScriptedBackend:
    """A `Backend` that plays a `Script`; see the module docstring."""

    def __init__(self, spec: ModelSpec, script: Script | None = None,
                 events: list[tuple[str, str]] | None = None) -> None:
        self._spec = spec
        self.script = script or Script()
        self.events = events if events is not None else []
        self.prepared: list[str] = []
        self.streams: list[StreamRecord] = []
        self.closed = 0  # close() calls; the model is released on the first
        self._lock = threading.Lock()
        self.events.append(("load", spec.name))

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def load_s(self) -> float:
        return self.script.load_s

    def prepare(self, task: str) -> Prompt:
        task.encode("utf-8")  # as a real tokenizer's input must: text with lone surrogates fails here, as there
        self.prepared.append(task)
        text = self._spec.settings.completion_template.format(task=task)
        count = self.script.prompt_tokens if self.script.prompt_tokens is not None else len(text.split())
        return Prompt(text=text, tokens=list(range(count)), stop=self.script.stop)

    def prepare_conversation(self, messages: Sequence[Message]) -> Prompt:
        """Like a model without a chat template: the messages' texts, one paragraph each, as the task."""
        return self.prepare("\n\n".join(m.content for m in messages))

    def prepare_raw(self, text: str) -> Prompt:
        text.encode("utf-8")
        self.prepared.append(text)
        count = self.script.prompt_tokens if self.script.prompt_tokens is not None else len(text.split())
        return Prompt(text=text, tokens=list(range(count)), stop=self.script.stop)

    def stream(self, prompt: Prompt, max_tokens: int, sampling: Sampling, should_stop: StopCheck) -> EventStream:
        record = StreamRecord(prompt, max_tokens, sampling)
        self.streams.append(record)
        record.events = self._play(record, should_stop)
        return record.events

    def _play(self, record: StreamRecord, should_stop: StopCheck) -> EventStream:
        record.started = True
        if self.closed:
            raise GenerationError(f"scripted model '{self._spec.name}' was used after close()")
        if not self._lock.acquire(timeout=_LOCK_WAIT_S):
            raise GenerationError(f"scripted model '{self._spec.name}' is busy: an earlier stream was never closed")
        try:
            yield from self._events(record, should_stop)
        except GeneratorExit:
            record.closed_early = not record.exhausted
            raise
        finally:
            record.closed = True
            self._lock.release()

    def _events(self, record: StreamRecord, should_stop: StopCheck) -> EventStream:
        script = self.script
        self._fail_if(0, record)
        if not _prefill(script.prefill_s, should_stop):
            record.prefill_stopped = True
            return
        yield PromptEvaluated(cached_tokens=script.cached_tokens)
        for number, chunk in enumerate(script.chunks(), start=1):
            self._fail_if(number, record)
            if script.token_delay_s:
                time.sleep(script.token_delay_s)
            record.chunks += 1
            record.tokens += chunk.tokens
            yield chunk
        record.exhausted = True
        if script.end_of_text:
            record.ended_with_eot = True
            yield EndOfText()

    def _fail_if(self, token: int, record: StreamRecord) -> None:
        if self.script.fail_at_token == token:
            error = self.script.error(f"scripted failure at token {token} on model '{self._spec.name}'")
            record.raised = error
            raise error

    def close(self) -> None:
        self.closed += 1
        if self.closed == 1:
            self.events.append(("close", self._spec.name))


def _prefill(seconds: float, should_stop: StopCheck) -> bool:
    """Pretend to process the prompt for `seconds`; False when should_stop() turned true first."""
    deadline = time.perf_counter() + seconds
    while True:
        if should_stop():
            return False
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return True
        time.sleep(min(_POLL_S, remaining))


@dataclass
class ScriptedLoader:
    """A `Loader` building a `ScriptedBackend` per load: the model's script, else `default`."""

    scripts: Mapping[str, Script] = field(default_factory=dict)
    default: Script = field(default_factory=Script)
    events: list[tuple[str, str]] = field(default_factory=list)  # ("load" | "close", model name), in order
    models: dict[str, list[ScriptedBackend]] = field(default_factory=dict)  # every backend built, per name

    def __call__(self, spec: ModelSpec) -> ScriptedBackend:
        model = ScriptedBackend(spec, self.scripts.get(spec.name, self.default), self.events)
        self.models.setdefault(spec.name, []).append(model)
        return model

    def loads(self) -> list[str]:
        return [name for kind, name in self.events if kind == "load"]

    def closes(self) -> list[str]:
        return [name for kind, name in self.events if kind == "close"]

    def last(self, name: str) -> ScriptedBackend:
        """The backend most recently built for `name`."""
        return self.models[name][-1]


def scripted_loader(**scripts: Script) -> ScriptedLoader:
    """A loader whose models play the given scripts by model name (others play `Script()`)."""
    return ScriptedLoader(dict(scripts))


@functools.cache
def _coder_catalog() -> ModelCatalog:
    data = {"models": {"coder": {"path": SMOLLM2_PATH, "context_size": 1024, "max_tokens": 32}}}
    source = Path(tempfile.gettempdir()) / "ggroute-fakes" / "config.json"  # never read or written
    return ModelCatalog(parse_config(json.dumps(data), source))


def fake_spec(name: str = "coder", **settings: object) -> ModelSpec:
    """A real ModelSpec (SmolLM2's header, read once per session) with settings replaced, validated like
    config.json. Defaults: context_size 1024, max_tokens 32."""
    spec = _coder_catalog().spec_with("coder", settings)
    return spec if name == "coder" else dataclasses.replace(spec, name=name)


if TYPE_CHECKING:  # mypy checks the fakes against the contract they stand in for

    def _is_backend(model: ScriptedBackend) -> Backend:
        return model

    def _is_loader(loader: ScriptedLoader) -> Loader:
        return loader
