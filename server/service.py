"""What the server does with a request, apart from HTTP: pick the model, wait for its turn, generate.

Model work (routing, loading, generating) runs in worker threads, one per model at a time (server/queues.py);
the event loop only waits. A generation's text reaches the loop through an asyncio.Queue as it is produced.
Its cancel Event stops it at the next token, prompt processing included: the client left, or the server is
shutting down. The model's turn ends when its thread has finished, so the next request never finds it busy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TypedDict, TypeVar

from ggroute.core.errors import GenerationError, GgrouteError
from ggroute.models.backend import Loader
from ggroute.models.config import LoadedConfig
from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.metrics import GenerationResult
from ggroute.router.pipeline import Pipeline
from ggroute.router.routing import RouteOutcome
from ggroute.server.errors import ApiError, from_ggroute, retry_after, unknown_model
from ggroute.server.protocol import Kind, ParsedRequest
from ggroute.server.queues import ModelQueue, QueueFull
from ggroute.server.responses import Decision

API_KEY_ENV = "GGROUTE_API_KEY"
DISCONNECT_POLL_S = 0.25
RECENT_REQUESTS = 20
SHUTDOWN_GRACE_S = 3.0  # after a signal, streams may take this long to send their last chunk and [DONE]
log = logging.getLogger("ggroute.server")
T = TypeVar("T")


class ModelRow(TypedDict):
    name: str
    loaded: bool
    loading: bool
    busy: bool
    queued: int
    estimate_bytes: int | None
    context_size: int | None
    error: str | None
    backend: str  # "llama.cpp" (local) or "openai" (remote: no memory estimate, served at base_url)
    base_url: str | None


class ModelsStatus(TypedDict):
    memory_budget_bytes: int
    used_bytes: int
    models: list[ModelRow]


class RecentRow(TypedDict):
    time: str
    requested: str
    route: str | None
    confidence: float | None
    model: str
    finish_reason: str
    completion_tokens: int
    decode_tokens_per_s: float | None
    queue_wait_s: float
    wall_s: float


class ClientGone(Exception):
    """The client disconnected before its response was ready: nobody is left to answer."""


class ShuttingDown(ApiError):
    def __init__(self) -> None:
        super().__init__(503, "the server is shutting down", type="server_error", code="shutting_down")


Event = tuple[str, object]  # ("started", Generation) | ("text", str) | ("done", GenerationResult) | ("error", exc)


@dataclass(eq=False)  # hashed by identity: the service keeps a set of running jobs
class Job:
    """One generation in a worker thread, its events on `events` (in the event loop)."""

    request: ParsedRequest
    decision: Decision
    queue_wait_s: float
    started: float
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)
    result: GenerationResult | None = None
    model: str | None = None  # the model generating: the decision's, or its route's fallback

    def emit(self, kind: str, payload: object) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))


class Service:
    def __init__(self, loaded: LoadedConfig, loader: Loader | None = None) -> None:
        self.loaded = loaded
        self.settings = loaded.config.server
        self.api_key = os.environ.get(API_KEY_ENV) or self.settings.api_key
        self.pipeline = Pipeline(loaded, loader)  # an unusable log_file is a ConfigError now, before serving
        self.pipeline.router.check_head()  # so is a missing or stale route head file
        names = self.pipeline.catalog.names
        self.queues = {name: ModelQueue(name, self.settings.queue_size) for name in names}
        self.executor = ThreadPoolExecutor(max_workers=len(names) + 2, thread_name_prefix="ggroute-serve")
        self.recent: deque[RecentRow] = deque(maxlen=RECENT_REQUESTS)
        self.jobs: set[Job] = set()
        self._closing = threading.Event()
        self._router_lock: asyncio.Lock | None = None

    @property
    def closing(self) -> bool:
        """Whether shutdown has begun (checked again after every wait: it may begin meanwhile)."""
        return self._closing.is_set()

    # --- which model ----------------------------------------------------------------------------------------

    @property
    def routes(self) -> dict[str, str]:
        router = self.loaded.config.router
        return {name: route.model for name, route in router.routes.items()} if router is not None else {}

    def model_ids(self) -> list[str]:
        """What `model` may name: auto (with a router), the routes, the models; each once."""
        ids = (["auto"] if self.loaded.config.router is not None else []) + list(self.routes)
        return list(dict.fromkeys(ids + self.pipeline.catalog.names))

    async def decide(self, request: ParsedRequest, disconnected: Callable[[], Awaitable[bool]]) -> Decision:
        name = request.model
        if name == "auto" and self.loaded.config.router is not None:
            if self._router_lock is None:
                self._router_lock = asyncio.Lock()
            async with self._router_lock:  # one routing at a time: the router model serves one caller
                outcome: RouteOutcome = await self.watch(
                    self.in_thread(self.pipeline.route, request.route_text), disconnected)
            return Decision(outcome.model, outcome, outcome.reason)
        if name in self.routes:
            outcome = RouteOutcome(name, self.routes[name], None, "route named in the request", 0.0)
            return Decision(outcome.model, outcome, outcome.reason)
        if name in self.queues:
            return Decision(name, None, "model named in the request")
        if name == "auto":
            raise ApiError(404, "model 'auto' needs a `router` section in config.json (docs/routing.md); name a "
                           f"model instead ({', '.join(self.model_ids())})", param="model", code="model_not_found")
        raise unknown_model(name, self.model_ids())

    # --- running a generation -------------------------------------------------------------------------------

    async def start(self, request: ParsedRequest, decision: Decision, endpoint: str,
                    disconnected: Callable[[], Awaitable[bool]]) -> Job:
        """Wait for the model's turn, start the generation, and return once it has a prompt (or failed)."""
        if self.closing:
            raise ShuttingDown()
        queue = self.queues[decision.model]
        held = ExitStack()
        held.enter_context(self.pipeline.pool.expect(decision.model))  # not evicted while this request waits
        queued = time.perf_counter()
        try:
            await self.watch(queue.turn(), disconnected)
        except QueueFull as exc:
            held.close()
            raise ApiError(429, str(exc), type="rate_limit_error", code="queue_full",
                           headers=retry_after(exc.retry_after_s)) from None
        except ClientGone:  # gave up in the queue: nothing ran, but the request is logged like any other
            held.close()
            self.pipeline.log.write({
                "model": decision.model, "finish_reason": "cancelled", "cancelled_in": "queue", "text_chars": 0,
                **decision.log_fields(), "endpoint": endpoint, "requested_model": request.model,
                "stream": request.stream, "queue_wait_s": round(time.perf_counter() - queued, 4), "user": request.user})
            raise
        except BaseException:
            held.close()
            raise
        started = time.perf_counter()
        job = Job(request, decision, started - queued, started, asyncio.get_running_loop())
        self.jobs.add(job)

        def finished(_: object) -> None:  # in the loop: the thread is done, the model is free
            self.jobs.discard(job)
            held.close()
            queue.release(time.perf_counter() - started)
            if job.result is not None:
                self.recent.appendleft(self._recent_row(job, job.result))

        future = job.loop.run_in_executor(self.executor, self._work, job, endpoint)
        future.add_done_callback(finished)
        if self._closing.is_set():  # shutdown began while it waited: stop at once
            job.cancel.set()
        kind, payload = await self.next_event(job, disconnected)
        if kind == "error":
            raise self.api_error(payload, job.request.kind)
        if isinstance(payload, Generation):
            job.model = payload.model.spec.name
        return job

    def _fallback_of(self, decision: Decision) -> str | None:
        """The route's fallback model, as `ggroute run` passes it: only when the request chose the route (`auto`
        or a route's name), never for a model named directly."""
        router = self.loaded.config.router
        if decision.route is None or router is None:
            return None
        route = router.routes.get(decision.route.route)
        return route.fallback if route is not None else None

    @contextmanager
    def _fallback_turn(self, job: Job, name: str, deadline: float) -> Iterator[None]:
        """In the worker thread: wait for the fallback model's turn in its queue (it may be serving others) and
        hold it until the generation ends; give up when the client leaves, the server stops or timeout_s passes."""
        queue = self.queues[name]

        async def take_turn() -> bool:
            task = asyncio.ensure_future(queue.turn())
            while True:
                done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
                if done:
                    task.result()
                    return True
                if job.cancel.is_set() or time.perf_counter() > deadline:
                    task.cancel()  # turn() leaves the queue, or passes on a turn granted meanwhile
                    return False

        try:
            granted = asyncio.run_coroutine_threadsafe(take_turn(), job.loop).result()
        except QueueFull as exc:
            raise ApiError(503, f"the route's model failed and its fallback: {exc}", type="server_error",
                           code="fallback_busy", headers=retry_after(exc.retry_after_s)) from None
        if not granted:
            raise ApiError(503, f"the route's model failed and its fallback model '{name}' stayed busy until the "
                           "request was cancelled or its timeout_s passed", type="server_error",
                           code="fallback_busy", headers=retry_after(queue.retry_after_s()))
        held = time.perf_counter()
        try:
            yield
        finally:
            job.loop.call_soon_threadsafe(queue.release, time.perf_counter() - held)

    def _options(self, request: ParsedRequest, model: str) -> RequestOptions:
        """The request's limits, each capped at the model's own."""
        settings = self.loaded.model(model)
        return RequestOptions(
            max_tokens=min(request.max_tokens or settings.max_tokens, settings.max_tokens),
            timeout_s=min(request.timeout_s or settings.timeout_s, settings.timeout_s),
            temperature=request.temperature, seed=request.seed, stop=request.stop,
        )

    def _work(self, job: Job, endpoint: str) -> None:
        """The worker thread: lease the model, generate under the request's limits, log one line."""
        request = job.request
        options = self._options(request, job.decision.model)
        fallback = self._fallback_of(job.decision)
        fallback_options = self._options(request, fallback) if fallback is not None else None

        def fallback_turn(name: str) -> AbstractContextManager[None]:
            limit = fallback_options.timeout_s if fallback_options is not None else None
            return self._fallback_turn(job, name, job.started + (limit or 0.0))

        extra = {**job.decision.log_fields(), "endpoint": endpoint, "requested_model": request.model,
                 "stream": request.stream, "queue_wait_s": round(job.queue_wait_s, 4), "user": request.user}
        try:
            with self.pipeline.generate(job.decision.model, request.task, options, cancel=job.cancel,
                                        started=job.started, log_extra=extra, fallback=fallback,
                                        fallback_turn=fallback_turn, fallback_options=fallback_options,
                                        ) as generation:
                job.emit("started", generation)
                self._produce(job, generation)
            job.result = generation.result
            job.emit("done", generation.result)
        except (GgrouteError, ApiError) as exc:  # ApiError: the fallback's queue (full, shutting down)
            job.emit("error", exc)
        except Exception as exc:  # a bug: the client gets a 500, the server log the traceback
            log.exception("request on model '%s' failed", job.decision.model)
            job.emit("error", GenerationError(f"internal error: {exc!r}"))

    @staticmethod
    def _produce(job: Job, generation: Generation) -> None:
        if job.request.stream:
            for piece in generation:
                job.emit("text", piece)
        else:
            generation.run()

    async def next_event(self, job: Job, disconnected: Callable[[], Awaitable[bool]]) -> Event:
        try:
            return await self.watch(job.events.get(), disconnected)
        except ClientGone:
            job.cancel.set()
            raise

    @staticmethod
    def api_error(payload: object, kind: Kind = "chat") -> ApiError:
        if isinstance(payload, ApiError):
            return payload
        if isinstance(payload, GgrouteError):
            return from_ggroute(payload, prompt_field="messages" if kind == "chat" else "prompt")
        return ApiError(500, f"internal error: {payload!r}", type="server_error")

    def in_thread(self, function: Callable[..., T], *args: object) -> asyncio.Future[T]:
        async def call() -> T:
            try:
                return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)
            except GgrouteError as exc:
                raise from_ggroute(exc) from None

        return asyncio.ensure_future(call())

    @staticmethod
    async def watch(awaitable: Awaitable[T], disconnected: Callable[[], Awaitable[bool]]) -> T:
        """Await `awaitable`, giving up (ClientGone) when the client disconnects meanwhile."""
        task = asyncio.ensure_future(awaitable)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
                if done:
                    return task.result()
                if await disconnected():
                    raise ClientGone
        finally:
            if not task.done():
                task.cancel()

    # --- status and shutdown --------------------------------------------------------------------------------

    def _recent_row(self, job: Job, result: GenerationResult) -> RecentRow:
        route = job.decision.route
        return {"time": time.strftime("%H:%M:%S"), "requested": job.request.model,
                "route": route.route if route is not None else None,
                "confidence": route.confidence if route is not None else None, "model": result.model,
                "finish_reason": result.finish_reason, "completion_tokens": result.usage.completion_tokens,
                "decode_tokens_per_s": result.timings.decode_tokens_per_s,
                "queue_wait_s": round(job.queue_wait_s, 3), "wall_s": result.timings.wall_s}

    def models_status(self) -> ModelsStatus:
        catalog = self.pipeline.catalog
        pool = self.pipeline.pool.status()
        rows: list[ModelRow] = []
        for name in catalog.names:
            loaded, holders, loading = pool.get(name, (False, 0, False))
            queue = self.queues[name]
            estimate = context = error = base_url = None
            settings = self.loaded.model(name)
            if settings.is_remote:  # no file, no memory plan: served by the engine at base_url
                base_url = settings.base_url
            else:
                try:
                    plan = catalog.spec(name).plan
                    estimate, context = plan.own_bytes, plan.context_size
                except GgrouteError as exc:  # a missing file: the page says so, the other models still serve
                    error = str(exc)
            rows.append({"name": name, "loaded": loaded, "loading": loading, "busy": queue.busy or holders > 0,
                         "queued": len(queue.waiting), "estimate_bytes": estimate, "context_size": context,
                         "error": error, "backend": settings.backend, "base_url": base_url})
        return {"memory_budget_bytes": catalog.budget_bytes, "used_bytes": self.pipeline.pool.used_bytes(),
                "models": rows}

    def unload(self, name: str) -> dict[str, object]:
        """Close an idle model now; 409 when a request holds it, it is loading, or requests wait for it."""
        if name not in self.queues:  # auto and routes name no model to unload
            names = self.pipeline.catalog.names
            raise ApiError(404, f"no model named '{name}' to unload: name a model ({', '.join(names)}), not "
                           "auto or a route; GET /ggroute/models lists them", param="name", code="model_not_found")
        _, holders, loading = self.pipeline.pool.status().get(name, (False, 0, False))
        if holders or loading or self.queues[name].waiting:
            raise ApiError(409, f"model '{name}' is serving, loading or awaited by requests: unload it when it is "
                           "idle", code="model_busy")
        return {"model": name, "unloaded": self.pipeline.pool.unload(name)}

    def begin_shutdown(self) -> None:
        """Refuse new work, wake queued requests with 503, stop running generations at their next token."""
        self._closing.set()
        for queue in self.queues.values():
            queue.fail_waiting(ShuttingDown())
        for job in list(self.jobs):
            job.cancel.set()

    def close(self) -> None:
        """After begin_shutdown: wait for the worker threads, then close the models."""
        self.begin_shutdown()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.pipeline.close()
