"""The preset configs in docs/configs: each loads through the real config loader, and docs/models.md's table
states their models, limits and timeouts as they are (timeout_s at least twice max_tokens / decode speed)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ggroute.models.config import config_warnings, load_config
from ggroute.models.hub_ref import is_hub_ref, parse_hub_ref

DOCS = Path(__file__).resolve().parents[2] / "docs"
PRESETS = sorted((DOCS / "configs").glob("*.json"))


def table_rows() -> list[dict[str, str]]:
    text = (DOCS / "models.md").read_text(encoding="utf-8")
    table = text.split("<!-- presets:start -->\n", 1)[1].split("<!-- presets:end -->", 1)[0]
    lines = [line.strip().strip("|").split("|") for line in table.strip().splitlines()]
    header = [cell.strip() for cell in lines[0]]
    return [dict(zip(header, (cell.strip().strip("`") for cell in line), strict=True)) for line in lines[2:]]


def test_there_are_presets() -> None:
    assert {p.stem for p in PRESETS} == {"laptop-8gb", "workstation-32gb", "gpu-box"}


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_loads_and_names_hub_models(path: Path) -> None:
    loaded = load_config(path)  # validates: schema, hf: syntax, routes naming models
    assert config_warnings(loaded.config) == []
    assert loaded.config.router is not None
    for name, model in loaded.config.models.items():
        if name != loaded.config.router.model:
            assert model.path is not None and is_hub_ref(model.path)
            parse_hub_ref(model.path)


@pytest.mark.parametrize("row", table_rows(), ids=lambda r: f"{r['config']}-{r['model']}")
def test_table_matches_the_config_and_the_timeout_rule(row: dict[str, str]) -> None:
    config = load_config(DOCS / "configs" / f"{row['config']}.json").config
    model = config.models[row["model"]]
    assert model.path == row["path"]
    assert model.context_size == int(row["context_size"])
    assert model.max_tokens == int(row["max_tokens"])
    assert model.timeout_s == float(row["timeout_s"])
    speed = float(row["decode tok/s (assumed)"])
    assert math.ceil(model.max_tokens / speed) == int(row["max_tokens / speed (s)"])
    assert model.timeout_s >= 2 * model.max_tokens / speed, "timeout_s must be at least twice max_tokens / speed"
    assert int(row["estimate at context_size (MB)"]) < config.memory_budget_mb, "the model alone must fit the budget"


def test_every_preset_model_is_in_the_table() -> None:
    listed = {(r["config"], r["model"]) for r in table_rows()}
    for path in PRESETS:
        loaded = load_config(path)
        assert loaded.config.router is not None
        models = {n for n in loaded.config.models if n != loaded.config.router.model}
        assert {(path.stem, n) for n in models} <= listed
