"""The route head's training and its file: a head for another router is refused, never used silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ggroute.core.errors import ConfigError, UsageError
from ggroute.router.head import load_head, train_head

ROUTES = ["coder", "algorithm"]
IDENTITY = {"router_model": "SmolLM2 135M Instruct", "hidden_size": "8", "prefix_sha256": "abc"}


def _blobs(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping Gaussian clouds in 8 dimensions, separable along the first axis."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    x = rng.normal(size=(n, 8))
    x[:, 0] += np.where(labels == 1, 3.0, -3.0)
    return x, labels


def test_head_learns_a_separable_boundary_and_generalises() -> None:
    x, labels = _blobs()
    head = train_head(x, labels, ROUTES, IDENTITY)
    test_x, test_labels = _blobs(seed=1)
    probabilities = head.probabilities(test_x)
    assert probabilities.shape == (60, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities.argmax(axis=1) == test_labels).mean() >= 0.95


def test_head_file_round_trips(tmp_path: Path) -> None:
    x, labels = _blobs()
    head = train_head(x, labels, ROUTES, IDENTITY, kind="last+mean")
    head.save(tmp_path / "head.json")
    loaded = load_head(tmp_path / "head.json", ROUTES, IDENTITY)
    assert loaded.features == "last+mean"
    assert np.allclose(loaded.probabilities(x), head.probabilities(x), atol=1e-4)


def test_too_few_examples_per_route_say_how_many_are_needed() -> None:
    x, labels = _blobs(n=30)
    labels[:] = 0
    labels[:5] = 1
    with pytest.raises(UsageError, match="at least 20 labeled tasks per route: 'algorithm' has 5"):
        train_head(x, labels, ROUTES, IDENTITY)


def test_a_head_for_other_routes_is_a_config_error(tmp_path: Path) -> None:
    x, labels = _blobs()
    train_head(x, labels, ROUTES, IDENTITY).save(tmp_path / "head.json")
    with pytest.raises(ConfigError, match=r"trained for routes \['coder', 'algorithm'\].*has \['coder', 'math'\]"):
        load_head(tmp_path / "head.json", ["coder", "math"], IDENTITY)


def test_a_head_for_another_router_names_what_changed(tmp_path: Path) -> None:
    x, labels = _blobs()
    train_head(x, labels, ROUTES, IDENTITY).save(tmp_path / "head.json")
    changed = {**IDENTITY, "router_model": "Gemma 3 270m"}
    with pytest.raises(ConfigError, match="router_model: head has SmolLM2 135M Instruct, router has Gemma 3 270m"):
        load_head(tmp_path / "head.json", ROUTES, changed)



def test_a_head_for_a_cut_router_and_a_whole_one_do_not_mix(tmp_path: Path) -> None:
    """`layers` is in the identity only when the router is cut: either way round, the mismatch is named."""
    x, labels = _blobs()
    train_head(x, labels, ROUTES, {**IDENTITY, "layers": "12"}).save(tmp_path / "cut.json")
    with pytest.raises(ConfigError, match="layers: head has 12, router has unset"):
        load_head(tmp_path / "cut.json", ROUTES, IDENTITY)
    train_head(x, labels, ROUTES, IDENTITY).save(tmp_path / "whole.json")
    with pytest.raises(ConfigError, match="layers: head has unset, router has 12"):
        load_head(tmp_path / "whole.json", ROUTES, {**IDENTITY, "layers": "12"})
    assert load_head(tmp_path / "cut.json", ROUTES, {**IDENTITY, "layers": "12"}).routes == ROUTES

@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"format": "something-else"}', "not a ggroute route head file"),
        ('{"format": "ggroute-route-head/1", "routes": ["coder", "algorithm"]}', "incomplete or malformed"),
    ],
)
def test_broken_head_files_are_config_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "head.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_head(path, ROUTES, IDENTITY)


def test_inconsistent_shapes_are_refused(tmp_path: Path) -> None:
    x, labels = _blobs()
    train_head(x, labels, ROUTES, IDENTITY).save(tmp_path / "head.json")
    data = json.loads((tmp_path / "head.json").read_text(encoding="utf-8"))
    data["bias"] = [0.0]
    (tmp_path / "head.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="inconsistent shapes"):
        load_head(tmp_path / "head.json", ROUTES, IDENTITY)


def test_missing_head_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="route head file not found"):
        load_head(tmp_path / "nope.json", ROUTES, IDENTITY)


def test_head_and_calibration_together_are_a_config_error(tmp_path: Path) -> None:
    from ggroute.models.config import parse_config
    from tests.conftest import SHIPPED

    data = json.loads(json.dumps(SHIPPED))
    data["router"]["head"] = "router-head-q4_0.json"
    data["router"]["calibration"] = {"scale": 1.0, "offsets": {"coder": 0.0, "algorithm": 0.0}}
    with pytest.raises(ConfigError, match="set router.head or router.calibration, not both"):
        parse_config(json.dumps(data), tmp_path / "config.json")


def test_an_unwritable_head_path_is_a_usage_error(tmp_path: Path) -> None:
    x, labels = _blobs()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with pytest.raises(UsageError, match="cannot write the route head to .*choose another --out"):
        train_head(x, labels, ROUTES, IDENTITY).save(blocker / "head.json")


def test_training_converges_to_the_same_optimum_whatever_the_penalty() -> None:
    """Newton's method reaches the optimum: the penalised gradient is ~0 and a second fit gives the same head
    (a fixed number of gradient steps did not, which made accuracy jump between penalties)."""
    x, labels = _blobs(n=200)
    for l2 in (0.01, 0.3, 3.0):
        head = train_head(x, labels, ROUTES, IDENTITY, l2=l2)
        again = train_head(x, labels, ROUTES, IDENTITY, l2=l2)
        assert np.array_equal(head.weights, again.weights)
        z = (x - head.mean) / head.scale
        probs = head.probabilities(x)
        n = len(labels)
        weight = (n / (2 * np.bincount(labels)))[labels] / n
        residual = weight * (probs[:, 0] - (labels == 0))
        gradient = z.T @ residual + l2 * (head.weights[:, 0] - head.weights[:, 1])
        assert np.abs(gradient).max() < 1e-6, l2


def test_a_head_with_three_routes_is_trained_too() -> None:
    rng = np.random.default_rng(3)
    labels = np.arange(150) % 3
    x = rng.normal(size=(150, 6))
    x[np.arange(150), labels] += 4.0  # each route stands out along its own axis
    head = train_head(x, labels, ["coder", "algorithm", "general"], IDENTITY)
    assert head.weights.shape == (6, 3)
    assert (head.probabilities(x).argmax(axis=1) == labels).mean() >= 0.95


@pytest.mark.parametrize(("head", "names"), [
    ("pkg:ggroute.models/no-such-head.json", "has no file 'no-such-head.json'"),
    ("pkg:no_such_package_xyz/head.json", "is not installed"),
    ("pkg:ggroute.models", "must be pkg:MODULE/FILE"),
])
def test_a_packaged_head_path_that_names_nothing_is_a_config_error_naming_the_key(tmp_path: Path, head: str,
                                                                                  names: str) -> None:
    from ggroute.models.config import parse_config

    data = json.loads((Path(__file__).resolve().parents[2] / "config.json").read_text(encoding="utf-8"))
    data["router"]["head"] = head
    loaded = parse_config(json.dumps(data), tmp_path / "config.json")
    with pytest.raises(ConfigError, match=f"router.head '{head}'.*{names}"):
        _ = loaded.router_head_path


def test_l_bfgs_for_many_routes_reaches_the_optimum_newton_reaches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above a size, Newton's cubic cost is traded for L-BFGS; both must give the same head."""
    from ggroute.router import head as head_module

    rng = np.random.default_rng(5)
    labels = np.arange(240) % 4
    x = rng.normal(size=(240, 10))
    x[np.arange(240), labels] += 1.5
    routes = ["coder", "algorithm", "general", "sql"]
    newton = train_head(x, labels, routes, IDENTITY)
    monkeypatch.setattr(head_module, "_NEWTON_MAX_UNKNOWNS", 0)
    lbfgs = train_head(x, labels, routes, IDENTITY)
    assert np.abs(newton.weights - lbfgs.weights).max() < 1e-4
    assert np.abs(newton.bias - lbfgs.bias).max() < 1e-4
