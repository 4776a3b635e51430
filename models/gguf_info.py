"""Read what ggroute needs from a GGUF file header without loading the model.

A small reader of its own: gguf's GGUFReader parses every vocabulary string into numpy objects, which takes
seconds on a 262k-token vocabulary; this reader skips arrays it does not need and takes milliseconds. It also
checks that the file is complete before llama.cpp sees it (llama.cpp can abort the process on a corrupt file).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from ggroute.core.errors import ModelFileError
from ggroute.models.hub_ref import split_parts

GGUF_MAGIC = b"GGUF"
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_SMALL_ARRAY = 4096  # numeric arrays up to this length are kept (per-layer head counts); longer ones skipped
# Sliding-window layer pattern per architecture, as llama.cpp hard-codes it (not in the metadata):
# every Nth layer uses full attention, the others the sliding window.
_SWA_PATTERN = {"gemma3": 6, "gemma2": 2, "cohere2": 4, "gemma3n": 5}


class _Truncated(Exception):
    pass


@dataclass(frozen=True)
class ArrayInfo:
    """An array value that was skipped: its element type and length only."""

    element_type: int
    length: int


Number = int | float  # every GGUF scalar type but string (bool is an int)
# A header value as the reader keeps it: a scalar, a short numeric array, or a skipped array.
MetadataValue = Number | str | list[Number] | ArrayInfo


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    file_size: int
    metadata: dict[str, MetadataValue]
    weight_bytes: int
    tensor_count: int
    # Tensors llama.cpp's CPU backend copies into an interleaved layout at load (Q4_0, IQ4_NL matrices): the copy
    # is resident beside the file's pages, per loaded model.
    repacked_bytes: int = 0

    def _arch_key(self, suffix: str) -> MetadataValue | None:
        return self.metadata.get(f"{self.architecture}.{suffix}")

    def _required_int(self, suffix: str) -> int:
        """An architecture key the memory plan cannot do without: missing is an error, never 0."""
        key = f"{self.architecture}.{suffix}"
        value = self.metadata.get(key)
        if value is None:
            raise ModelFileError(
                f"{self.path}: GGUF header has no '{key}', so its KV cache size cannot be estimated: "
                "re-convert the model with a current llama.cpp (convert_hf_to_gguf.py)"
            )
        return _first_int(value)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", self.path.stem))

    @property
    def n_layers(self) -> int:
        return self._required_int("block_count")

    @property
    def n_ctx_train(self) -> int:
        return _as_int(self._arch_key("context_length") or 0)

    @property
    def n_embd(self) -> int:
        return self._required_int("embedding_length")

    @property
    def n_head(self) -> int:
        return self._required_int("attention.head_count")

    def n_head_kv_per_layer(self) -> list[int]:
        value = self._arch_key("attention.head_count_kv")
        if isinstance(value, list):
            return [int(v) for v in value]
        count = _as_int(value) if value is not None else self.n_head
        return [count] * self.n_layers

    @property
    def key_length(self) -> int:
        value = self._arch_key("attention.key_length")
        return _as_int(value) if value else self.n_embd // max(self.n_head, 1)

    @property
    def value_length(self) -> int:
        value = self._arch_key("attention.value_length")
        return _as_int(value) if value else self.n_embd // max(self.n_head, 1)

    @property
    def sliding_window(self) -> int | None:
        value = self._arch_key("attention.sliding_window")
        return _as_int(value) if value else None

    def swa_layers(self) -> list[bool]:
        """Which layers use the sliding window (all False when the model has none or the pattern is unknown)."""
        pattern = _SWA_PATTERN.get(self.architecture)
        if self.sliding_window is None or pattern is None:
            return [False] * self.n_layers
        return [(il + 1) % pattern != 0 for il in range(self.n_layers)]

    @property
    def n_vocab(self) -> int:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, ArrayInfo):
            return tokens.length
        return self._required_int("vocab_size")

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) and value.strip() else None

    @property
    def quantization(self) -> str:
        from gguf.constants import LlamaFileType  # imports numpy: only when a header is read

        file_type = self.metadata.get("general.file_type")
        try:
            return LlamaFileType(_as_int(file_type)).name.removeprefix("MOSTLY_")
        except (TypeError, ValueError):
            return "unknown"


def _as_int(value: MetadataValue | None) -> int:
    """`int(value)` for a scalar; TypeError (as `int()` raises it) for an array or a missing value."""
    if value is None or isinstance(value, list | ArrayInfo):
        raise TypeError(f"expected a number in the GGUF header, got {value!r}")
    return int(value)


def _first_int(value: MetadataValue) -> int:
    if isinstance(value, list):
        return int(value[0]) if value else 0
    return _as_int(value)


class _Reader:
    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def read(self, n: int) -> bytes:
        data = self.handle.read(n)
        if len(data) != n:
            raise _Truncated()
        return data

    def scalar(self, kind: int) -> Number:
        fmt = _SCALAR_FORMATS[kind]
        value: Number = struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack("<Q", self.read(8))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack("<I", self.read(4))[0]
        return value

    def string(self) -> str:
        return self.read(self.u64()).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        for _ in range(count):
            self.handle.seek(self.u64(), 1)

    def value(self, kind: int) -> MetadataValue:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            element, count = self.u32(), self.u64()
            if element == _STRING:
                self.skip_strings(count)
                return ArrayInfo(element, count)
            if element not in _SCALAR_FORMATS:
                raise ModelFileError(f"unsupported GGUF array element type {element}")
            size = struct.calcsize(_SCALAR_FORMATS[element])
            if count <= _SMALL_ARRAY:
                fmt = "<" + _SCALAR_FORMATS[element][1] * count
                return list(struct.unpack(fmt, self.read(size * count)))
            self.handle.seek(size * count, 1)
            return ArrayInfo(element, count)
        if kind not in _SCALAR_FORMATS:
            raise ModelFileError(f"unsupported GGUF value type {kind}")
        return self.scalar(kind)


_REPACKED_TYPES = {2, 20}  # GGML_TYPE_Q4_0, GGML_TYPE_IQ4_NL: measured resident twice (docs/performance.md)


def _tensor_bytes(type_id: int, dims: list[int]) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # numpy: only when a header is read

    try:
        qtype = GGMLQuantizationType(type_id)
    except ValueError:
        raise ModelFileError(f"unknown GGML tensor type {type_id}") from None
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    elements = 1
    for d in dims:
        elements *= d
    return elements // block_size * type_size


def read_gguf_info(path: Path) -> GGUFInfo:
    """Parse the header and tensor table of a GGUF file; raise ModelFileError if it is not complete GGUF.

    For the first part of a split model (`split.count` > 1, named NAME-00001-of-0000N.gguf) every part is read
    and checked, and the sizes are the whole model's."""
    info = _read_one(path)
    count = info.metadata.get("split.count")
    if not isinstance(count, int) or count <= 1 or info.metadata.get("split.no", 0) != 0:
        return info
    parts = split_parts(path.name)
    if len(parts) != count:
        raise ModelFileError(f"{path}: its header says the model is split into {count} files, but the name is not "
                             f"the first of {count} (NAME-00001-of-{count:05d}.gguf): keep the names llama.cpp wrote")
    others = [_read_one(path.with_name(part)) for part in parts[1:]]
    return replace(info, file_size=info.file_size + sum(o.file_size for o in others),
                   weight_bytes=info.weight_bytes + sum(o.weight_bytes for o in others),
                   tensor_count=info.tensor_count + sum(o.tensor_count for o in others),
                   repacked_bytes=info.repacked_bytes + sum(o.repacked_bytes for o in others))


def _read_one(path: Path) -> GGUFInfo:
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"model path is not a file: {path}")
    try:
        with path.open("rb") as handle:
            return parse_gguf_header(handle, path, path.stat().st_size)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc}") from None


def parse_gguf_header(handle: BinaryIO, path: Path, file_size: int) -> GGUFInfo:
    """The header of one GGUF file from a seekable handle (a local file, or ranged reads of a remote one);
    `path` names it in messages."""
    try:
        return _parse(_Reader(handle), path, file_size)
    except _Truncated:
        raise ModelFileError(f"{path}: GGUF header is cut short ({file_size} bytes): the file is truncated") from None
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path}: corrupt GGUF header ({exc})") from None


def _parse(reader: _Reader, path: Path, file_size: int) -> GGUFInfo:
    magic = reader.handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    version = reader.u32()
    if version not in (2, 3):
        raise ModelFileError(f"{path}: unsupported GGUF version {version} (llama.cpp reads 2 and 3)")
    n_tensors, n_kv = reader.u64(), reader.u64()
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise ModelFileError(f"{path}: corrupt GGUF header ({n_tensors} tensors, {n_kv} keys)")
    metadata: dict[str, MetadataValue] = {}
    for _ in range(n_kv):
        key = reader.string()
        metadata[key] = reader.value(reader.u32())
    weight_bytes, repacked_bytes, data_end = 0, 0, 0
    for _ in range(n_tensors):
        name = reader.string()
        dims = [reader.u64() for _ in range(reader.u32())]
        type_id = reader.u32()
        nbytes = _tensor_bytes(type_id, dims)
        offset = reader.u64()
        weight_bytes += nbytes
        if type_id in _REPACKED_TYPES and len(dims) == 2 and name != "token_embd.weight":  # embeddings: row lookups
            repacked_bytes += nbytes
        data_end = max(data_end, offset + nbytes)
    alignment = _as_int(metadata.get("general.alignment", 32) or 32)
    header_end = reader.handle.tell()
    data_start = (header_end + alignment - 1) // alignment * alignment
    if data_start + data_end > file_size:
        raise ModelFileError(
            f"{path} is truncated: tensor data needs {data_start + data_end} bytes, the file has {file_size} "
            "(re-download or reinstall it)"
        )
    return GGUFInfo(path, file_size, metadata, weight_bytes, n_tensors, repacked_bytes)
