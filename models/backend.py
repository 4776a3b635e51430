"""The contract between ggroute and an inference engine.

A backend is one loaded model. The pool, the pipeline and the faces talk only to these protocols, so a local
llama.cpp model (models/llamacpp/), a remote OpenAI-compatible engine (models/remote/) and the scripted fake in
the tests plug in the same way.

`Backend` (every model): turn a task (or a conversation, or raw text) into a `Prompt`, then `stream()` events
for it:

    PromptEvaluated(cached_tokens)     once, when the prompt is in the context
    TextChunk(text, tokens)            per sampled token (or per chunk of tokens for a remote engine)
    EndOfText()                        the model ended the text itself (an end-of-generation token)

A remote engine may also send, before its last event:

    EngineFigures(...)                 the engine's own usage and timing figures for the request
    LengthReached()                    (instead of EndOfText) it stopped at the max_tokens it was given

The caller enforces max_tokens, stop strings, the timeout and cancellation: it stops iterating and closes
the stream. During prompt processing the backend polls `should_stop()` and, when it turns true, ends the
stream without `EndOfText`. Engine failures raise `GenerationError` (`UpstreamError` for a remote engine).

`ScoringModel` (the router's model): evaluate tokens and read next-token logits, no text generated.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ggroute.models.catalog import AnySpec, ModelSpec
    from ggroute.models.sampling import Sampling


@dataclass(frozen=True)
class Prompt:
    """A task rendered for one model: the text it reads, its tokens, the stop strings its template implies.

    A remote model renders nothing itself: `tokens` is empty (its server counts them) and `messages`, when set,
    are sent for the server's chat template (else `text` is sent as a completion prompt).
    """

    text: str
    tokens: list[int]
    stop: tuple[str, ...] = ()
    messages: tuple[Message, ...] | None = None


@dataclass(frozen=True)
class Message:
    """One message of a conversation (the server's chat requests); "system" messages come first."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Conversation:
    """Messages for the model's chat template (a model without one reads them as text: see its prepare)."""

    messages: tuple[Message, ...]


@dataclass(frozen=True)
class RawText:
    """Text the model reads as it is, no template around it (the server's /v1/completions)."""

    text: str


TaskInput = str | Conversation | RawText  # a plain task is rendered like a one-message conversation


@dataclass(frozen=True)
class PromptEvaluated:
    cached_tokens: int  # prompt tokens taken from the KV cache instead of evaluated


@dataclass(frozen=True)
class TextChunk:
    text: str  # may be "" while a multi-byte character is incomplete
    tokens: int = 1


@dataclass(frozen=True)
class EndOfText:
    """The model emitted an end-of-generation token (not counted as a completion token)."""


@dataclass(frozen=True)
class LengthReached:
    """A remote engine stopped at the max_tokens it was sent (a local one is stopped by the caller instead)."""


@dataclass(frozen=True)
class EngineFigures:
    """Usage and timings a remote engine reported for the request (its `usage` and `timings` fields); None where
    it reported nothing. The caller measures what is missing from the stream itself."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    prefill_tokens: int | None = None  # prompt tokens the engine evaluated
    prefill_s: float | None = None
    decode_tokens: int | None = None
    decode_s: float | None = None


StreamEvent = PromptEvaluated | TextChunk | EndOfText | LengthReached | EngineFigures
StopCheck = Callable[[], bool]
EventStream = Generator[StreamEvent, None, None]  # the caller closes it to stop early


@runtime_checkable
class Backend(Protocol):
    @property
    def spec(self) -> AnySpec: ...

    @property
    def load_s(self) -> float: ...

    def prepare(self, task: str) -> Prompt:
        """Render the task with the model's chat or completion template and tokenize it."""
        ...

    def prepare_conversation(self, messages: Sequence[Message]) -> Prompt:
        """Render messages with the model's chat template (its system_prompt when none is a system message)."""
        ...

    def prepare_raw(self, text: str) -> Prompt:
        """Tokenize `text` as it is (a BOS token first when the model wants one)."""
        ...

    def stream(self, prompt: Prompt, max_tokens: int, sampling: Sampling, should_stop: StopCheck) -> EventStream:
        """Generate for `prompt`; one request at a time per model (the backend serialises)."""
        ...

    def close(self) -> None:
        """Release the model; idempotent."""
        ...


@runtime_checkable
class ScoringModel(Protocol):
    """What the router needs: tokens in, next-token logits out, and the KV state to keep a prefix on disk."""

    @property
    def spec(self) -> ModelSpec: ...

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]: ...

    def cached_prefix_length(self, tokens: list[int]) -> int:
        """How many leading `tokens` the context already holds."""
        ...

    def evaluate(self, tokens: list[int], *, hidden: bool = False, reuse_at_most: int | None = None) -> int:
        """Bring the context to exactly `tokens`, reusing its common prefix; return how many were evaluated.

        At least one token is evaluated so that fresh logits exist, and at most `reuse_at_most` are reused.
        With `hidden`, the hidden states of the evaluated tokens are kept for `hidden_states()`. Call inside
        `session()`. Raises `DecodeAborted` when the session's `should_stop()` turned true, `GenerationError`
        when the engine failed.
        """
        ...

    def hidden_states(self, count: int) -> npt.NDArray[np.float64]:
        """(count, hidden size): the final hidden states of the last `count` tokens `evaluate(hidden=True)` ran."""
        ...

    def last_logits(self, candidates: list[int]) -> npt.NDArray[np.float64]:
        """The last evaluated position's logits for the `candidates` token ids."""
        ...

    def session(self, should_stop: StopCheck) -> AbstractContextManager[None]:
        """Hold the model for a run of evaluations (one caller at a time), stopping when `should_stop()`."""
        ...

    def save_state(self) -> bytes:
        """The context's KV state (what `evaluate` built), to restore in another process."""
        ...

    def restore_state(self, data: bytes, tokens: list[int]) -> bool:
        """Load a state saved for `tokens`; False (context left empty) when it does not fit."""
        ...

    def state_identity(self) -> tuple[object, ...]:
        """Everything a saved state depends on besides the tokens: file, engine version, context settings."""
        ...


def prepare_input(model: Backend, task: TaskInput) -> Prompt:
    """The prompt for any kind of task input."""
    if isinstance(task, Conversation):
        return model.prepare_conversation(task.messages)
    if isinstance(task, RawText):
        return model.prepare_raw(task.text)
    return model.prepare(task)


class DecodeAborted(Exception):
    """Internal signal: an evaluation stopped because `should_stop()` turned true (the caller says why)."""


Loader = Callable[["AnySpec"], Backend]


def load_backend(spec: AnySpec) -> Backend:
    """Load the model a spec describes with its engine: llama.cpp in this process, or a remote server's client."""
    from ggroute.models.catalog import RemoteSpec

    if isinstance(spec, RemoteSpec):
        from ggroute.models.remote.model import connect_remote_model

        return connect_remote_model(spec)
    from ggroute.models.llamacpp.model import load_llama_model

    return load_llama_model(spec)
