"""A learned route head: multinomial logistic regression on the router model's hidden state.

The router model reads the few-shot prefix, the task and "Category:" in one forward pass (router/classify.py);
the head turns that pass's hidden state into one probability per route. Features are standardised with the
training set's mean and spread, the weights are fitted to convergence on class-balanced cross-entropy with an
L2 penalty (Newton's method for two routes, L-BFGS for more): numpy only, about a second for a thousand tasks
and two routes. (A fixed number
of gradient steps, as before, stopped short of the optimum by an amount that depended on the penalty, so
accuracy on unseen styles jumped around from one penalty to the next.)

A head file records what it was trained on (`identity`: router model file, hidden size, weight and key types,
a hash of the prefix, the routes); loading it for a router that differs in any of these is an error, because a
stale head routes confidently and wrongly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from ggroute.core.errors import ConfigError, UsageError
from ggroute.core.files import parse_json, read_text, write_atomic

FeatureKind = Literal["last", "mean", "last+mean"]
FEATURE_KINDS: tuple[FeatureKind, ...] = ("last", "mean", "last+mean")
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
HEAD_FORMAT = "ggroute-route-head/1"
MIN_EXAMPLES_PER_ROUTE = 20
# Chosen by the leave-one-source-out benchmark (benchmarks/routing_loso.py) among 0.01-1: the same mean accuracy
# as 0.1, a better worst style and fewer confident mistakes (docs/performance.md#routing).
DEFAULT_L2 = 0.3


@dataclass(frozen=True)
class RouteHead:
    routes: list[str]
    mean: FloatArray  # (d,)
    scale: FloatArray  # (d,)
    weights: FloatArray  # (d, k)
    bias: FloatArray  # (k,)
    identity: dict[str, str]
    features: FeatureKind = "last"

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    def logits(self, features: FloatArray) -> FloatArray:
        """(n, d) features -> (n, k) route logits; one row for a (d,) input."""
        x = (np.atleast_2d(features) - self.mean) / self.scale
        return np.asarray(x @ self.weights + self.bias, dtype=np.float64)

    def probabilities(self, features: FloatArray) -> FloatArray:
        return softmax_rows(self.logits(features))

    def to_json(self) -> str:
        return json.dumps({
            "format": HEAD_FORMAT,
            "routes": self.routes,
            "identity": self.identity,
            "features": self.features,
            "mean": _rounded(self.mean),
            "scale": _rounded(self.scale),
            "weights": [_rounded(row) for row in self.weights],
            "bias": _rounded(self.bias),
        })

    def save(self, path: Path) -> None:
        try:
            write_atomic(path, self.to_json() + "\n")
        except OSError as exc:
            raise UsageError(
                f"cannot write the route head to {path}: {exc.strerror or exc}; choose another --out"
            ) from None


def _rounded(values: FloatArray) -> list[float]:
    return [float(f"{v:.6g}") for v in values.tolist()]


def softmax_rows(logits: FloatArray) -> FloatArray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float64)


def check_examples_per_route(labels: IntArray, routes: list[str], min_examples: int = MIN_EXAMPLES_PER_ROUTE) -> None:
    """UsageError naming each route with fewer than `min_examples` labeled tasks."""
    counts = np.bincount(labels, minlength=len(routes))
    short = [f"'{r}' has {int(c)}" for r, c in zip(routes, counts, strict=True) if c < max(min_examples, 1)]
    if short:
        raise UsageError(
            f"training a route head needs at least {min_examples} labeled tasks per route: "
            f"{', '.join(short)}; add examples for those routes"
        )


def train_head(features: FloatArray, labels: IntArray, routes: list[str], identity: dict[str, str], *,
               kind: FeatureKind = "last+mean", l2: float = DEFAULT_L2, max_steps: int = 50,
               min_examples: int = MIN_EXAMPLES_PER_ROUTE) -> RouteHead:
    """Fit the head; `labels` index `routes`. Every route needs `min_examples` examples."""
    check_examples_per_route(labels, routes, min_examples)
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-6
    weights, bias = _fit((features - mean) / scale, labels, len(routes), l2, max_steps)
    return RouteHead(list(routes), mean, scale, weights, bias, dict(identity), kind)


# Newton's method solves a system of (features + 1) x (routes - 1) unknowns per step: exact and fast for two
# routes (1,153 unknowns for the shipped router, under a second), but its cost grows with the cube of that
# size (three routes: 3.8 s a fit on 90 random tasks against 0.05 s for L-BFGS, and `router train` fits once
# per fold and per style). Above this size L-BFGS is used: the same optimum to a gradient of 1e-6, with memory
# and time linear in the size.
_NEWTON_MAX_UNKNOWNS = 1200
_GRADIENT_TOLERANCE = 1e-6


def _fit(x: FloatArray, labels: IntArray, k: int, l2: float, max_steps: int) -> tuple[FloatArray, FloatArray]:
    """Multinomial logistic regression, (d, k) weights and (k,) bias, minimising the class-balanced mean
    cross-entropy + l2/2 * |weights|^2. The last route's parameters are fixed at zero (softmax needs k-1), which
    makes the problem strictly convex, so both solvers reach its one optimum."""
    n, d = x.shape
    counts = np.bincount(labels, minlength=k)
    sample_weight = (n / (k * np.maximum(counts, 1)))[labels] / n  # each route weighs the same in the loss
    xb = np.hstack([x, np.ones((n, 1))])
    onehot = np.eye(k)[labels]
    penalty = np.full(d + 1, l2)
    penalty[-1] = 1e-8  # the bias is (almost) not penalised
    free = k - 1

    def loss_grad(t: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        logits = np.hstack([xb @ t, np.zeros((n, 1))])
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        probs = np.exp(log_probs)
        loss = -(sample_weight * (onehot * log_probs).sum(axis=1)).sum() + 0.5 * (penalty[:, None] * t * t).sum()
        residual = sample_weight[:, None] * (probs[:, :free] - onehot[:, :free])
        return float(loss), xb.T @ residual + penalty[:, None] * t, probs

    solve = _newton if (d + 1) * free <= _NEWTON_MAX_UNKNOWNS else _lbfgs
    theta = solve(loss_grad, xb, sample_weight, penalty, np.zeros((d + 1, free)), max_steps)
    weights = np.hstack([theta[:-1], np.zeros((d, 1))])
    bias = np.append(theta[-1], 0.0)
    return weights, bias


LossGrad = Callable[[FloatArray], tuple[float, FloatArray, FloatArray]]


def _newton(loss_grad: LossGrad, xb: FloatArray, sample_weight: FloatArray, penalty: FloatArray,
            theta: FloatArray, max_steps: int) -> FloatArray:
    """Newton steps, halved while they do not lower the loss; stops when the gradient vanishes."""
    size_d, free = theta.shape
    loss, grad, probs = loss_grad(theta)
    for _ in range(max_steps):
        if np.abs(grad).max() < _GRADIENT_TOLERANCE:
            break
        hessian = np.empty((size_d * free, size_d * free))
        for a in range(free):
            for b in range(free):
                w = sample_weight * probs[:, a] * ((a == b) - probs[:, b])
                block = (xb.T * w) @ xb
                if a == b:
                    block += np.diag(penalty)
                hessian[a * size_d:(a + 1) * size_d, b * size_d:(b + 1) * size_d] = block
        solved = np.linalg.solve(hessian, grad.reshape(-1, order="F"))
        step = np.asarray(solved, dtype=np.float64).reshape((size_d, free), order="F")
        theta, loss, grad, probs, improved = _backtrack(loss_grad, theta, loss, step)
        if not improved:
            break
    return theta


def _lbfgs(loss_grad: LossGrad, xb: FloatArray, sample_weight: FloatArray, penalty: FloatArray,
           theta: FloatArray, max_steps: int, memory: int = 10) -> FloatArray:
    """Limited-memory BFGS (two-loop recursion) with backtracking; stops when the gradient vanishes."""
    loss, grad, _ = loss_grad(theta)
    history: list[tuple[FloatArray, FloatArray, float]] = []
    for _ in range(max_steps * 20):  # cheap steps, more of them
        if np.abs(grad).max() < _GRADIENT_TOLERANCE:
            break
        direction = grad.copy()
        alphas = []
        for s, y, rho in reversed(history):
            alpha = rho * float((s * direction).sum())
            direction -= alpha * y
            alphas.append(alpha)
        if history:
            s, y, _ = history[-1]
            direction *= float((s * y).sum() / (y * y).sum())
        for (s, y, rho), alpha in zip(history, reversed(alphas), strict=True):
            direction += s * (alpha - rho * float((y * direction).sum()))
        new_theta, new_loss, new_grad, _, improved = _backtrack(loss_grad, theta, loss, direction)
        if not improved:
            break
        s, y = new_theta - theta, new_grad - grad
        curvature = float((s * y).sum())
        if curvature > 1e-12:
            history = [*history[-(memory - 1):], (s, y, 1.0 / curvature)]
        theta, loss, grad = new_theta, new_loss, new_grad
    return theta


def _backtrack(loss_grad: LossGrad, theta: FloatArray, loss: float, step: FloatArray
               ) -> tuple[FloatArray, float, FloatArray, FloatArray, bool]:
    """theta - size * step for the largest size in 1, 1/2, 1/4, ... that lowers the loss; unchanged if none."""
    size = 1.0
    while size >= 1e-6:
        candidate = theta - size * step
        new_loss, new_grad, new_probs = loss_grad(candidate)
        if new_loss < loss:
            return candidate, new_loss, new_grad, new_probs, True
        size /= 2
    _, grad, probs = loss_grad(theta)
    return theta, loss, grad, probs, False


# The heads installed with ggroute (`"head": "pkg:ggroute.models/NAME"`): for the shipped router as configured
# (Q4_0 weights), and for the same router with BF16 weights (docs/routing.md).
SHIPPED_HEADS = ("pkg:ggroute.models/router-head-q4_0.json", "pkg:ggroute.models/router-head.json")


def load_head(path: Path, routes: list[str], identity: dict[str, str]) -> RouteHead:
    """Read a head file and check it was trained for this router; every mismatch is a ConfigError."""
    hint = (" (router.head is relative to config.json's folder: point it at the file, use "
            f"\"{SHIPPED_HEADS[0]}\" for the shipped head, or train one with `ggroute router train`)")
    data = parse_json(read_text(path, ConfigError, "route head file", hint), path, ConfigError)
    if not isinstance(data, dict) or data.get("format") != HEAD_FORMAT:
        raise ConfigError(f"{path}: not a ggroute route head file (expected format '{HEAD_FORMAT}')")
    try:
        head = RouteHead(
            routes=[str(r) for r in data["routes"]],
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=np.asarray(data["bias"], dtype=np.float64),
            identity={str(k): str(v) for k, v in data["identity"].items()},
            features=data.get("features", "last"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: route head file is incomplete or malformed ({exc})") from None
    if head.features not in FEATURE_KINDS:
        raise ConfigError(f"{path}: unknown feature kind '{head.features}' (known: {', '.join(FEATURE_KINDS)})")
    d, k = head.n_features, len(head.routes)
    if head.scale.shape != (d,) or head.weights.shape != (d, k) or head.bias.shape != (k,):
        raise ConfigError(f"{path}: route head arrays have inconsistent shapes; retrain it")
    if head.routes != routes:
        raise ConfigError(
            f"{path}: the head was trained for routes {head.routes}, the config's router has {routes}: "
            "retrain it with `ggroute router train`"
        )
    stale = {key: (head.identity.get(key), identity.get(key)) for key in {**head.identity, **identity}
             if head.identity.get(key) != identity.get(key)}
    if stale:
        def shown(value: str | None) -> str:
            return "unset" if value is None else value

        what = "; ".join(f"{key}: head has {shown(old)}, router has {shown(new)}" for key, (old, new) in stale.items())
        raise ConfigError(
            f"{path}: the head was trained for another router setup ({what}): retrain it with "
            "`ggroute router train` after changing the router model, its settings, instruction or examples"
        )
    return head
