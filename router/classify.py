"""The route decision: one forward pass of the router model, no free text generated.

The prompt is the configured instruction with the route descriptions and few-shot examples (the prefix), then
the task, then "Category:". The next-token logits of each route's label token are read and softmaxed over those
labels only. The prefix's KV state is computed once and reused for every later task (common-prefix reuse in the
llama.cpp context). A task longer than `max_task_tokens` (or than the context left after the prefix) is cut to
its head and tail: route latency is the prompt processing of the task, so this bounds it. Probabilities are
calibrated either with a scale and per-route offsets fitted on labeled tasks (`router.calibration`, from
`ggroute eval routing --fit`) or, when none is configured, against content-free inputs (contextual
calibration): the router's bias toward a label with no task at all is divided out.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ggroute.core.errors import ConfigError, PromptTooLongError, RouterModelError
from ggroute.core.tasks import validate_task
from ggroute.models.backend import ScoringModel
from ggroute.models.catalog import ModelSpec
from ggroute.models.config import RouterConfig
from ggroute.router.head import FeatureKind, RouteHead, load_head
from ggroute.router.prefix_cache import restore_prefix, save_prefix

FloatArray = npt.NDArray[np.float64]
_CONTENT_FREE = ("N/A", "", "[task]")
_ELISION = " [...] "


def head_identity(spec: ModelSpec, router: RouterConfig) -> dict[str, str]:
    """What a route head depends on: a head trained under other values would route wrongly."""
    prefix = hashlib.sha256(build_prefix(router).encode()).hexdigest()[:16]
    identity = {"router_model": spec.info.name, "hidden_size": str(spec.info.n_embd),
                "weights_type": str(spec.settings.weights_type), "cache_type_k": spec.settings.cache_type_k,
                "max_task_tokens": str(router.max_task_tokens), "prefix_sha256": prefix}
    if spec.settings.layers is not None:  # absent for the whole model, as in heads trained before `layers`
        identity["layers"] = str(spec.settings.layers)
    return identity


@dataclass(frozen=True)
class Decision:
    route: str
    confidence: float
    probabilities: dict[str, float]
    raw_probabilities: dict[str, float]
    label_logits: dict[str, float]  # uncalibrated: what `eval routing --fit` fits calibration on
    latency_ms: float
    task_tokens: int
    truncated: bool
    evaluated_tokens: int  # tokens run through the model for this decision (the rest came from the KV cache)


@dataclass(frozen=True)
class TaskFeatures:
    label_logits: FloatArray  # (routes,)
    hidden_last: FloatArray  # (hidden size,) at the last token of "Category:"
    hidden_mean: FloatArray  # (hidden size,) mean over the task's own tokens
    evaluated_tokens: int
    truncated: bool

    def vector(self, kind: FeatureKind) -> FloatArray:
        parts = {"last": [self.hidden_last], "mean": [self.hidden_mean],
                 "last+mean": [self.hidden_last, self.hidden_mean]}[kind]
        return np.concatenate(parts)


def build_prefix(router: RouterConfig) -> str:
    lines = [" ".join(router.instruction.split()), "", "Categories:"]
    for name, route in router.routes.items():
        lines.append(f"- {name}: {route.description}")
    lines.append("")
    examples = _interleave({name: route.examples for name, route in router.routes.items()})
    for name, example in examples:
        lines += [f"Task: {' '.join(example.split())}", f"Category: {name}", ""]
    return "\n".join(lines) + "Task:"


def _interleave(by_route: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Alternate routes so that no label dominates the most recent examples."""
    out: list[tuple[str, str]] = []
    longest = max((len(v) for v in by_route.values()), default=0)
    for i in range(longest):
        for name, examples in by_route.items():
            if i < len(examples):
                out.append((name, examples[i]))
    return out


def label_tokens(tokenize: Callable[[str], list[int]], routes: list[str], config_source: str) -> list[int]:
    """Each route's label token (the first of " NAME"); a ConfigError when two routes share it."""
    firsts: dict[int, str] = {}
    for name in routes:
        token = tokenize(" " + name)[0]
        if token in firsts:
            raise ConfigError(
                f"{config_source}: router.routes: routes '{firsts[token]}' and '{name}' begin with the same token "
                "for the router model: rename one so their first words differ"
            )
        firsts[token] = name
    return list(firsts)


class RouteClassifier:
    def __init__(self, model: ScoringModel, router: RouterConfig, head_path: Path | None, *,
                 config_source: str) -> None:
        self.model = model
        self.config_source = config_source  # where the config came from, for errors that name a key in it
        self.router = router
        self.head_path = head_path
        self._head: RouteHead | None = None
        self.routes = list(router.routes)
        self.prefix_tokens = model.tokenize(build_prefix(router), add_bos=True)
        self.suffix_tokens = model.tokenize("\nCategory:", add_bos=False)
        self.elision_tokens = model.tokenize(_ELISION, add_bos=False)
        self.label_tokens = self._label_tokens()
        budget = model.spec.settings.context_size - len(self.prefix_tokens) - len(self.suffix_tokens) - 1
        if budget < 16:
            raise PromptTooLongError(model.spec.name, len(self.prefix_tokens) + 16, model.spec.settings.context_size)
        self.task_budget = min(budget, router.max_task_tokens)
        self.prefix_restored = self._prime_prefix()
        calibration = router.calibration
        if head_path is not None or model.spec.settings.layers is not None:
            # The head's probabilities are used as they are; a cut model routes only through a head (decide()
            # refuses label logits), but `router train` builds this classifier to train that head.
            self.scale, self.offsets = 1.0, np.zeros(len(self.routes))
        elif calibration is not None:
            self.scale = calibration.scale
            self.offsets = np.array([calibration.offsets[r] for r in self.routes], dtype=np.float64)
        else:  # contextual calibration: dividing by the bias is adding -log(bias) to the logits
            self.scale = 1.0
            self.offsets = -np.log(self._content_free_bias())

    def _prime_prefix(self) -> bool:
        """Get the prefix into the KV cache: already there, from the disk cache (True), or computed and saved."""
        if self.model.cached_prefix_length(self.prefix_tokens) == len(self.prefix_tokens):
            return False
        if restore_prefix(self.model, self.prefix_tokens):
            return True
        self.model.evaluate(self.prefix_tokens)
        save_prefix(self.model, self.prefix_tokens)
        return False

    def _label_tokens(self) -> list[int]:
        return label_tokens(lambda text: self.model.tokenize(text, add_bos=False), self.routes, self.config_source)

    def tokenize_task(self, task: str) -> list[int]:
        """The task as the router reads it, before any cut."""
        return self.model.tokenize(" " + " ".join(task.split()), add_bos=False)

    def _task_tokens(self, task: str) -> tuple[list[int], bool]:
        tokens = self.tokenize_task(task)
        if len(tokens) <= self.task_budget:
            return tokens, False
        keep = self.task_budget - len(self.elision_tokens)
        head = keep * 2 // 3
        return tokens[:head] + self.elision_tokens + tokens[len(tokens) - (keep - head) :], True

    def _label_logits(self, task_tokens: list[int]) -> tuple[FloatArray, int]:
        evaluated = self.model.evaluate(self.prefix_tokens + task_tokens + self.suffix_tokens)
        return self.model.last_logits(self.label_tokens), evaluated

    def features(self, task: str) -> TaskFeatures:
        """What the router's forward pass over this task gives: label logits and hidden states."""
        validate_task(task)
        if self.model.cached_prefix_length(self.prefix_tokens) < len(self.prefix_tokens):
            self.model.evaluate(self.prefix_tokens)  # then the task below is evaluated in one batch
        task_tokens, truncated = self._task_tokens(task)
        # Every task token is evaluated (none reused from the previous task): the mean needs all their states.
        evaluated = self.model.evaluate(self.prefix_tokens + task_tokens + self.suffix_tokens, hidden=True,
                                        reuse_at_most=len(self.prefix_tokens))
        hidden = self.model.hidden_states(len(task_tokens) + len(self.suffix_tokens))
        task_mean = hidden[: len(task_tokens)].mean(axis=0)
        return TaskFeatures(self.model.last_logits(self.label_tokens), hidden[-1], task_mean, evaluated, truncated)

    def head_identity(self) -> dict[str, str]:
        return head_identity(self.model.spec, self.router)

    @property
    def head(self) -> RouteHead | None:
        if self.head_path is not None and self._head is None:
            self._head = load_head(self.head_path, self.routes, self.head_identity())
        return self._head

    def _require_whole_model(self) -> None:
        spec = self.model.spec
        if spec.settings.layers is not None:
            raise ConfigError(
                f"{self.config_source}: models.{spec.name}.layers keeps {spec.settings.layers} blocks of the router "
                "model, so its label logits mean nothing: set router.head to a head trained for it "
                "(`ggroute router train`), or remove layers"
            )

    def _content_free_bias(self) -> FloatArray:
        probs = [_softmax(self._label_logits(self._task_tokens(text)[0])[0]) for text in _CONTENT_FREE]
        return np.asarray(np.mean(probs, axis=0), dtype=np.float64)

    def decide(self, task: str) -> Decision:
        validate_task(task)
        started = time.perf_counter()
        head = self.head
        if head is not None:
            features = self.features(task)
            logits, evaluated, truncated = features.label_logits, features.evaluated_tokens, features.truncated
            calibrated = _finite(head.probabilities(features.vector(head.features))[0])
            task_count = len(self._task_tokens(task)[0])
        else:
            self._require_whole_model()
            task_tokens, truncated = self._task_tokens(task)
            task_count = len(task_tokens)
            logits, evaluated = self._label_logits(task_tokens)
            calibrated = _softmax(self.scale * logits + self.offsets)
        raw = _softmax(logits)
        best = int(np.argmax(calibrated))
        return Decision(
            route=self.routes[best],
            confidence=float(calibrated[best]),
            probabilities={r: round(float(p), 4) for r, p in zip(self.routes, calibrated, strict=True)},
            raw_probabilities={r: round(float(p), 4) for r, p in zip(self.routes, raw, strict=True)},
            label_logits={r: float(x) for r, x in zip(self.routes, logits, strict=True)},
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            task_tokens=task_count,
            truncated=truncated,
            evaluated_tokens=evaluated,
        )


def _finite(probabilities: FloatArray) -> FloatArray:
    if not np.isfinite(probabilities).all():
        raise RouterModelError(f"the route head gave non-finite probabilities ({probabilities.tolist()})")
    return probabilities


def _softmax(logits: FloatArray) -> FloatArray:
    if not np.isfinite(logits).all():
        raise RouterModelError(
            f"the router model returned non-finite label logits ({logits.tolist()}): its weights or the "
            "weights_type/cache_type_k conversion are broken; check the file with `ggroute bench router`"
        )
    shifted = np.exp(logits - logits.max())
    total = float(shifted.sum())
    if not math.isfinite(total) or total <= 0:
        raise RouterModelError(f"label logits {logits.tolist()} give no probability distribution")
    return np.asarray(shifted / total, dtype=np.float64)
