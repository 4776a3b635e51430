"""Generate with one model under its limits: max_tokens, stop strings plus the model's EOG tokens, and a
wall-clock timeout over the whole request (prompt processing included, through llama.cpp's abort callback)."""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ggroute.models.engine import LoadedModel
from ggroute.models.errors import GenerationError, PromptTooLongError, UsageError
from ggroute.models.metrics import FinishReason, GenerationResult, Limits, Timings, Usage, rate
from ggroute.models.prompt import prepare_prompt

_PREVIEW_CHARS = 200


@dataclass(frozen=True)
class RequestOptions:
    """Per-request overrides of the model's configured limits."""

    max_tokens: int | None = None
    timeout_s: float | None = None


class _StopScanner:
    """Finds stop strings in the text stream and holds back a tail that could still become one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add text; return (text safe to emit now, whether a stop string was hit)."""
        search_from = max(0, len(self.text) - self.hold)
        self.text += piece
        cut = min((i for i in (self.text.find(s, search_from) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            self.stopped = True
            return self._flush(len(self.text)), True
        return self._flush(max(self.emitted, len(self.text) - self.hold)), False

    def finish(self) -> str:
        return self._flush(len(self.text))

    def _flush(self, upto: int) -> str:
        out = self.text[self.emitted : upto]
        self.emitted = max(self.emitted, upto)
        return out


def _reused_prefix(model: LoadedModel, tokens: list[int]) -> int:
    """Prompt tokens llama-cpp-python's generate() will take from the KV cache instead of evaluating.

    Mirrors its rule: reuse the longest common prefix with what is in the cache, but always evaluate at
    least one token so that fresh logits exist (unless the exact prompt is cached with live logits).
    """
    llama = model.llama
    common = model.cached_prefix_length(tokens)
    if common < len(tokens):
        return common
    exact_live = llama.n_tokens == len(tokens) and not llama._requires_eval
    return len(tokens) if exact_live else common - 1


def validate_task(task: str) -> str:
    if not task or not task.strip():
        raise UsageError("the task is empty: give the text of the task (or '-' to read it from stdin)")
    return task


class Generation:
    """Iterate to stream text pieces; `result` is set once iteration ends."""

    def __init__(
        self,
        model: LoadedModel,
        task: str,
        options: RequestOptions | None = None,
        *,
        cancel: threading.Event | None = None,
        started: float | None = None,
        load_s: float | None = None,
        evicted: list[str] | None = None,
    ) -> None:
        self.model = model
        self.task = validate_task(task)
        settings = model.spec.settings
        options = options or RequestOptions()
        self.started = started if started is not None else time.perf_counter()
        self.cancel = cancel or threading.Event()
        self.load_s = load_s
        self.evicted = evicted or []
        self.prompt = prepare_prompt(model, task)
        self.limits = Limits(
            max_tokens=options.max_tokens or settings.max_tokens,
            timeout_s=options.timeout_s or settings.timeout_s,
            context_size=settings.context_size,
            stop=list(dict.fromkeys([*settings.stop, *self.prompt.stop])),
        )
        if len(self.prompt.tokens) >= settings.context_size:
            raise PromptTooLongError(model.name, len(self.prompt.tokens), settings.context_size)
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[str]:
        with self.model.lock:
            yield from self._run()

    def run(self) -> GenerationResult:
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def _interrupted(self) -> FinishReason | None:
        if self.cancel.is_set():
            return "cancelled"
        if time.perf_counter() - self.started > self.limits.timeout_s:
            return "timeout"
        return None

    def _run(self) -> Iterator[str]:
        llama, tokens = self.model.llama, self.prompt.tokens
        room = min(self.limits.max_tokens, self.limits.context_size - len(tokens))
        scanner = _StopScanner(self.limits.stop)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        settings = self.model.spec.settings
        if settings.temperature > 0:
            llama.set_seed(settings.seed)
        evaluated = len(tokens) - _reused_prefix(self.model, tokens)
        finish: FinishReason | None = self._interrupted()
        sampled = completion = 0
        t_prefill = time.perf_counter()
        t_first = t_last = None
        stream = llama.generate(tokens, temp=settings.temperature, top_k=40, top_p=0.95, min_p=0.05)
        try:
            while finish is None:
                try:
                    if t_first is None:
                        with self.model.abortable(lambda: self._interrupted() is not None):
                            token = next(stream)
                        t_first = time.perf_counter()
                    else:
                        token = next(stream)
                except RuntimeError as exc:  # llama_decode failed, or was aborted by the callback
                    finish = self._interrupted()
                    if finish is None:
                        raise GenerationError(f"llama.cpp failed on model '{self.model.name}': {exc}") from exc
                    break
                t_last = time.perf_counter()
                sampled += 1
                if self.model.is_end_of_generation(token):
                    finish = "stop"
                    break
                completion += 1
                text, hit = scanner.feed(decoder.decode(llama.detokenize([token], special=False)))
                if text:
                    yield text
                if hit:
                    finish = "stop"
                elif completion >= room:
                    finish = "length"
                else:
                    finish = self._interrupted()
        finally:
            stream.close()
        if not scanner.stopped:
            scanner.feed(decoder.decode(b"", final=True))
        tail = scanner.finish()
        if tail:
            yield tail
        self.result = self._result(scanner.text, finish, completion, sampled, evaluated, t_prefill, t_first, t_last)

    def _result(self, text: str, finish: FinishReason, completion: int, sampled: int, evaluated: int,
                t_prefill: float, t_first: float | None, t_last: float | None) -> GenerationResult:
        now = time.perf_counter()
        prefill_end = t_first if t_first is not None else now
        prefill_s = prefill_end - t_prefill
        decode_s = (t_last - t_first) if t_first is not None and t_last is not None else 0.0
        prompt_tokens = len(self.prompt.tokens)
        cached = prompt_tokens - evaluated if t_first is not None else 0
        load_s = self.load_s
        return GenerationResult(
            model=self.model.name,
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
            prompt_preview=self.prompt.text[:_PREVIEW_CHARS],
        )
