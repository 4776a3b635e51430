"""llama.cpp's DRY sampler in the chain that llama-cpp-python's `Llama.generate()` builds.

generate() takes no DRY settings: it builds its sampler chain in `Llama._init_sampler` (penalties, then greedy or
top-k/typical/top-p/min-p/temperature/dist). `DryHook` wraps that method on one `Llama` and, when the current
request has DRY settings, moves everything after the penalties sampler out of the chain, appends DRY, and puts
the rest back: the order llama.cpp's own samplers use (penalties, dry, then truncation and the final pick).
The chain sees the tokens it samples (llama_sampler_sample accepts each one), so DRY looks at the generated
text, not the prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ggroute.core.errors import GenerationError
from ggroute.models.sampling import Dry

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp._internals import LlamaSampler

_PENALTIES = b"penalties"


class DryHook:
    """Adds DRY to the sampler chains `llama.generate()` builds while `settings` is set (per request)."""

    def __init__(self, llama: Llama) -> None:
        self.settings: Dry | None = None
        self._llama = llama
        self._build: Callable[..., LlamaSampler] = llama._init_sampler
        llama._init_sampler = self._init_sampler  # type: ignore[method-assign,assignment]

    def _init_sampler(self, **options: Any) -> LlamaSampler:
        sampler = self._build(**options)
        if self.settings is not None:
            _insert_dry(sampler, self._llama, self.settings)
        return sampler


def _insert_dry(sampler: LlamaSampler, llama: Llama, dry: Dry) -> None:
    import llama_cpp

    chain = sampler.sampler
    count = llama_cpp.llama_sampler_chain_n(chain)
    names = [llama_cpp.llama_sampler_name(llama_cpp.llama_sampler_chain_get(chain, i)) for i in range(count)]
    # Matched by suffix: this build reports the name with a stray leading byte (b"?penalties").
    penalties = [i for i, name in enumerate(names) if name is not None and name.endswith(_PENALTIES)]
    if not penalties:
        raise GenerationError(f"cannot add the DRY sampler: llama-cpp-python's sampler chain is {names}, "
                              "with no penalties sampler to put it after")
    after = penalties[0] + 1
    moved = [llama_cpp.llama_sampler_chain_remove(chain, after) for _ in range(count - after)]
    sampler.add_dry(llama._model, dry.multiplier, dry.base, dry.allowed_length, dry.penalty_last_n,
                    list(dry.sequence_breakers))
    for each in moved:
        llama_cpp.llama_sampler_chain_add(chain, each)
