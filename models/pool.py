"""Lazy model pool under a memory budget.

Nothing loads until a request needs it. Before a load that would exceed `memory_budget_mb`, idle models are
evicted least-recently-used first, pinned models after every unpinned one; a model serving a request, being
loaded, or `expect`ed by a queued request is never evicted. Budget figures are the memory plan's estimates
(models/memory.py); weights of a file that two roles share are counted once, since llama.cpp maps the file and
the pages are shared. Remote models (a server elsewhere) take nothing from the budget and are never evicted for
room; "loading" one builds its client.

The pool's lock is never held while a model loads or closes: the load's memory is reserved under the lock, the
load runs outside it, so requests to loaded models go on meanwhile. A second request for a model that is being
loaded waits for that load instead of starting another.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ggroute.core.errors import GgrouteError, OverBudgetError, PoolBusyError
from ggroute.models import backend as backends
from ggroute.models.backend import Backend, Loader
from ggroute.models.catalog import AnySpec, ModelCatalog, ModelSpec


@dataclass
class _Entry:
    model: Backend
    in_use: int = 0


@dataclass
class _Loading:
    """A load in progress: its memory is reserved; requests for the same model wait on `done`."""

    spec: AnySpec
    done: threading.Event = field(default_factory=threading.Event)
    error: GgrouteError | None = None  # why it failed, for the requests that waited on it
    waiters: int = 0  # requests waiting for this load


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
        self._loading: dict[str, _Loading] = {}
        self._expected: Counter[str] = Counter()  # requests queued for a model (never evicted meanwhile)
        self._lock = threading.Lock()

    @property
    def loaded_names(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def status(self) -> dict[str, tuple[bool, int, bool]]:
        """Model name -> (loaded, requests holding it now, being loaded), for every model loaded or loading."""
        with self._lock:
            out = {name: (True, entry.in_use, False) for name, entry in self._entries.items()}
            out.update({name: (False, 0, True) for name in self._loading})
            return out

    def used_bytes(self, extra: ModelSpec | None = None, without: list[str] | None = None) -> int:
        """Estimated memory of the loaded models but `without`, the loads in progress and `extra`."""
        every = [e.model.spec for n, e in self._entries.items() if n not in (without or ())]
        every += [w.spec for w in self._loading.values()]
        every += [extra] if extra else []
        specs = [s for s in every if isinstance(s, ModelSpec)]  # remote models take no memory here
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

    @contextmanager
    def expect(self, name: str) -> Iterator[None]:
        """While inside, `name` is not evicted even when idle: a request is queued for it (the server)."""
        with self._lock:
            self._expected[name] += 1
        try:
            yield
        finally:
            with self._lock:
                self._expected[name] -= 1
                if not self._expected[name]:
                    del self._expected[name]

    def _checkout(self, name: str) -> Lease:
        spec = self.catalog.entry(name)
        budget = self.catalog.budget_bytes
        victims: list[tuple[str, Backend]] = []
        while True:
            with self._lock:
                entry = self._entries.get(name)
                if entry is not None:
                    entry.in_use += 1
                    self._entries.move_to_end(name)
                    return Lease(entry.model)
                loading = self._loading.get(name)
                if loading is None:  # this request loads it: reserve the memory, then load without the lock
                    if isinstance(spec, ModelSpec):
                        if spec.plan.own_bytes > budget:
                            raise OverBudgetError(name, spec.plan.own_bytes, budget, spec.settings.context_size)
                        victims = self._evict_for(spec, budget)
                    loading = self._loading[name] = _Loading(spec)
                    break
                loading.waiters += 1
            loading.done.wait()  # another request is loading it: use that load (or its error)
            if loading.error is not None:
                raise loading.error
        return self._load(loading, victims)

    def _load(self, loading: _Loading, victims: list[tuple[str, Backend]]) -> Lease:
        name = loading.spec.name
        model: Backend | None = None
        try:
            for _, victim in victims:  # closed before the load that needs their room
                victim.close()
            model = (self._loader or backends.load_backend)(loading.spec)
        except GgrouteError as exc:
            loading.error = exc
            raise
        finally:
            with self._lock:
                del self._loading[name]
                if model is not None:
                    self._entries[name] = _Entry(model, in_use=1)
            loading.done.set()
        return Lease(model, load_s=model.load_s, evicted=[n for n, _ in victims])

    def _evict_for(self, spec: ModelSpec, budget: int) -> list[tuple[str, Backend]]:
        """Take idle models out of the pool (under the lock) until `spec` fits; the caller closes them."""
        chosen: list[str] = []
        while self.used_bytes(extra=spec, without=chosen) > budget:
            victim = self._eviction_candidate(chosen)
            if victim is None:
                held = [n for n, e in self._entries.items() if e.in_use or n in self._expected] + list(self._loading)
                raise PoolBusyError(
                    f"cannot load '{spec.name}' now: it needs ~{spec.plan.own_bytes / 1e6:.0f} MB and the "
                    f"budget is held by models serving, awaiting or loading requests ({', '.join(held)}); retry "
                    "when they finish or raise memory_budget_mb"
                )
            chosen.append(victim)
        return [(name, self._entries.pop(name).model) for name in chosen]

    def _eviction_candidate(self, chosen: list[str]) -> str | None:
        idle = [(n, e) for n, e in self._entries.items()
                if e.in_use == 0 and n not in self._expected and n not in chosen
                and isinstance(e.model.spec, ModelSpec)]  # closing a remote model frees no memory
        unpinned = [n for n, e in idle if not e.model.spec.settings.pinned]
        pinned = [n for n, e in idle if e.model.spec.settings.pinned]
        candidates = unpinned or pinned
        return candidates[0] if candidates else None

    def unload(self, name: str) -> bool:
        """Close an idle model; False when it is not loaded or a request holds it."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.in_use:
                return False
            model = self._entries.pop(name).model
        model.close()
        return True

    def close(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:  # least recently used first
            entry.model.close()

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
