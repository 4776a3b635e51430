"""Lazy model pool under a memory budget.

Nothing loads until a request needs it. Before a load that would exceed `memory_budget_mb`, idle models are
evicted least-recently-used first, pinned models after every unpinned one; a model serving a request is never
evicted. Budget figures are the memory plan's estimates (models/memory.py); weights of a file that two roles
share are counted once, since llama.cpp maps the file and the pages are shared.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ggroute.core.errors import OverBudgetError, PoolBusyError
from ggroute.models import backend as backends
from ggroute.models.backend import Backend, Loader
from ggroute.models.catalog import ModelCatalog, ModelSpec


@dataclass
class _Entry:
    model: Backend
    in_use: int = 0


@dataclass
class Lease:
    """A model handed to one request, with what it cost to get it."""

    model: Backend
    load_s: float | None = None  # set when this request loaded it
    evicted: list[str] = field(default_factory=list)


class ModelPool:
    def __init__(self, catalog: ModelCatalog, loader: Loader | None = None) -> None:
        self.catalog = catalog
        self._loader = loader
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    @property
    def loaded_names(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def used_bytes(self, extra: ModelSpec | None = None) -> int:
        specs = [e.model.spec for e in self._entries.values()] + ([extra] if extra else [])
        weights = {s.path: s.plan.weight_bytes for s in specs}
        return sum(weights.values()) + sum(s.plan.kv_bytes + s.plan.compute_bytes for s in specs)

    @contextmanager
    def acquire(self, name: str) -> Iterator[Lease]:
        lease = self._checkout(name)
        try:
            yield lease
        finally:
            with self._lock:
                self._entries[name].in_use -= 1

    def _checkout(self, name: str) -> Lease:
        spec = self.catalog.spec(name)
        budget = self.catalog.budget_bytes
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                entry.in_use += 1
                self._entries.move_to_end(name)
                return Lease(entry.model)
            if spec.plan.own_bytes > budget:
                raise OverBudgetError(name, spec.plan.own_bytes, budget, spec.settings.context_size)
            evicted = self._evict_for(spec, budget)
            model = (self._loader or backends.load_backend)(spec)
            self._entries[name] = _Entry(model, in_use=1)
            return Lease(model, load_s=model.load_s, evicted=evicted)

    def _evict_for(self, spec: ModelSpec, budget: int) -> list[str]:
        evicted: list[str] = []
        while self.used_bytes(extra=spec) > budget:
            victim = self._eviction_candidate()
            if victim is None:
                busy = [n for n, e in self._entries.items() if e.in_use]
                raise PoolBusyError(
                    f"cannot load '{spec.name}' now: it needs ~{spec.plan.own_bytes / 1e6:.0f} MB and the "
                    f"budget is held by models serving requests ({', '.join(busy)}); retry when they finish "
                    "or raise memory_budget_mb"
                )
            self._entries.pop(victim).model.close()
            evicted.append(victim)
        return evicted

    def _eviction_candidate(self) -> str | None:
        idle = [(n, e) for n, e in self._entries.items() if e.in_use == 0]
        unpinned = [n for n, e in idle if not e.model.spec.settings.pinned]
        pinned = [n for n, e in idle if e.model.spec.settings.pinned]
        candidates = unpinned or pinned
        return candidates[0] if candidates else None

    def unload(self, name: str) -> bool:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.in_use:
                return False
            self._entries.pop(name).model.close()
            return True

    def close(self) -> None:
        with self._lock:
            while self._entries:
                _, entry = self._entries.popitem(last=False)
                entry.model.close()

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
