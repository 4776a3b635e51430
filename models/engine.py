"""One loaded llama.cpp model: loading, closing, tokenizing, and aborting a decode in flight."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ggroute.models.catalog import ModelSpec
from ggroute.models.errors import ModelLoadError

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

log = logging.getLogger("ggroute.llama_cpp")
_log_callback: object | None = None  # kept alive: llama.cpp holds a pointer to it


def route_llama_logs_to_logging() -> None:
    """llama.cpp prints to stderr even with verbose=False; send it to the `ggroute.llama_cpp` logger instead."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def _on_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        log.debug(text.decode("utf-8", errors="replace").rstrip())

    _log_callback = _on_log
    llama_cpp.llama_log_set(_on_log, ctypes.c_void_p(0))


# ggml_type ids (ggml.h); llama-cpp-python does not export GGML_TYPE_BF16.
_GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "bf16": 30}


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class LoadedModel:
    """A `Llama` and what ggroute knows about it. Whoever loads it closes it (`close()` is idempotent)."""

    def __init__(self, spec: ModelSpec, llama: Llama, load_s: float) -> None:
        self.spec = spec
        self.llama = llama
        self.load_s = load_s
        self.lock = threading.Lock()  # a llama.cpp context serves one request at a time
        self._should_abort: Callable[[], bool] | None = None
        self._abort_cb = self._make_abort_callback()
        self._closed = False
        self.chat_formatter: Jinja2ChatFormatter | None = None  # built on first chat prompt

    @property
    def name(self) -> str:
        return self.spec.name

    def _make_abort_callback(self) -> object:
        import llama_cpp

        @llama_cpp.ggml_abort_callback
        def _abort(_data: ctypes.c_void_p) -> bool:
            check = self._should_abort
            return bool(check is not None and check())

        return _abort

    @contextlib.contextmanager
    def abortable(self, should_abort: Callable[[], bool]) -> Iterator[None]:
        """Let llama.cpp stop a decode in flight when `should_abort()` turns true.

        llama.cpp calls the callback between graph nodes (hundreds of times per token), so it is installed
        only around prompt processing; during decoding the per-token checks are fine-grained enough.
        """
        import llama_cpp

        self._should_abort = should_abort
        llama_cpp.llama_set_abort_callback(self.llama.ctx, self._abort_cb, None)
        try:
            yield
        finally:
            llama_cpp.llama_set_abort_callback(self.llama.ctx, llama_cpp.ggml_abort_callback(), None)
            self._should_abort = None

    def cached_prefix_length(self, tokens: list[int]) -> int:
        """How many leading `tokens` the KV cache already holds (what llama.cpp need not evaluate again)."""
        import numpy as np

        llama = self.llama
        n = min(llama.n_tokens, len(tokens))
        same = llama.input_ids[:n] == np.asarray(tokens[:n], dtype=llama.input_ids.dtype)
        return n if same.all() else int(np.argmin(same))

    def tokenize(self, text: str, *, add_bos: bool, special: bool = True) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def is_end_of_generation(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token))

    def token_text(self, token_id: int) -> str:
        return self.llama.detokenize([token_id], special=True).decode("utf-8", errors="replace")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.llama.close()


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load a model with its configured settings; the GGUF header was already checked by the catalog."""
    from llama_cpp import Llama

    route_llama_logs_to_logging()
    settings = spec.settings
    threads = settings.n_threads or available_cores()
    started = time.perf_counter()
    try:
        llama = Llama(
            model_path=str(spec.path),
            n_ctx=settings.context_size,
            n_batch=settings.n_batch,
            n_ubatch=min(settings.n_batch, 512),
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=settings.n_gpu_layers,
            seed=settings.seed,
            swa_full=settings.swa_full,
            type_k=_GGML_TYPES[settings.cache_type_k],
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"llama.cpp could not load model '{spec.name}' from {spec.path}: {exc}") from exc
    return LoadedModel(spec, llama, time.perf_counter() - started)
