"""One request from task to result: pick the model, lease it from the pool, generate, log one JSON line.

A route's `fallback` runs the request when the route's (remote) model fails before its first token: the
server is unreachable, answers with an error or is over its queue (`UpstreamError` with `before_output`). The
result's `fallback` names the model that failed and why; a warning says so too. Nothing else falls back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

from ggroute.core.errors import UpstreamError
from ggroute.core.tasks import validate_task
from ggroute.models.backend import Loader, TaskInput
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import LoadedConfig
from ggroute.models.generate import Generation, RequestOptions, validate_input
from ggroute.models.metrics import Fallback
from ggroute.models.pool import ModelPool
from ggroute.router.request_log import RequestLog, check_log_file
from ggroute.router.routing import RouteOutcome, Router

log = logging.getLogger("ggroute.pipeline")


class Pipeline:
    """Routes and generates requests; builds nothing heavy (models load on their first request).

    `check_log` (the default) raises ConfigError at once when the request log cannot be written, before any
    model loads; a pipeline that only routes (nothing is logged) passes False. A pipeline built without the
    check makes it on its first generation.
    """

    def __init__(self, loaded: LoadedConfig, loader: Loader | None = None, *, check_log: bool = True) -> None:
        self.loaded = loaded
        self.catalog = ModelCatalog(loaded)
        self.pool = ModelPool(self.catalog, loader)
        self.log = RequestLog(loaded.log_path)
        self.router = Router(loaded.config.router, self.pool, loaded.router_head_path)
        self._log_checked = False
        if check_log:
            self.check_log()

    def check_log(self) -> None:
        """ConfigError naming log_file and why it cannot be written; checked once (a later failure is a warning)."""
        if self._log_checked:
            return
        check_log_file(self.log.path, self.loaded.source)
        self._log_checked = True

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
        self.check_log()  # before the router model loads
        outcome = self.route(task, forced_route)
        router = self.loaded.config.router
        route = router.routes.get(outcome.route) if router is not None else None
        with self.generate(outcome.model, task, options, cancel=cancel, started=started,
                           log_extra=outcome.log_fields(),
                           fallback=route.fallback if route is not None else None) as generation:
            yield outcome, generation

    @contextmanager
    def generate(
        self,
        model_name: str,
        task: TaskInput,
        options: RequestOptions | None = None,
        *,
        cancel: threading.Event | None = None,
        started: float | None = None,
        log_extra: dict[str, object] | None = None,
        fallback: str | None = None,
        fallback_turn: Callable[[str], AbstractContextManager[object]] | None = None,
        fallback_options: RequestOptions | None = None,
    ) -> Iterator[Generation]:
        """Lease `model_name` and yield a Generation to iterate; the request is logged when it ends.

        With `fallback` (a route's), the generation is started here, up to its first token: a failure of the
        model's server before it runs the request on `fallback` instead (module docstring). `fallback_turn(name)`,
        when given, is entered before the fallback model is leased and held until the generation ends: the
        server waits there for that model's turn in its queue. `fallback_options` replace `options` on the
        fallback (the server caps a request's limits at each model's own).
        """
        started = started if started is not None else time.perf_counter()
        task = validate_input(task)
        self.catalog.loaded.model(model_name)  # unknown name: error before anything loads
        if fallback is not None:
            self.catalog.loaded.model(fallback)
        self.check_log()
        with ExitStack() as held:
            lease = held.enter_context(self.pool.acquire(model_name))
            generation = Generation(
                lease.model, task, options, cancel=cancel, started=started, load_s=lease.load_s,
                evicted=lease.evicted,
            )
            if fallback is not None:
                try:
                    generation.start()
                except UpstreamError as exc:
                    if not exc.before_output:
                        raise
                    log.warning("%s; running the request on the route's fallback model '%s'", exc, fallback)
                    held.close()  # the failed model's lease
                    if fallback_turn is not None:
                        held.enter_context(fallback_turn(fallback))
                    lease = held.enter_context(self.pool.acquire(fallback))
                    generation = Generation(
                        lease.model, task, fallback_options or options, cancel=cancel, started=started,
                        load_s=lease.load_s, evicted=lease.evicted,
                        fallback=Fallback(from_model=model_name, reason=str(exc)),
                    )
            try:
                yield generation
            finally:
                if generation.result is not None:
                    record = generation.result.model_dump(exclude={"prompt_preview", "text"})
                    record["text_chars"] = len(generation.result.text)
                    record["backend"] = generation.result.remote.backend if generation.result.remote else "llama.cpp"
                    self.log.write({**record, **(log_extra or {})})  # a failed write warns, never raises

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
