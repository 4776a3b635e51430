"""Sampling per model: config.json values with their ranges, per-request temperature and seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ggroute.core.errors import ConfigError
from ggroute.models.config import parse_config
from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.sampling import Dry, Sampling
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
        ("dry_multiplier", -0.5, "models.coder.dry_multiplier: Input should be greater than or equal to 0"),
        ("dry_base", 0.5, "models.coder.dry_base: Input should be greater than or equal to 1"),
        ("dry_allowed_length", 0, "models.coder.dry_allowed_length: Input should be greater than or equal to 1"),
        ("dry_penalty_last_n", -2, "models.coder.dry_penalty_last_n: Input should be greater than or equal to -1"),
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


def test_dry_is_off_at_multiplier_0_and_reads_minus_1_as_the_context_size() -> None:
    assert Sampling.of(fake_spec().settings).dry is None  # the shipped default
    dry = Sampling.of(fake_spec(dry_multiplier=0.8, context_size=2048).settings).dry
    assert dry == Dry(multiplier=0.8, base=1.75, allowed_length=2, penalty_last_n=2048,
                      sequence_breakers=("\n", ":", '"', "*"))
    dry = Sampling.of(fake_spec(dry_multiplier=1.2, dry_base=2.0, dry_allowed_length=3, dry_penalty_last_n=256,
                                dry_sequence_breakers=["\n"]).settings).dry
    assert dry == Dry(multiplier=1.2, base=2.0, allowed_length=3, penalty_last_n=256, sequence_breakers=("\n",))


def test_dry_settings_reach_the_backend() -> None:
    model = ScriptedBackend(fake_spec(dry_multiplier=0.8), Script())
    Generation(model, "Say hi.").run()
    sampling = model.streams[0].sampling
    assert sampling.dry is not None and sampling.dry.multiplier == 0.8


def test_stop_after_code_ends_generation_when_the_python_block_closes() -> None:
    pieces = ["Here:\n", "```python\n", "def f():\n", "    return 1\n", "```", "\n", "This function ", "returns 1."]
    model = ScriptedBackend(fake_spec(max_tokens=32), Script(pieces=pieces))
    result = Generation(model, "Write f.", RequestOptions(stop_after_code=True)).run()
    assert result.finish_reason == "stop"
    assert result.text == "Here:\n```python\ndef f():\n    return 1\n```\n"
    assert result.usage.completion_tokens == 6  # nothing sampled after the fence line ended
    whole = Generation(model, "Write f.").run()  # without the option: the prose follows
    assert whole.text.endswith("returns 1.")
