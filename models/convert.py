"""Convert a GGUF's weights to another type once, into the cache folder (`weights_type` in config.json); cut a
model to its first blocks the same way (`layers`, models/truncate.py).

Why: on a CPU, prompt processing of a small model is compute-bound, and llama.cpp's matrix kernels are much
faster for BF16 (with AVX512_BF16) or Q8_0 weights than for Q4_1 ones (docs/performance.md measures it for the
router). Token generation reads every weight once per token, so wider weights gain a generating model little:
for the shipped coder, Q8_0 weights gave the same HumanEval wall time as its Q4_1 file (docs/performance.md).

The converted file is named after the source file, its size and mtime, so a changed source is converted again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from ggroute.core.errors import ModelFileError
from ggroute.core.files import atomic_target
from ggroute.models.config import WeightsType
from ggroute.models.locate import cache_dir
from ggroute.models.truncate import truncate_layers

log = logging.getLogger("ggroute.convert")


def converted_path(source: Path, weights_type: str) -> Path:
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "converted" / f"{source.stem}.{weights_type}-{key}.gguf"


def cut_layers(source: Path, keep: int) -> Path:
    """The copy of `source` with its first `keep` blocks (`layers`), made now if it is not in the cache yet."""
    if not source.is_file():
        raise ModelFileError(f"model file not found: {source}")
    target = converted_path(source, f"layers{keep}")
    if target.is_file():
        return target
    _make_folder(target, f"the {keep}-layer copy of {source.name}")
    started = time.perf_counter()
    try:
        with atomic_target(target) as partial:
            truncate_layers(source, partial, keep)
    except OSError as exc:
        raise ModelFileError(
            f"cannot write the {keep}-layer copy of {source.name} to {target.parent}: {exc.strerror or exc}; "
            "set GGROUTE_CACHE_DIR to a writable folder with room for it"
        ) from None
    log.info("kept the first %d layers of %s in %.1f s: %s", keep, source.name, time.perf_counter() - started, target)
    return target


def _make_folder(target: Path, what: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(
            f"cannot create {target.parent} for {what}: {exc.strerror or exc}; "
            "set GGROUTE_CACHE_DIR to a writable folder"
        ) from None


def convert_weights(source: Path, weights_type: WeightsType) -> Path:
    """The converted file for `source`, made now if it is not in the cache yet."""
    if not source.is_file():
        raise ModelFileError(f"model file not found: {source}")
    target = converted_path(source, weights_type)
    if target.is_file():
        return target
    from ggroute.models.llamacpp.runtime import quantize

    _make_folder(target, f"the {weights_type} copy of {source.name}")
    started = time.perf_counter()
    try:
        with atomic_target(target) as partial:
            status = quantize(source, partial, weights_type)
            if status != 0 or not partial.is_file():
                raise ModelFileError(
                    f"converting {source.name} to {weights_type} failed (llama.cpp status {status}); "
                    "remove weights_type from this model in config.json to load the file as it is"
                )
    except OSError as exc:
        raise ModelFileError(
            f"cannot write the {weights_type} copy of {source.name} to {target.parent}: {exc.strerror or exc}; "
            "set GGROUTE_CACHE_DIR to a writable folder with room for it"
        ) from None
    log.info("converted %s to %s in %.1f s: %s", source.name, weights_type, time.perf_counter() - started, target)
    return target
