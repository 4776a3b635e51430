"""Route a task: ask the classifier, or fall back to default_route and say why. Never a silent fallback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ggroute.core.errors import (
    ConfigError,
    ModelFileError,
    ModelLoadError,
    OverBudgetError,
    PoolBusyError,
    RouterModelError,
    UsageError,
)
from ggroute.core.tasks import validate_task
from ggroute.models.backend import DecodeAborted, ScoringModel
from ggroute.models.config import RouterConfig
from ggroute.models.pool import ModelPool

if TYPE_CHECKING:
    from ggroute.models.catalog import ModelCatalog
    from ggroute.router.classify import Decision, RouteClassifier, TaskFeatures

# The router model could not give a decision: route to default_route and say why in `reason`.
_ROUTER_UNAVAILABLE = (ModelFileError, ModelLoadError, OverBudgetError, PoolBusyError, RouterModelError)


@dataclass(frozen=True)
class RouteOutcome:
    route: str
    model: str
    confidence: float | None  # None when the router did not decide (forced or fell back before scoring)
    reason: str  # "classified", "forced by --route", or why default_route was used
    latency_ms: float
    probabilities: dict[str, float] = field(default_factory=dict)
    label_logits: dict[str, float] = field(default_factory=dict)
    truncated: bool = False
    evaluated_tokens: int = 0

    def log_fields(self) -> dict[str, object]:
        return {"route": self.route, "confidence": self.confidence, "reason": self.reason,
                "route_latency_ms": self.latency_ms}


def check_route_head(router: RouterConfig | None, catalog: ModelCatalog, head_path: Path | None) -> None:
    """Read the configured route head now, without loading the router model: a missing, malformed or stale head
    file is the ConfigError the first routed request would otherwise get."""
    from ggroute.router.classify import head_identity  # numpy: not needed for `ggroute --help`
    from ggroute.router.head import load_head

    if router is None or head_path is None:
        return
    try:
        spec = catalog.spec(router.model)
    except (*_ROUTER_UNAVAILABLE, UsageError):  # a missing file or a remote router: said where it is used
        return
    load_head(head_path, list(router.routes), head_identity(spec, router))


def check_route_labels(router: RouterConfig | None, catalog: ModelCatalog) -> None:
    """Tokenize the route names with the router model's vocabulary alone (no weights): two routes whose names
    begin with the same token are the ConfigError routing would otherwise give at the first request."""
    from ggroute.models.llamacpp.runtime import vocabulary
    from ggroute.router.classify import label_tokens

    if router is None:
        return
    try:
        path = catalog.spec(router.model).path
    except (*_ROUTER_UNAVAILABLE, UsageError):  # a missing file or a remote router: said where it is used
        return
    with vocabulary(path) as tokenize:
        label_tokens(tokenize, list(router.routes), str(catalog.loaded.source))


class Router:
    def __init__(self, router: RouterConfig | None, pool: ModelPool, head_path: Path | None = None) -> None:
        self.config = router
        self.pool = pool
        self.head_path = head_path
        self._classifier: RouteClassifier | None = None

    def require_config(self) -> RouterConfig:
        if self.config is None:
            raise ConfigError(
                "config has no `router` section: add one (see docs/routing.md) or pick a model with "
                "`ggroute generate --model NAME`"
            )
        return self.config

    def check_route(self, name: str) -> str:
        routes = self.require_config().routes
        if name not in routes:
            raise UsageError(f"unknown route '{name}': the routes are {', '.join(routes)}")
        return name

    def decide(self, task: str, forced_route: str | None = None) -> RouteOutcome:
        config = self.require_config()
        started = time.perf_counter()
        validate_task(task)
        if forced_route is not None:
            route = self.check_route(forced_route)
            return RouteOutcome(route, config.routes[route].model, None, "forced by --route", 0.0)
        try:
            decision = self._classify(task, started)
        except _ROUTER_UNAVAILABLE as exc:
            return self._fallback(f"router model unavailable: {exc}", started)
        except DecodeAborted:
            return self._fallback(f"router timed out after {self._timeout_s()} s", started)
        route = decision.route
        reason = "classified"
        if decision.confidence < config.min_confidence:
            reason = (f"confidence {decision.confidence:.2f} for '{route}' is below min_confidence "
                      f"{config.min_confidence}: using default_route")
            route = config.default_route
        # The whole decision as the caller waited for it: a model load or prefix build included.
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return RouteOutcome(route, config.routes[route].model, round(decision.confidence, 4), reason,
                            latency_ms, decision.probabilities, decision.label_logits,
                            decision.truncated, decision.evaluated_tokens)

    def _fallback(self, why: str, started: float) -> RouteOutcome:
        config = self.require_config()
        route = config.default_route
        latency = round((time.perf_counter() - started) * 1000, 2)
        return RouteOutcome(route, config.routes[route].model, None, f"{why}; used default_route '{route}'", latency)

    def task_features(self, tasks: list[str]) -> list[TaskFeatures]:
        """The router model's features for each task (label logits, hidden states): for training and studies."""
        with self._classifier_session(lambda: False) as classifier:
            return [classifier.features(task) for task in tasks]

    def head_identity(self) -> dict[str, str]:
        """What a route head trained for this router must match (see router/head.py)."""
        with self._classifier_session(lambda: False) as classifier:
            return classifier.head_identity()

    def check_head(self) -> None:
        check_route_head(self.config, self.pool.catalog, self.head_path)

    def _timeout_s(self) -> float:
        return self.pool.catalog.spec(self.require_config().model).settings.timeout_s

    @contextmanager
    def _classifier_session(self, should_stop: Callable[[], bool]) -> Iterator[RouteClassifier]:
        """The router model leased and held for this caller, with its classifier (built on first use)."""
        from ggroute.router.classify import RouteClassifier  # numpy: not needed for `ggroute --help`

        config = self.require_config()
        with self.pool.acquire(config.model) as lease:
            model = lease.model
            if not isinstance(model, ScoringModel):
                raise ConfigError(f"router model '{config.model}' cannot score tokens: use a local GGUF model")
            with model.session(should_stop):
                if self._classifier is None or self._classifier.model is not model:
                    self._classifier = RouteClassifier(model, config, self.head_path,
                                                       config_source=str(self.pool.catalog.loaded.source))
                yield self._classifier

    def _classify(self, task: str, started: float) -> Decision:
        deadline = started + self._timeout_s()
        with self._classifier_session(lambda: time.perf_counter() > deadline) as classifier:
            return classifier.decide(task)
