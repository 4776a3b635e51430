"""One loaded llama.cpp model: the `Backend` and `ScoringModel` contracts (models/backend.py) on a `Llama`."""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ggroute.core.errors import GenerationError, ModelLoadError, UsageError
from ggroute.core.interrupts import native_callback, raise_if_stop_requested, stop_requested
from ggroute.models.backend import (
    DecodeAborted,
    EndOfText,
    EventStream,
    Message,
    Prompt,
    PromptEvaluated,
    StopCheck,
    TextChunk,
)
from ggroute.models.catalog import ModelSpec
from ggroute.models.llamacpp.chat import prepare_conversation, prepare_prompt, prepare_raw
from ggroute.models.llamacpp.dry import DryHook
from ggroute.models.llamacpp.runtime import GGML_TYPES, available_cores, engine_version, route_llama_logs_to_logging
from ggroute.models.sampling import Sampling

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

log = logging.getLogger(__name__)


# Fewest prompt tokens a request evaluates when its prompt is in the KV cache already (see _reuse_cache).
MIN_EVALUATED = 2
# Fewest prompt tokens worth reading with the prompt_weights_type copy: a handover costs about a millisecond.
MIN_COPY_TOKENS = 16


class LlamaModel:
    """A `Llama` and what ggroute knows about it. Whoever loads it closes it (`close()` is idempotent)."""

    def __init__(self, spec: ModelSpec, llama: Llama, load_s: float, prompt_llama: Llama | None = None) -> None:
        self._spec = spec
        self.llama = llama
        self.prompt_llama = prompt_llama  # the prompt_weights_type copy that reads prompts (see read_with_copy)
        self.prompt_tokens_by_copy = 0  # prompt tokens the copy evaluated, for tests and --verbose
        self._load_s = load_s
        self.lock = threading.Lock()  # a llama.cpp context serves one request at a time
        self._should_abort: StopCheck | None = None
        self._abort_cb = self._make_abort_callback()
        self._closed = False
        self._embeddings_on = False
        self._hidden_count = 0  # hidden states the last evaluate() kept
        self.chat_formatter: Jinja2ChatFormatter | None = None  # built on the first chat prompt
        self._dry = DryHook(llama)

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def load_s(self) -> float:
        return self._load_s

    @property
    def name(self) -> str:
        return self._spec.name

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.llama.close()
            if self.prompt_llama is not None:
                self.prompt_llama.close()

    # --- tokens -------------------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool, special: bool = False) -> list[int]:
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special))

    def token_text(self, token_id: int) -> str:
        return self.llama.detokenize([token_id], special=True).decode("utf-8", errors="replace")

    def is_end_of_generation(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token))

    def forget_context(self) -> None:
        """The next request evaluates its whole prompt (benchmarks compare full prefills)."""
        self.llama.reset()  # type: ignore[no-untyped-call]
        if self.prompt_llama is not None:
            self.prompt_llama.reset()  # type: ignore[no-untyped-call]

    def cached_prefix_length(self, tokens: list[int]) -> int:
        return _cached_prefix_length(self.llama, tokens)

    # --- aborting a decode in flight ----------------------------------------------------------------------

    def _make_abort_callback(self) -> object:
        import llama_cpp

        @llama_cpp.ggml_abort_callback  # type: ignore[untyped-decorator]
        @native_callback
        def _abort(_data: ctypes.c_void_p) -> bool:
            check = self._should_abort
            return stop_requested.is_set() or bool(check is not None and check())

        return _abort

    @contextlib.contextmanager
    def abortable(self, should_stop: StopCheck) -> Iterator[None]:
        """Let llama.cpp stop a decode in flight when `should_stop()` turns true.

        llama.cpp calls the callback between graph nodes (hundreds of times per token), so it is installed
        only around prompt processing; during decoding the per-token checks are fine-grained enough.
        """
        import llama_cpp

        contexts = [llama.ctx for llama in (self.llama, self.prompt_llama) if llama is not None]
        self._should_abort = should_stop
        for ctx in contexts:
            llama_cpp.llama_set_abort_callback(ctx, self._abort_cb, None)
        try:
            yield
        finally:
            for ctx in contexts:
                llama_cpp.llama_set_abort_callback(ctx, llama_cpp.ggml_abort_callback(), None)
            self._should_abort = None

    # --- Backend: generation ------------------------------------------------------------------------------

    def prepare(self, task: str) -> Prompt:
        return prepare_prompt(self, task)

    def prepare_conversation(self, messages: Sequence[Message]) -> Prompt:
        return prepare_conversation(self, messages)

    def prepare_raw(self, text: str) -> Prompt:
        return prepare_raw(self, text)

    def _reuse_cache(self, tokens: list[int]) -> int:
        """Keep in the KV cache what this prompt reuses and return how many tokens that is.

        llama-cpp-python's generate() reuses the longest common prefix with what the cache holds and evaluates the
        rest. Here it gets at most all but the prompt's last MIN_EVALUATED tokens: llama.cpp computes a lone
        token's logits on another path than a batch's, and greedy answers would drift from a fresh process's
        (docs/performance.md). With `cache_prompt` false it gets nothing.
        """
        if not self._spec.settings.cache_prompt:
            self.llama.reset()  # type: ignore[no-untyped-call]
            return 0
        keep = min(self.cached_prefix_length(tokens), max(0, len(tokens) - MIN_EVALUATED))
        # Drop the KV cells from `keep` on here, as generate() would, after checking that what stays is whole.
        # With swa_full false, sliding-window layers keep only their last window: cut back to `keep`, the cache may
        # lack the positions the window before `keep` needs, and llama.cpp would answer from a context with a hole
        # in it, silently. llama-server's test decides (the oldest position held is at most keep - window); when
        # it fails, or llama.cpp cannot remove the cells, the prompt is evaluated whole and reported so.
        if keep > 0 and not (self._window_holds(keep) and self.llama._ctx.kv_cache_seq_rm(-1, keep, -1)):
            self.llama.reset()  # type: ignore[no-untyped-call]
            return 0
        self.llama.n_tokens = keep
        return keep

    def read_with_copy(self, tokens: list[int], cached: int) -> None:
        """Have the prompt_weights_type copy evaluate the prompt up to its last MIN_EVALUATED tokens and hand its
        KV cells to this model, which then evaluates those last tokens itself (generate() finds the rest cached).

        The copy's weights are the same numbers in a wider type (or nearly so), so the cells it writes are nearly
        the ones this model would write (not to the bit: a 4-bit model's activations are rounded to 8 bits, the
        copy's are not; docs/performance.md measures what that does to greedy text), read faster where wider
        weights read faster. The first token's logits come from this model's own weights. A prompt this model
        has mostly cached is not worth a handover.
        """
        copy = self.prompt_llama
        end = len(tokens) - MIN_EVALUATED
        if copy is None or end - cached < MIN_COPY_TOKENS:
            return
        # With cache_prompt false every prompt is evaluated whole (reuse can change answers): by the copy too.
        keep = min(_cached_prefix_length(copy, tokens), end) if self._spec.settings.cache_prompt else 0
        copy.n_tokens = keep  # eval() drops the copy's cells from here on
        copy.eval(tokens[keep:end])
        self.prompt_tokens_by_copy += end - keep
        if not _copy_sequence(copy, self.llama, tokens[:end]):
            # This model's cells were cleared for the handover: it evaluates the whole prompt itself.
            log.warning("model '%s': llama.cpp refused the KV cells of its %s copy; the model reads this prompt "
                        "itself", self.name, self._spec.settings.prompt_weights_type)
            self.llama.reset()  # type: ignore[no-untyped-call]

    def _window_holds(self, keep: int) -> bool:
        import llama_cpp

        window = llama_cpp.llama_model_n_swa(self.llama.model)
        if window <= 0:
            return True
        oldest: int = llama_cpp.llama_memory_seq_pos_min(llama_cpp.llama_get_memory(self.llama.ctx), 0)
        return oldest == 0 or 0 <= oldest <= max(0, keep - window)

    def stream(self, prompt: Prompt, max_tokens: int, sampling: Sampling, should_stop: StopCheck) -> EventStream:
        # max_tokens is the caller's to enforce: it closes this generator, so no token is sampled past it.
        layers = self._spec.settings.layers
        if layers is not None:
            raise UsageError(f"model '{self.name}' keeps only its first {layers} layers (`layers` in config.json): "
                             "it can route with a route head but not generate text; ask another model")
        with self.lock:
            yield from self._stream(prompt.tokens, sampling, should_stop)

    def _stream(self, tokens: list[int], sampling: Sampling, should_stop: StopCheck) -> EventStream:
        llama = self.llama
        if sampling.temperature > 0:
            llama.set_seed(sampling.seed)
        cached = self._reuse_cache(tokens)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._dry.settings = sampling.dry
        sampled = llama.generate(tokens, temp=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                                 min_p=sampling.min_p, repeat_penalty=sampling.repeat_penalty,
                                 presence_penalty=sampling.presence_penalty,
                                 frequency_penalty=sampling.frequency_penalty)
        try:
            try:
                with self.abortable(should_stop):
                    self.read_with_copy(tokens, cached)  # before generate() starts (it is lazy)
                    token = next(sampled)
            except RuntimeError as exc:  # llama_decode failed (the copy's or the model's), or was aborted
                if self.prompt_llama is not None:
                    self.prompt_llama.n_tokens = 0  # what the copy's context holds is unknown now: reuse nothing
                raise_if_stop_requested()
                if should_stop():
                    return
                raise GenerationError(f"llama.cpp failed on model '{self.name}': {exc}") from exc
            yield PromptEvaluated(cached_tokens=cached)
            while not self.is_end_of_generation(token):
                yield TextChunk(decoder.decode(llama.detokenize([token], special=False)))
                try:
                    token = next(sampled)
                except RuntimeError as exc:
                    raise_if_stop_requested()
                    raise GenerationError(f"llama.cpp failed on model '{self.name}': {exc}") from exc
            tail = decoder.decode(b"", final=True)
            if tail:
                yield TextChunk(tail, tokens=0)
            yield EndOfText()
        finally:
            sampled.close()

    # --- ScoringModel: the router's forward passes --------------------------------------------------------

    @contextlib.contextmanager
    def session(self, should_stop: StopCheck) -> Iterator[None]:
        with self.lock, self.abortable(should_stop):
            yield

    def evaluate(self, tokens: list[int], *, hidden: bool = False, reuse_at_most: int | None = None) -> int:
        import llama_cpp

        llama = self.llama
        common = min(self.cached_prefix_length(tokens), len(tokens) - 1)  # evaluate >= 1 token: fresh logits
        if reuse_at_most is not None:
            common = min(common, reuse_at_most)
        if common > 0 and not self._window_holds(common):  # see _reuse_cache
            llama.reset()  # type: ignore[no-untyped-call]
            common = 0
        llama.n_tokens = common  # eval() drops the KV cells from here on
        if hidden != self._embeddings_on:
            # With embeddings on llama.cpp outputs every evaluated token; keep it off when not needed.
            llama_cpp.llama_set_embeddings(llama.ctx, hidden)
            self._embeddings_on = hidden
        # llama-cpp-python evaluates in n_batch chunks; hidden states exist for the last chunk only.
        self._hidden_count = (len(tokens) - common - 1) % llama.n_batch + 1 if hidden else 0
        try:
            llama.eval(tokens[common:])
        except RuntimeError as exc:  # llama_decode aborted by the callback, or failed
            llama.n_tokens = 0  # what the context holds is unknown now: reuse nothing next time
            raise_if_stop_requested()
            if self._should_abort is not None and self._should_abort():
                raise DecodeAborted from exc
            raise GenerationError(f"llama.cpp failed evaluating on model '{self.name}': {exc}") from exc
        return len(tokens) - common

    def hidden_states(self, count: int) -> npt.NDArray[np.float64]:
        import llama_cpp

        if not 0 < count <= self._hidden_count:
            raise GenerationError(
                f"hidden states of {count} tokens asked from model '{self.name}', "
                f"the last evaluation kept {self._hidden_count}"
            )
        n_embd = self.llama.n_embd()
        rows = np.empty((count, n_embd), dtype=np.float64)
        for row, index in enumerate(range(-count, 0)):
            pointer = llama_cpp.llama_get_embeddings_ith(self.llama.ctx, index)
            if not pointer:
                raise GenerationError(f"llama.cpp kept no hidden state at position {index} on model '{self.name}'")
            rows[row] = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(n_embd,))
        return rows

    def last_logits(self, candidates: list[int]) -> npt.NDArray[np.float64]:
        import llama_cpp

        llama = self.llama
        pointer = llama_cpp.llama_get_logits_ith(llama.ctx, -1)
        logits = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(llama.n_vocab(),))
        return logits[candidates].astype(np.float64)

    def save_state(self) -> bytes:
        """Sequence 0's KV cells only, not llama-cpp-python's whole-state snapshot (which copies logits)."""
        buffer, written = _sequence_cells(self.llama)
        return bytes(buffer)[:written]

    def restore_state(self, data: bytes, tokens: list[int]) -> bool:
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        return _load_sequence_cells(self.llama, buffer, len(data), tokens)

    def state_identity(self) -> tuple[object, ...]:
        spec, stat = self._spec, self._spec.path.stat()
        s = spec.settings
        return (str(spec.path), stat.st_size, stat.st_mtime_ns, engine_version(), s.context_size, s.n_batch,
                s.swa_full, s.n_gpu_layers, s.cache_type_k)


def _cached_prefix_length(llama: Llama, tokens: list[int]) -> int:
    n = min(llama.n_tokens, len(tokens))
    same = llama.input_ids[:n] == np.asarray(tokens[:n], dtype=llama.input_ids.dtype)
    return n if bool(same.all()) else int(np.argmin(same))


def _sequence_cells(llama: Llama) -> tuple[ctypes.Array[ctypes.c_uint8], int]:
    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(llama.ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    return buffer, int(llama_cpp.llama_state_seq_get_data(llama.ctx, buffer, size, 0))


def _load_sequence_cells(llama: Llama, buffer: ctypes.Array[ctypes.c_uint8], size: int, tokens: list[int]) -> bool:
    """Replace sequence 0's KV cells with `buffer`'s, which hold `tokens`; False (the cache left empty) if refused."""
    import llama_cpp

    llama.n_tokens = 0
    llama._ctx.kv_cache_seq_rm(-1, 0, -1)
    if llama_cpp.llama_state_seq_set_data(llama.ctx, buffer, size, 0) != size:
        llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        return False
    llama.input_ids[: len(tokens)] = tokens
    llama.n_tokens = len(tokens)
    return True


def _copy_sequence(source: Llama, target: Llama, tokens: list[int]) -> bool:
    buffer, written = _sequence_cells(source)
    return _load_sequence_cells(target, buffer, written, tokens)


def rpc_arguments(spec: ModelSpec) -> dict[str, Any]:
    """`rpc_servers` for `Llama()`, or a ModelLoadError when this llama-cpp-python cannot use them.

    Checked first because `Llama()` takes **kwargs: a parameter it does not know would be dropped without a word,
    and the model would run here alone.
    """
    servers = spec.settings.rpc_servers
    if not servers:
        return {}
    import inspect

    import llama_cpp

    takes_it = "rpc_servers" in inspect.signature(llama_cpp.Llama.__init__).parameters
    if not takes_it or not llama_cpp.llama_supports_rpc():
        why = ("its Llama() has no rpc_servers parameter" if not takes_it
               else "its llama.cpp was built without RPC (CMAKE_ARGS=-DGGML_RPC=on)")
        raise ModelLoadError(f"model '{spec.name}' lists rpc_servers, but llama-cpp-python {engine_version()} "
                             f"cannot use them: {why}. Remove rpc_servers, or install a llama-cpp-python that "
                             "supports RPC (docs/scaling.md)")
    return {"rpc_servers": ",".join(servers)}


def load_llama_model(spec: ModelSpec) -> LlamaModel:
    """Load a model with its configured settings; the GGUF header was already checked by the catalog."""
    route_llama_logs_to_logging()
    extra = rpc_arguments(spec)
    started = time.perf_counter()
    llama = _new_llama(spec, spec.path, extra)
    prompt_llama = None
    if spec.prompt_info is not None:
        try:
            prompt_llama = _new_llama(spec, spec.prompt_info.path, extra)
        except BaseException:
            llama.close()
            raise
    return LlamaModel(spec, llama, time.perf_counter() - started, prompt_llama)


def _new_llama(spec: ModelSpec, path: Path, extra: dict[str, Any]) -> Llama:
    from llama_cpp import Llama

    settings = spec.settings
    threads = settings.n_threads or available_cores()
    try:
        llama = Llama(
            model_path=str(path),
            n_ctx=settings.context_size,
            n_batch=settings.n_batch,
            n_ubatch=min(settings.n_batch, 512),
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=settings.n_gpu_layers,
            seed=settings.seed,
            last_n_tokens_size=settings.repeat_last_n,
            swa_full=settings.swa_full,
            type_k=GGML_TYPES[settings.cache_type_k],
            verbose=False,
            **extra,
        )
    except (ValueError, RuntimeError) as exc:
        raise_if_stop_requested()
        raise ModelLoadError(f"llama.cpp could not load model '{spec.name}' from {path}: {exc}") from exc
    if stop_requested.is_set():  # a signal came while llama.cpp logged through its callback
        llama.close()
        raise_if_stop_requested()
    return llama
