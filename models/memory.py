"""Memory plan: what a model will take once loaded, from GGUF metadata alone.

estimate = weights (mmap'd file pages, shared between roles that name the same file)
         + repacked weights (Q4_0 / IQ4_NL matrices llama.cpp copies into an interleaved layout on the CPU; per
           model, not shared; not counted when every layer and the output are offloaded to a GPU)
         + KV cache (layers x cells x kv heads x (key + value length) x bytes per element: 2 for f16, less
           for keys of a quantized `cache_type_k`)
         + compute allowance (attention scores for a full batch at full context, activations,
           vocabulary tables)
The constants of the compute allowance were fitted to llama.cpp 0.3.36's resident memory on CPU;
benchmarks/memory_estimate.py measures the estimate against RSS growth (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ggroute.models.gguf_info import GGUFInfo

KV_ELEMENT_BYTES = 2  # llama.cpp's default KV cache type is f16
# Bytes per element of each cache type; q8_0 and q4_0 store blocks of 32 values with one f16 scale.
CACHE_TYPE_BYTES = {"f16": 2.0, "bf16": 2.0, "f32": 4.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
_CACHE_TYPE_BLOCK = {"q8_0": 32, "q4_0": 32}
KV_TABLE_CONTEXTS = (2048, 4096, 8192, 16384, 32768)
_CELL_PAD = 256  # llama.cpp pads the KV cache to a multiple of 256 cells
# Fitted to resident memory after a context-filling request (benchmarks/memory_estimate.py), rounded up so
# that the estimate errs on the high side.
_BASE_OVERHEAD = 20 * 1024 * 1024  # llama.cpp context, threads, buffers that do not scale
_VOCAB_BYTES_PER_TOKEN = 300  # token text, scores and lookup maps kept by llama.cpp's vocabulary
_ACTIVATION_BYTES_PER_EMBD = 24  # per batch token and embedding dimension
_ATTENTION_BYTES = 6  # per batch token x KV cell x (heads + 1): scores, softmax and masks, as allocated


def _pad(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def key_type_problem(info: GGUFInfo, key_type: str) -> str | None:
    """Why this model's keys cannot be stored as `key_type`: ggml sizes quantized rows in whole blocks and only
    assert()s it, which release builds compile out, so llama.cpp would not say so itself."""
    block = _CACHE_TYPE_BLOCK.get(key_type)
    if block is not None and info.key_length % block:
        return (f"cache_type_k {key_type} stores keys in blocks of {block} values, but this model's key length is "
                f"{info.key_length}: use f16")
    return None


def kv_cache_bytes(
    info: GGUFInfo, context_size: int, *, n_ubatch: int = 512, swa_full: bool = True, key_type: str = "f16"
) -> int:
    cells_full = _pad(context_size, _CELL_PAD)
    window = info.sliding_window
    cells_swa = cells_full
    if not swa_full and window is not None:
        cells_swa = min(cells_full, _pad(window + n_ubatch, _CELL_PAD))
    per_cell = round(info.key_length * CACHE_TYPE_BYTES[key_type]) + info.value_length * KV_ELEMENT_BYTES
    total = 0
    for heads, is_swa in zip(info.n_head_kv_per_layer(), info.swa_layers(), strict=False):
        total += (cells_swa if is_swa else cells_full) * heads * per_cell
    return total


def compute_bytes(info: GGUFInfo, context_size: int, n_ubatch: int) -> int:
    attention = n_ubatch * _pad(context_size, _CELL_PAD) * (info.n_head + 1) * _ATTENTION_BYTES
    activations = n_ubatch * info.n_embd * _ACTIVATION_BYTES_PER_EMBD
    vocabulary = info.n_vocab * _VOCAB_BYTES_PER_TOKEN
    return _BASE_OVERHEAD + attention + activations + vocabulary


@dataclass(frozen=True)
class ModelPlan:
    name: str
    path: str
    context_size: int
    weight_bytes: int
    kv_bytes: int
    compute_bytes: int
    shares_weights_with: str | None = None  # another role already counts this file's weights
    repacked_bytes: int = 0  # the CPU backend's interleaved copy of some weights: each loaded model has its own
    prompt_copy_bytes: int = 0  # the prompt_weights_type copy: its weights, KV cache and compute buffers

    @property
    def own_bytes(self) -> int:
        """What loading this model adds while nothing else is loaded."""
        return self.weight_bytes + self.repacked_bytes + self.kv_bytes + self.compute_bytes + self.prompt_copy_bytes

    @property
    def added_bytes(self) -> int:
        """What it adds in the plan, where shared weights are counted once."""
        weights = 0 if self.shares_weights_with else self.weight_bytes
        return weights + self.repacked_bytes + self.kv_bytes + self.compute_bytes + self.prompt_copy_bytes


def plan_model(
    name: str,
    info: GGUFInfo,
    context_size: int,
    n_batch: int,
    swa_full: bool,
    shares_with: str | None = None,
    key_type: str = "f16",
    n_gpu_layers: int = 0,
) -> ModelPlan:
    n_ubatch = min(n_batch, 512)
    return ModelPlan(
        name=name,
        path=str(info.path),
        context_size=context_size,
        weight_bytes=info.weight_bytes,
        kv_bytes=kv_cache_bytes(info, context_size, n_ubatch=n_ubatch, swa_full=swa_full, key_type=key_type),
        compute_bytes=compute_bytes(info, context_size, n_ubatch),
        shares_weights_with=shares_with,
        # llama.cpp puts every layer and the output on the GPU at -1 or above the block count: nothing to repack
        repacked_bytes=0 if n_gpu_layers == -1 or n_gpu_layers > info.n_layers else info.repacked_bytes,
    )


def kv_table(info: GGUFInfo, swa_full: bool, key_type: str = "f16") -> dict[int, int]:
    """KV cache bytes at the usual context sizes: the table users tune context_size from."""
    return {ctx: kv_cache_bytes(info, ctx, swa_full=swa_full, key_type=key_type) for ctx in KV_TABLE_CONTEXTS}
