"""Sampling per model: config.json values with their ranges, per-request temperature and seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ggroute.core.errors import ConfigError
from ggroute.models.config import parse_config
from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.sampling import Sampling
from tests.conftest import small_config
from tests.fakes import Script, ScriptedBackend, fake_spec


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("top_p", 1.5, "models.coder.top_p: Input should be less than or equal to 1"),
        ("top_p", 0.0, "models.coder.top_p: Input should be greater than 0"),
        ("min_p", -0.1, "models.coder.min_p: Input should be greater than or equal to 0"),
        ("top_k", -1, "models.coder.top_k: Input should be greater than or equal to 0"),
        ("presence_penalty", -0.5, "models.coder.presence_penalty: Input should be greater than or equal to 0"),
        ("frequency_penalty", 3.0, "models.coder.frequency_penalty: Input should be less than or equal to 2"),
        ("repeat_penalty", 0.8, "models.coder.repeat_penalty: Input should be greater than or equal to 1"),
        ("repeat_last_n", -4, "models.coder.repeat_last_n: Input should be greater than or equal to 0"),
    ],
)
def test_sampler_values_out_of_range_name_the_key_and_the_range(
    tmp_path: Path, key: str, value: float, message: str
) -> None:
    data = small_config()
    data["models"]["coder"][key] = value  # type: ignore[index]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config(json.dumps(data), tmp_path / "config.json")


def test_the_model_samples_with_its_configured_values() -> None:
    spec = fake_spec(top_k=7, top_p=0.5, min_p=0.1, repeat_penalty=1.1, presence_penalty=0.2, temperature=0.3)
    model = ScriptedBackend(spec, Script())
    Generation(model, "Say hi.").run()
    assert model.streams[0].sampling == Sampling(temperature=0.3, seed=42, top_k=7, top_p=0.5, min_p=0.1,
                                                 repeat_penalty=1.1, presence_penalty=0.2, frequency_penalty=0.0)


def test_temperature_and_seed_can_be_set_per_request() -> None:
    model = ScriptedBackend(fake_spec(), Script())
    Generation(model, "Say hi.", RequestOptions(temperature=0.9, seed=7)).run()
    Generation(model, "Say hi.", RequestOptions()).run()
    first, second = model.streams[0].sampling, model.streams[1].sampling
    assert (first.temperature, first.seed) == (0.9, 7)
    assert (second.temperature, second.seed) == (0.0, 42)  # the config's values, untouched by the first
