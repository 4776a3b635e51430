"""Write a copy of a GGUF model that keeps only its first N transformer blocks (`layers` in config.json).

Why: the router never generates text; its route head reads a hidden state, and a hidden state from a middle
block separates the routes as well as the last one does (docs/performance.md#routing measures it). Prompt
processing costs about the same per block, so a router cut to a third of its blocks decides in about half the
time. The copy keeps every other tensor and key (the token embedding, the final norm, the output matrix, the
vocabulary) and sets `<arch>.block_count`; per-block arrays in the header are cut to match.

The tensor data is copied byte for byte: nothing is converted here (`weights_type` does that afterwards).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ggroute.core.errors import ModelFileError
from ggroute.models.gguf_info import _SCALAR_FORMATS, GGUF_MAGIC, MetadataValue, _Reader, _tensor_bytes, _Truncated

_BLOCK_TENSOR = re.compile(r"^blk\.(\d+)\.")
_UINT32, _ARRAY = 4, 9
_COPY_CHUNK = 1 << 22


@dataclass(frozen=True)
class _Tensor:
    name: str
    info: bytes  # dims and type, as in the source header (the offset is written anew)
    offset: int  # in the source's data section
    nbytes: int


def _string_bytes(text: str) -> bytes:
    encoded = text.encode("utf-8")
    return struct.pack("<Q", len(encoded)) + encoded


def _aligned(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def truncate_layers(source: Path, target: Path, keep: int) -> int:
    """Write `source` with its first `keep` blocks to `target`; returns the source's block count.

    ModelFileError when `keep` is not below the model's block count or the file is not a complete GGUF."""
    try:
        with source.open("rb") as handle:
            return _truncate(handle, source, target, keep)
    except _Truncated:
        raise ModelFileError(f"{source}: GGUF file is cut short: re-download or reinstall it") from None
    except OSError as exc:
        raise ModelFileError(f"cannot copy the first {keep} layers of {source.name}: {exc.strerror or exc}") from None


def _truncate(handle: BinaryIO, source: Path, target: Path, keep: int) -> int:
    reader = _Reader(handle)
    if reader.read(4) != GGUF_MAGIC:
        raise ModelFileError(f"{source} is not a GGUF file")
    version = reader.u32()
    if version != 3:
        raise ModelFileError(f"{source}: GGUF version {version}; cutting layers needs version 3 (re-convert it)")
    n_tensors, n_kv = reader.u64(), reader.u64()
    entries: list[tuple[str, int, int, int, MetadataValue]] = []  # key, type, start, end, value
    for _ in range(n_kv):
        start = handle.tell()
        key = reader.string()
        kind = reader.u32()
        value = reader.value(kind)
        entries.append((key, kind, start, handle.tell(), value))
    values = {key: value for key, _, _, _, value in entries}
    arch = str(values.get("general.architecture", ""))
    block_key = f"{arch}.block_count"
    blocks = values.get(block_key)
    if not isinstance(blocks, int):
        raise ModelFileError(f"{source}: the GGUF header has no '{block_key}', so its layers cannot be cut")
    if not 1 <= keep < blocks:
        raise ModelFileError(f"{source.name} has {blocks} layers: 'layers' must be from 1 to {blocks - 1}, not {keep}")
    alignment = int(str(values.get("general.alignment", 32)))

    tensors: list[_Tensor] = []
    for _ in range(n_tensors):
        name = reader.string()
        n_dims = reader.u32()
        dims_raw = reader.read(8 * n_dims)
        dims = list(struct.unpack(f"<{n_dims}Q", dims_raw))
        type_raw = reader.read(4)
        offset = reader.u64()
        nbytes = _tensor_bytes(struct.unpack("<I", type_raw)[0], dims)
        tensors.append(_Tensor(name, struct.pack("<I", n_dims) + dims_raw + type_raw, offset, nbytes))
    data_start = _aligned(handle.tell(), alignment)
    kept = [t for t in tensors if not ((m := _BLOCK_TENSOR.match(t.name)) and int(m.group(1)) >= keep)]

    header = bytearray(GGUF_MAGIC + struct.pack("<IQQ", 3, len(kept), n_kv))
    for key, kind, start, end, value in entries:
        if key == block_key:
            header += _string_bytes(key) + struct.pack("<II", _UINT32, keep)
        elif (kind == _ARRAY and key.startswith(f"{arch}.") and isinstance(value, list) and len(value) == blocks):
            handle.seek(start)
            reader.string()
            reader.u32()
            element = reader.u32()
            fmt = _SCALAR_FORMATS[element].removeprefix("<")
            header += _string_bytes(key) + struct.pack("<IIQ", _ARRAY, element, keep)
            header += struct.pack(f"<{keep}{fmt}", *value[:keep])
        else:
            handle.seek(start)
            header += reader.read(end - start)
    new_offset = 0
    placed: list[tuple[_Tensor, int]] = []
    for tensor in kept:
        header += _string_bytes(tensor.name) + tensor.info + struct.pack("<Q", new_offset)
        placed.append((tensor, new_offset))
        new_offset = _aligned(new_offset + tensor.nbytes, alignment)
    header += b"\0" * (_aligned(len(header), alignment) - len(header))

    with target.open("wb") as out:
        out.write(header)
        for tensor, offset in placed:
            out.seek(len(header) + offset)
            handle.seek(data_start + tensor.offset)
            remaining = tensor.nbytes
            while remaining:
                chunk = reader.read(min(remaining, _COPY_CHUNK))
                out.write(chunk)
                remaining -= len(chunk)
        out.truncate(len(header) + new_offset)
    return blocks
