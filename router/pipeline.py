"""One request from task to result: pick the model, lease it from the pool, generate, log one JSON line."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ggroute.core.tasks import validate_task
from ggroute.models.backend import Loader
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import LoadedConfig
from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.pool import ModelPool
from ggroute.router.request_log import RequestLog
from ggroute.router.routing import RouteOutcome, Router


class Pipeline:
    def __init__(self, loaded: LoadedConfig, loader: Loader | None = None) -> None:
        self.loaded = loaded
        self.catalog = ModelCatalog(loaded)
        self.pool = ModelPool(self.catalog, loader)
        self.log = RequestLog(loaded.log_path)
        self.router = Router(loaded.config.router, self.pool, loaded.router_head_path)

    def route(self, task: str, forced_route: str | None = None) -> RouteOutcome:
        return self.router.decide(validate_task(task), forced_route)

    @contextmanager
    def run(
        self,
        task: str,
        options: RequestOptions | None = None,
        *,
        forced_route: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[tuple[RouteOutcome, Generation]]:
        """Route the task, then generate on the route's model; the log line carries the route fields."""
        started = time.perf_counter()
        outcome = self.route(task, forced_route)
        with self.generate(outcome.model, task, options, cancel=cancel, started=started,
                           log_extra=outcome.log_fields()) as generation:
            yield outcome, generation

    @contextmanager
    def generate(
        self,
        model_name: str,
        task: str,
        options: RequestOptions | None = None,
        *,
        cancel: threading.Event | None = None,
        started: float | None = None,
        log_extra: dict[str, object] | None = None,
    ) -> Iterator[Generation]:
        """Lease `model_name` and yield a Generation to iterate; the request is logged when it ends."""
        started = started if started is not None else time.perf_counter()
        validate_task(task)
        self.catalog.loaded.model(model_name)  # unknown name: error before anything loads
        with self.pool.acquire(model_name) as lease:
            generation = Generation(
                lease.model, task, options, cancel=cancel, started=started, load_s=lease.load_s,
                evicted=lease.evicted,
            )
            try:
                yield generation
            finally:
                if generation.result is not None:
                    record = generation.result.model_dump(exclude={"prompt_preview", "text"})
                    record["text_chars"] = len(generation.result.text)
                    self.log.write({**record, **(log_extra or {})})

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
