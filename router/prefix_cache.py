"""Keep the router's few-shot prefix KV state on disk, so a new process (each `ggroute run`) skips recomputing it.

Only sequence 0's KV cells are stored (llama_state_seq_*), not llama-cpp-python's whole-state snapshot, which
copies an n_batch x n_vocab logits array (0.5 GB for Gemma 3). The file name is a hash of everything the state
depends on: model file identity, llama-cpp-python version, context settings and the prefix tokens themselves.
A cache file that cannot be read or applied is reported in the log and the prefix is recomputed.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
from importlib.metadata import version
from pathlib import Path

from ggroute.models.engine import LoadedModel
from ggroute.models.locate import cache_dir

log = logging.getLogger("ggroute.router")
_MAGIC = b"GGRPFX1\n"


def cache_path(model: LoadedModel, prefix: list[int]) -> Path:
    spec, stat = model.spec, model.spec.path.stat()
    settings = spec.settings
    key = hashlib.sha256()
    for part in (str(spec.path), stat.st_size, stat.st_mtime_ns, version("llama-cpp-python"),
                 settings.context_size, settings.n_batch, settings.swa_full, settings.n_gpu_layers,
                 settings.cache_type_k):
        key.update(repr(part).encode() + b"\0")
    key.update(",".join(map(str, prefix)).encode())
    return cache_dir() / "router-prefix" / f"{key.hexdigest()[:32]}.kv"


def restore_prefix(model: LoadedModel, prefix: list[int]) -> bool:
    """Load the prefix's KV state into the model's context; False when there is no usable cache file."""
    import llama_cpp

    path = cache_path(model, prefix)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("router prefix cache %s unreadable (%s); recomputing the prefix", path, exc)
        return False
    if not data.startswith(_MAGIC):
        log.warning("router prefix cache %s is not a ggroute cache file; recomputing the prefix", path)
        return False
    payload = data[len(_MAGIC):]
    llama = model.llama
    llama.n_tokens = 0
    llama._ctx.kv_cache_seq_rm(-1, 0, -1)
    buffer = (ctypes.c_uint8 * len(payload)).from_buffer_copy(payload)
    if llama_cpp.llama_state_seq_set_data(llama.ctx, buffer, len(payload), 0) != len(payload):
        log.warning("router prefix cache %s does not fit this context; recomputing the prefix", path)
        llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        return False
    llama.input_ids[: len(prefix)] = prefix
    llama.n_tokens = len(prefix)
    return True


def save_prefix(model: LoadedModel, prefix: list[int]) -> None:
    """Store sequence 0's KV state, which must hold exactly the prefix."""
    import llama_cpp

    llama = model.llama
    size = llama_cpp.llama_state_seq_get_size(llama.ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llama.ctx, buffer, size, 0)
    path = cache_path(model, prefix)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".partial-{os.getpid()}")
        partial.write_bytes(_MAGIC + bytes(buffer)[:written])
        os.replace(partial, path)
    except OSError as exc:
        log.warning("cannot write router prefix cache %s (%s); the prefix will be recomputed next time", path, exc)
