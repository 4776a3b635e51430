"""Generate with one model under its limits: max_tokens, stop strings plus the model's end-of-text, and a
wall-clock timeout over the whole request (prompt processing included: the backend polls the deadline).

Works on any `Backend` (models/backend.py); figures are measured here, the same way for every backend, except
that a remote engine's own usage and timing figures (`EngineFigures`) are taken when it sends them (the result's
`remote` says which were)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ggroute.core.code import CodeEndWatch, asked_functions
from ggroute.core.errors import GenerationError, PromptTooLongError
from ggroute.core.tasks import validate_task
from ggroute.core.text import repair_text
from ggroute.models.backend import (
    Backend,
    Conversation,
    EndOfText,
    EngineFigures,
    EventStream,
    LengthReached,
    Message,
    PromptEvaluated,
    RawText,
    StreamEvent,
    TaskInput,
    prepare_input,
)
from ggroute.models.catalog import RemoteSpec
from ggroute.models.loop_guard import Loop, LoopGuard
from ggroute.models.metrics import (
    Fallback,
    FigureSource,
    FinishReason,
    GenerationResult,
    Limits,
    Remote,
    Repetition,
    Timings,
    Usage,
    rate,
)
from ggroute.models.sampling import Sampling

_PREVIEW_CHARS = 200


@dataclass
class _Counts:
    """What the stream delivered, for the figures."""

    cached: int = 0
    sampled: int = 0
    completion: int = 0
    t_first: float | None = None
    t_last: float | None = None
    engine: EngineFigures | None = None
    early: list[tuple[StreamEvent, float]] = field(default_factory=list)  # events `start()` took in advance


@dataclass(frozen=True)
class RequestOptions:
    """Per-request overrides of the model's configured limits and sampling."""

    max_tokens: int | None = None
    timeout_s: float | None = None
    temperature: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()  # stop strings in addition to the model's
    stop_after_code: bool = False  # stop once the answer's Python code block has closed (see core/code.py)
    # With stop_after_code, and a task that asks for functions by signature: also stop before what follows them.
    stop_after_asked: bool = True
    loop_guard: bool = True  # False: no loop guard for this request, whatever the model's config says


def validate_input(task: TaskInput) -> TaskInput:
    """`validate_task` for every kind of input: text made UTF-8-safe, an empty task or text a UsageError."""
    if isinstance(task, Conversation):
        return Conversation(tuple(Message(m.role, repair_text(m.content)[0]) for m in task.messages))
    if isinstance(task, RawText):
        return RawText(validate_task(task.text))
    return validate_task(task)


class StopScanner:
    """Finds stop strings in the text stream and holds back a tail that could still become one.

    Generation stops at the first stop string to be complete, wherever the chunk boundaries fall: the earliest
    end wins, and of the stop strings ending there, the longest (the earliest start). Empty strings are ignored.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.text = ""
        self.emitted = 0

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add text; return (text safe to emit now, whether a stop string was hit)."""
        # No stop string was complete before `piece`: one complete now ends in it, so starts at most `hold` before.
        search_from = max(0, len(self.text) - self.hold)
        self.text += piece
        ends = [i + len(s) for s in self.stops if (i := self.text.find(s, search_from)) >= 0]
        if ends:  # cut at the start of the first to complete; of several ending there, the longest
            starts = [self.text.find(s, search_from, min(ends)) for s in self.stops]
            self.text = self.text[: min(i for i in starts if i >= 0)]
            return self._flush(len(self.text)), True
        return self._flush(max(self.emitted, len(self.text) - self.hold)), False

    def finish(self) -> str:
        return self._flush(len(self.text))

    def _flush(self, upto: int) -> str:
        out = self.text[self.emitted : upto]
        self.emitted = max(self.emitted, upto)
        return out


class Generation:
    """Iterate to stream text pieces; `result` is set once iteration ends."""

    def __init__(
        self,
        model: Backend,
        task: TaskInput,
        options: RequestOptions | None = None,
        *,
        cancel: threading.Event | None = None,
        started: float | None = None,
        load_s: float | None = None,
        evicted: list[str] | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        self.model = model
        self.fallback = fallback
        self.task = validate_input(task)
        settings = model.spec.settings
        options = options or RequestOptions()
        self.started = started if started is not None else time.perf_counter()
        self.cancel = cancel or threading.Event()
        self.load_s = load_s
        self.evicted = evicted or []
        self.prompt = prepare_input(model, self.task)
        self.sampling = Sampling.of(settings).with_overrides(options.temperature, options.seed)
        self.stop_after_code = options.stop_after_code
        self.stop_after_asked = options.stop_after_asked
        self.loop_guard = options.loop_guard
        self.limits = Limits(
            max_tokens=options.max_tokens or settings.max_tokens,
            timeout_s=options.timeout_s or settings.timeout_s,
            context_size=settings.context_size,
            stop=list(dict.fromkeys([*settings.stop, *self.prompt.stop, *options.stop])),
        )
        if len(self.prompt.tokens) >= settings.context_size:
            raise PromptTooLongError(model.spec.name, len(self.prompt.tokens), settings.context_size)
        self.result: GenerationResult | None = None
        self._events: EventStream | None = None
        self._counts = _Counts()
        self._t_prefill: float | None = None

    def __iter__(self) -> Iterator[str]:
        return self._run()

    def start(self) -> None:
        """Begin generating and wait for the first token (or the end), so that a failure before any text raises
        here, where the caller may still run the request on another model (a route's fallback). Optional: the
        iteration starts the stream itself otherwise. The events taken here are replayed with their times."""
        if self._events is not None or self._interrupted() is not None:
            return
        self._t_prefill = time.perf_counter()
        self._events = events = self._open()
        try:
            for event in events:
                self._counts.early.append((event, time.perf_counter()))
                if not isinstance(event, PromptEvaluated | EngineFigures):
                    break
        except BaseException:
            events.close()
            raise

    def _open(self) -> EventStream:
        room = min(self.limits.max_tokens, self.limits.context_size - len(self.prompt.tokens))
        return self.model.stream(self.prompt, room, self.sampling, lambda: self._interrupted() is not None)

    def _timed(self, events: EventStream) -> Iterator[tuple[StreamEvent, float]]:
        early, self._counts.early = self._counts.early, []
        yield from early
        for event in events:
            yield event, time.perf_counter()

    def run(self) -> GenerationResult:
        for _ in self:
            pass
        if self.result is None:  # iteration ended without setting it: a bug, not a user error
            raise GenerationError(f"generation on model '{self.model.spec.name}' ended without a result")
        return self.result

    def _interrupted(self) -> FinishReason | None:
        if self.cancel.is_set():
            return "cancelled"
        if time.perf_counter() - self.started > self.limits.timeout_s:
            return "timeout"
        return None

    def _run(self) -> Iterator[str]:
        tokens = self.prompt.tokens
        room = min(self.limits.max_tokens, self.limits.context_size - len(tokens))
        scanner = StopScanner(self.limits.stop)
        guard_config = self.model.spec.settings.loop_guard
        guarded = guard_config.enabled and self.loop_guard
        guard = LoopGuard(guard_config.min_repeats, guard_config.max_cycle_lines) if guarded else None
        asked = asked_functions(_task_text(self.task)) if self.stop_after_asked else frozenset()
        code_end = CodeEndWatch(self.prompt.text, asked) if self.stop_after_code else None
        loop: Loop | None = None
        n = self._counts
        finish: FinishReason | None = None if self._events is not None else self._interrupted()
        t_prefill = self._t_prefill if self._t_prefill is not None else time.perf_counter()
        if finish is None:
            events = self._events if self._events is not None else self._open()
            timed = self._timed(events)
            try:
                for event, now in timed:
                    if isinstance(event, PromptEvaluated):
                        n.cached = event.cached_tokens
                        continue
                    if isinstance(event, EngineFigures):
                        n.engine = event
                        continue
                    if isinstance(event, LengthReached):  # the engine stopped at the max_tokens it was sent
                        finish = "length"
                        break
                    n.t_last = now
                    n.t_first = n.t_first or n.t_last
                    if isinstance(event, EndOfText):
                        n.sampled += 1
                        finish = "stop"
                        break
                    n.sampled += event.tokens
                    n.completion += event.tokens
                    before = len(scanner.text)
                    text, hit = scanner.feed(event.text)
                    if text:
                        yield text
                    loop = guard.feed(scanner.text, before) if guard is not None and not hit else None
                    if loop is not None:
                        finish = "repetition"
                        break
                    end = code_end.end(scanner.text) if code_end is not None and not hit else None
                    if end is not None:  # the code is complete: what would follow is prose nobody asked for
                        scanner.text = scanner.text[: max(end, scanner.emitted)]
                        finish = "stop"
                        break
                    finish = "stop" if hit else "length" if n.completion >= room else self._interrupted()
                    if finish is not None:
                        break
                else:  # the backend ended the stream: prompt processing was stopped
                    finish = self._interrupted()
                    if finish is None:
                        raise GenerationError(f"model '{self.model.spec.name}' ended its output without a reason")
                if finish == "length" and isinstance(self.model.spec, RemoteSpec):
                    self._read_figures(timed)
            finally:
                events.close()
        repetition = None
        if loop is not None:  # keep the cycle's first occurrence; what was already streamed cannot be taken back
            dropped = len(scanner.text) - loop.keep_chars
            scanner.text = scanner.text[: max(loop.keep_chars, scanner.emitted)]
            repetition = Repetition(cycle=loop.cycle[:200], repeats=loop.repeats, dropped_chars=dropped,
                                    tokens_saved=room - n.completion)
        tail = scanner.finish()
        if tail:
            yield tail
        text = scanner.text[: loop.keep_chars] if loop is not None else scanner.text
        self.result = self._result(text, finish, n.completion, n.sampled, len(tokens) - n.cached, t_prefill,
                                   n.t_first, n.t_last, repetition)

    def _read_figures(self, timed: Iterator[tuple[StreamEvent, float]]) -> None:
        """A remote server stops at the max_tokens it was sent, then sends its usage: read up to its end, text
        excluded (a server that goes on past max_tokens is cut off at its next chunk)."""
        try:
            for event, _ in timed:
                if isinstance(event, EngineFigures):
                    self._counts.engine = event
                elif not isinstance(event, PromptEvaluated):
                    return
        except GenerationError:  # the text is complete; the figures are measured from the stream instead
            return

    def _result(self, text: str, finish: FinishReason, completion: int, sampled: int, evaluated: int,
                t_prefill: float, t_first: float | None, t_last: float | None,
                repetition: Repetition | None) -> GenerationResult:
        now = time.perf_counter()
        prefill_end = t_first if t_first is not None else now
        prefill_s = prefill_end - t_prefill
        decode_s = (t_last - t_first) if t_first is not None and t_last is not None else 0.0
        prompt_tokens = len(self.prompt.tokens)
        cached = prompt_tokens - evaluated if t_first is not None else 0
        load_s = self.load_s
        usage = Usage(prompt_tokens=prompt_tokens, cached_prompt_tokens=cached, completion_tokens=completion)
        timings = Timings(
            load_s=round(load_s, 4) if load_s is not None else None,
            prefill_s=round(prefill_s, 4),
            prefill_tokens_per_s=rate(evaluated, prefill_s) if t_first is not None else None,
            decode_s=round(decode_s, 4),
            decode_tokens_per_s=rate(sampled - 1, decode_s),
            time_to_first_token_s=round(t_first - self.started, 4) if t_first is not None else None,
            wall_s=round(now - self.started, 4),
        )
        remote = None
        spec = self.model.spec
        if isinstance(spec, RemoteSpec):
            usage, timings, remote = _remote_figures(spec, usage, timings, self._counts.engine, sampled - 1,
                                                     prefill_s, decode_s)
        return GenerationResult(
            model=spec.name,
            text=text,
            finish_reason=finish,
            usage=usage,
            timings=timings,
            limits=self.limits,
            evicted=self.evicted,
            repetition=repetition,
            prompt_preview=self.prompt.text[:_PREVIEW_CHARS],
            remote=remote,
            fallback=self.fallback,
        )


def _remote_figures(spec: RemoteSpec, usage: Usage, timings: Timings, engine: EngineFigures | None,
                    decoded: int, prefill_s: float, decode_s: float) -> tuple[Usage, Timings, Remote]:
    """A remote model's usage and timings: the server's own where it sent them, else measured from the stream
    (prefill is then the time to the first token, network and the server's queue included)."""
    engine = engine or EngineFigures()
    usage_from: FigureSource = "stream"
    if engine.completion_tokens is not None:
        usage_from = "upstream"
        decoded += engine.completion_tokens - usage.completion_tokens  # the server's count, not chunks counted
        usage = Usage(prompt_tokens=engine.prompt_tokens or 0, cached_prompt_tokens=engine.cached_prompt_tokens or 0,
                      completion_tokens=engine.completion_tokens)
    update: dict[str, float | None] = {}
    timings_from: FigureSource = "stream"
    if engine.decode_s is not None and engine.decode_tokens is not None:
        timings_from = "upstream"
        update.update(decode_s=round(engine.decode_s, 4), decode_tokens_per_s=rate(engine.decode_tokens,
                                                                                    engine.decode_s))
        if engine.prefill_s is not None:
            update.update(prefill_s=round(engine.prefill_s, 4),
                          prefill_tokens_per_s=rate(engine.prefill_tokens or 0, engine.prefill_s))
    else:
        evaluated = usage.prompt_tokens - usage.cached_prompt_tokens
        update.update(decode_tokens_per_s=rate(decoded, decode_s),
                      prefill_tokens_per_s=rate(evaluated, prefill_s) if timings.time_to_first_token_s else None)
    remote = Remote(backend=spec.settings.backend, base_url=spec.base_url, upstream_model=spec.upstream_model,
                    usage_from=usage_from, timings_from=timings_from)
    return usage, timings.model_copy(update=update), remote


def _task_text(task: TaskInput) -> str:
    """What the user asked: the task, the last user message of a conversation, or the raw text."""
    if isinstance(task, Conversation):
        return next((m.content for m in reversed(task.messages) if m.role == "user"), "")
    return task.text if isinstance(task, RawText) else task
