"""Generate with one model under its limits: max_tokens, stop strings plus the model's end-of-text, and a
wall-clock timeout over the whole request (prompt processing included: the backend polls the deadline).

Works on any `Backend` (models/backend.py); figures are measured here, the same way for every backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ggroute.core.code import CodeEndWatch
from ggroute.core.errors import GenerationError, PromptTooLongError
from ggroute.core.tasks import validate_task
from ggroute.core.text import repair_text
from ggroute.models.backend import (
    Backend,
    Conversation,
    EndOfText,
    Message,
    PromptEvaluated,
    RawText,
    TaskInput,
    prepare_input,
)
from ggroute.models.loop_guard import Loop, LoopGuard
from ggroute.models.metrics import FinishReason, GenerationResult, Limits, Repetition, Timings, Usage, rate
from ggroute.models.sampling import Sampling

_PREVIEW_CHARS = 200


@dataclass(frozen=True)
class RequestOptions:
    """Per-request overrides of the model's configured limits and sampling."""

    max_tokens: int | None = None
    timeout_s: float | None = None
    temperature: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()  # stop strings in addition to the model's
    stop_after_code: bool = False  # stop once the answer's Python code block has closed (see core/code.py)


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
    ) -> None:
        self.model = model
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
        self.limits = Limits(
            max_tokens=options.max_tokens or settings.max_tokens,
            timeout_s=options.timeout_s or settings.timeout_s,
            context_size=settings.context_size,
            stop=list(dict.fromkeys([*settings.stop, *self.prompt.stop, *options.stop])),
        )
        if len(self.prompt.tokens) >= settings.context_size:
            raise PromptTooLongError(model.spec.name, len(self.prompt.tokens), settings.context_size)
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[str]:
        return self._run()

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
        guard = LoopGuard(guard_config.min_repeats, guard_config.max_cycle_lines) if guard_config.enabled else None
        code_end = CodeEndWatch(self.prompt.text) if self.stop_after_code else None
        loop: Loop | None = None
        finish: FinishReason | None = self._interrupted()
        cached = sampled = completion = 0
        t_prefill = time.perf_counter()
        t_first = t_last = None
        if finish is None:
            events = self.model.stream(self.prompt, room, self.sampling, lambda: self._interrupted() is not None)
            try:
                for event in events:
                    if isinstance(event, PromptEvaluated):
                        cached = event.cached_tokens
                        continue
                    t_last = time.perf_counter()
                    t_first = t_first or t_last
                    if isinstance(event, EndOfText):
                        sampled += 1
                        finish = "stop"
                        break
                    sampled += event.tokens
                    completion += event.tokens
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
                    finish = "stop" if hit else "length" if completion >= room else self._interrupted()
                    if finish is not None:
                        break
                else:  # the backend ended the stream: prompt processing was stopped
                    finish = self._interrupted()
                    if finish is None:
                        raise GenerationError(f"model '{self.model.spec.name}' ended its output without a reason")
            finally:
                events.close()
        repetition = None
        if loop is not None:  # keep the cycle's first occurrence; what was already streamed cannot be taken back
            dropped = len(scanner.text) - loop.keep_chars
            scanner.text = scanner.text[: max(loop.keep_chars, scanner.emitted)]
            repetition = Repetition(cycle=loop.cycle[:200], repeats=loop.repeats, dropped_chars=dropped,
                                    tokens_saved=room - completion)
        tail = scanner.finish()
        if tail:
            yield tail
        text = scanner.text[: loop.keep_chars] if loop is not None else scanner.text
        self.result = self._result(text, finish, completion, sampled, len(tokens) - cached, t_prefill,
                                   t_first, t_last, repetition)

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
        return GenerationResult(
            model=self.model.spec.name,
            text=text,
            finish_reason=finish,
            usage=Usage(prompt_tokens=prompt_tokens, cached_prompt_tokens=cached, completion_tokens=completion),
            timings=Timings(
                load_s=round(load_s, 4) if load_s is not None else None,
                prefill_s=round(prefill_s, 4),
                prefill_tokens_per_s=rate(evaluated, prefill_s) if t_first is not None else None,
                decode_s=round(decode_s, 4),
                decode_tokens_per_s=rate(sampled - 1, decode_s),
                time_to_first_token_s=round(t_first - self.started, 4) if t_first is not None else None,
                wall_s=round(now - self.started, 4),
            ),
            limits=self.limits,
            evicted=self.evicted,
            repetition=repetition,
            prompt_preview=self.prompt.text[:_PREVIEW_CHARS],
        )
