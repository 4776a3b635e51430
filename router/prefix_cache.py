"""Keep the router's few-shot prefix KV state on disk, so a new process (each `ggroute run`) skips recomputing it.

The state is what the model's `save_state()` gives (for llama.cpp: sequence 0's KV cells). The file name is a
hash of everything the state depends on (the model's `state_identity()`: file identity, engine version, context
settings) and the prefix tokens themselves. A cache file that cannot be read or applied is reported in the log
and the prefix is recomputed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from ggroute.core.files import write_atomic
from ggroute.models.backend import ScoringModel
from ggroute.models.locate import cache_dir

log = logging.getLogger("ggroute.router")
_MAGIC = b"GGRPFX1\n"


def cache_path(model: ScoringModel, prefix: list[int]) -> Path:
    key = hashlib.sha256()
    for part in model.state_identity():
        key.update(repr(part).encode() + b"\0")
    key.update(",".join(map(str, prefix)).encode())
    return cache_dir() / "router-prefix" / f"{key.hexdigest()[:32]}.kv"


def restore_prefix(model: ScoringModel, prefix: list[int]) -> bool:
    """Load the prefix's KV state into the model's context; False when there is no usable cache file."""
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
    if not model.restore_state(data[len(_MAGIC):], prefix):
        log.warning("router prefix cache %s does not fit this context; recomputing the prefix", path)
        return False
    return True


def save_prefix(model: ScoringModel, prefix: list[int]) -> None:
    """Store the model's KV state, which must hold exactly the prefix."""
    path = cache_path(model, prefix)
    try:
        write_atomic(path, _MAGIC + model.save_state())
    except OSError as exc:
        log.warning("cannot write router prefix cache %s (%s); the prefix will be recomputed next time", path, exc)
