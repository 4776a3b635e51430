"""Process-wide llama-cpp-python facts: its log routing, type ids, GPU support, version, weight conversion."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

from ggroute.core.interrupts import native_callback
from ggroute.models.config import AppConfig, CacheType, WeightsType

log = logging.getLogger("ggroute.llama_cpp")
_log_callback: object | None = None  # kept alive: llama.cpp holds a pointer to it

# ggml_type ids (ggml.h); llama-cpp-python does not export GGML_TYPE_BF16.
GGML_TYPES: dict[CacheType, int] = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "bf16": 30}


def route_llama_logs_to_logging() -> None:
    """llama.cpp prints to stderr even with verbose=False; send it to the `ggroute.llama_cpp` logger instead."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    @native_callback
    def _on_log(_level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        log.debug(text.decode("utf-8", errors="replace").rstrip())

    _log_callback = _on_log
    llama_cpp.llama_log_set(_on_log, ctypes.c_void_p(0))


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def engine_version() -> str:
    return version("llama-cpp-python")


def cpu_features() -> frozenset[str]:
    """The CPU features this llama.cpp build uses, from its system info (`AVX2 = 1 | AVX512_BF16 = 1 | ...`)."""
    import llama_cpp

    return parse_system_info(llama_cpp.llama_print_system_info().decode("utf-8", errors="replace"))


def parse_system_info(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"([A-Z][A-Z0-9_]*) = 1\b", text))


def weights_type_warnings(config: AppConfig, features: frozenset[str]) -> list[str]:
    """BF16 weights on an x86 CPU whose llama.cpp has no AVX512_BF16 kernels: no faster than q8_0 and larger
    (docs/performance.md measures it), so say what was faster there. Other CPUs are not judged."""
    if "AVX2" not in features or "AVX512_BF16" in features:
        return []
    warnings = []
    for name, model in config.models.items():
        if model.weights_type != "bf16" or model.is_remote or model.n_gpu_layers != 0:
            continue
        is_router = config.router is not None and config.router.model == name
        head = (' with "head": "pkg:ggroute.models/router-head-q4_0.json" (the head shipped for that router)'
                if is_router else "")
        warnings.append(
            f"models.{name}.weights_type is bf16, but this CPU has no AVX512_BF16 (llama.cpp's system info): BF16 "
            f"weights read prompts here about as fast as q8_0 and take more memory; on such a CPU \"q4_0\"{head} "
            "was faster (docs/performance.md, 'Router weights on a CPU without AVX512_BF16'; measure with "
            f"`ggroute bench {name} --weights-type bf16,q8_0,q4_0 --prompt-tokens 64`)")
    for name, model in config.models.items():
        if model.prompt_weights_type == "bf16" and not model.is_remote and model.n_gpu_layers == 0:
            warnings.append(
                f"models.{name}.prompt_weights_type is bf16, but this CPU has no AVX512_BF16 (llama.cpp's system "
                "info): a BF16 copy reads prompts here about as fast as q8_0 and takes twice its memory; use "
                "\"q8_0\"")
    return warnings


@contextlib.contextmanager
def vocabulary(path: Path) -> Iterator[Callable[[str], list[int]]]:
    """A GGUF model's tokenizer alone (its vocabulary, no weights loaded): `tokenize(text)` without BOS."""
    from llama_cpp import Llama

    route_llama_logs_to_logging()
    vocab = Llama(str(path), vocab_only=True, verbose=False)
    try:
        yield lambda text: list(vocab.tokenize(text.encode("utf-8"), add_bos=False))
    finally:
        vocab.close()


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def quantize(source: Path, target: Path, weights_type: WeightsType) -> int:
    """Write `source` with its weights converted to `weights_type`; llama.cpp's status (0 is success)."""
    import llama_cpp

    route_llama_logs_to_logging()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {
        "bf16": llama_cpp.LLAMA_FTYPE_MOSTLY_BF16,
        "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
        "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
        "iq4_nl": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_NL,
        "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    }[weights_type]
    # The source is already quantized: going to a wider type loses nothing; to another 4-bit type it rounds
    # the rounded weights again (what the 4-bit types are measured for in docs/performance.md).
    params.allow_requantize = True
    params.nthread = 0  # 0: every core
    return int(llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params)))
