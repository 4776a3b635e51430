"""Convert a GGUF's weights to another type once, into the cache folder (`weights_type` in config.json).

Why: on a CPU, prompt processing of a small model is compute-bound, and llama.cpp's matrix kernels are much
faster for BF16 (with AVX512_BF16) or Q8_0 weights than for Q4_1 ones (docs/performance.md measures it for the
router). Token generation is memory-bound instead, so a generating model is better left small.

The converted file is named after the source file, its size and mtime, so a changed source is converted again.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import time
from pathlib import Path

from ggroute.models.config import WeightsType
from ggroute.models.errors import ModelFileError
from ggroute.models.locate import cache_dir

log = logging.getLogger("ggroute.convert")


def _ftype(weights_type: WeightsType) -> int:
    import llama_cpp

    return {
        "bf16": llama_cpp.LLAMA_FTYPE_MOSTLY_BF16,
        "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
        "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    }[weights_type]


def converted_path(source: Path, weights_type: WeightsType) -> Path:
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "converted" / f"{source.stem}.{weights_type}-{key}.gguf"


def convert_weights(source: Path, weights_type: WeightsType) -> Path:
    """The converted file for `source`, made now if it is not in the cache yet."""
    if not source.is_file():
        raise ModelFileError(f"model file not found: {source}")
    target = converted_path(source, weights_type)
    if target.is_file():
        return target
    import llama_cpp

    from ggroute.models.engine import route_llama_logs_to_logging

    route_llama_logs_to_logging()
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _ftype(weights_type)
    params.allow_requantize = True  # the source is already quantized; going to a wider type loses nothing
    params.nthread = 0  # 0: every core
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(
            f"cannot create {target.parent} for the {weights_type} copy of {source.name}: "
            f"{exc.strerror or exc}; set GGROUTE_CACHE_DIR to a writable folder"
        ) from None
    started = time.perf_counter()
    try:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
        if status != 0 or not partial.is_file():
            raise ModelFileError(
                f"converting {source.name} to {weights_type} failed (llama.cpp status {status}); "
                "remove weights_type from this model in config.json to load the file as it is"
            )
        os.replace(partial, target)
    except OSError as exc:
        raise ModelFileError(
            f"cannot write the {weights_type} copy of {source.name} to {target.parent}: {exc.strerror or exc}; "
            "set GGROUTE_CACHE_DIR to a writable folder with room for it"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    log.info("converted %s to %s in %.1f s: %s", source.name, weights_type, time.perf_counter() - started, target)
    return target
