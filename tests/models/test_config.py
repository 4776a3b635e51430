"""config.json: schema, error messages users see, lookup order and path resolution."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ggroute.core.errors import ConfigError, UnknownModelError, UsageError
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import (
    CONFIG_ENV,
    GEMMA3_PATH,
    SMOLLM2_PATH,
    find_config,
    load_config,
    packaged_default_config,
    parse_config,
)
from ggroute.models.locate import resolve_model_path

# The shape users already have (written before `path` existed): roles only, no router section.
USERS_CONFIG = {
    "models": {
        "router": {"context_size": 8192, "n_gpu_layers": 0},
        "coder": {"context_size": 4096, "n_gpu_layers": 0, "max_tokens": 512},
        "algorithm": {"context_size": 4096, "n_gpu_layers": 0, "max_tokens": 1024},
    },
    "memory_budget_mb": 8000,
}

ROUTER_SECTION = {
    "model": "router",
    "routes": {
        "code": {"model": "coder", "description": "everyday code"},
        "algo": {"model": "algorithm", "description": "algorithms"},
    },
    "default_route": "code",
}


def _error(write_config, data: object) -> str:
    path = write_config(data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_users_existing_config_validates_and_default_paths_resolve(write_config, tmp_path: Path) -> None:
    loaded = load_config(write_config(USERS_CONFIG))
    config = loaded.config
    assert list(config.models) == ["router", "coder", "algorithm"]
    assert config.models["router"].context_size == 8192
    assert config.models["coder"].max_tokens == 512
    assert config.models["algorithm"].max_tokens == 1024
    assert config.models["router"].max_tokens == 512  # the documented default
    assert config.memory_budget_mb == 8000
    assert config.router is None
    assert loaded.source == (tmp_path / "config.json").resolve()
    assert loaded.model_path_ref("router") == SMOLLM2_PATH
    assert loaded.model_path_ref("coder") == SMOLLM2_PATH
    assert loaded.model_path_ref("algorithm") == GEMMA3_PATH

    catalog = ModelCatalog(loaded)
    smollm2 = catalog.path_of("coder")
    assert smollm2.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and smollm2.is_file()
    assert catalog.path_of("router") == smollm2
    gemma = catalog.path_of("algorithm")
    assert gemma.name == "gemma-3-270m-q4_k_m.gguf" and gemma.is_file()
    assert gemma.parent.parent == Path(os.environ["GGROUTE_CACHE_DIR"]).resolve()


def test_single_model_without_router_section_is_valid(write_config) -> None:
    loaded = load_config(write_config({"models": {"coder": {}}}))
    assert list(loaded.config.models) == ["coder"]
    assert loaded.config.router is None
    assert loaded.config.models["coder"].context_size == 4096


def test_model_without_path_outside_known_roles_is_rejected(write_config) -> None:
    message = _error(write_config, {"models": {"writer": {"context_size": 2048}}})
    assert "model 'writer' has no path" in message


def test_unknown_key_names_file_and_dotted_location(write_config, tmp_path: Path) -> None:
    message = _error(write_config, {"models": {"coder": {"context_size": 1024, "foo": 1}}})
    assert str(tmp_path / "config.json") in message
    assert "models.coder.foo" in message
    assert "unknown key" in message


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    bad_line = '    "coder": {"context_size": 1024,}'
    path.write_text('{\n  "models": {\n' + bad_line + "\n  }\n}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    # The trailing comma: JSON expects a key where the "}" after it stands (1-based column).
    column = bad_line.index(",}") + 2
    assert column == 36
    assert f"invalid JSON at line 3, column {column}" in message


def test_missing_file_is_config_error_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.json")
    assert "not found" in str(info.value)
    assert str(tmp_path / "nope.json") in str(info.value)


def test_max_tokens_zero_rejected(write_config) -> None:
    message = _error(write_config, {"models": {"coder": {"max_tokens": 0}}})
    assert "models.coder.max_tokens" in message
    assert "(got 0)" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("context_size", 32), ("temperature", 3.0), ("timeout_s", 0), ("stop", [""]), ("weights_type", "q4_1"),
     ("cache_type_k", "q5_1")],
)
def test_out_of_range_fields_rejected(write_config, field: str, value: object) -> None:
    message = _error(write_config, {"models": {"coder": {field: value}}})
    assert f"models.coder.{field}" in message


def test_completion_template_without_task_slot_rejected(write_config) -> None:
    message = _error(write_config, {"models": {"algorithm": {"completion_template": "Write code:\n"}}})
    assert "models.algorithm.completion_template" in message
    assert "{task}" in message


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def write(folder: str, context: int) -> Path:
        path = tmp_path / folder / "config.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"models": {"coder": {"context_size": context}}}), encoding="utf-8")
        return path

    explicit, env, local = write("explicit", 1001), write("env", 1002), write("cwd", 1003)
    empty = tmp_path / "empty"
    empty.mkdir()

    # Nothing set, no ./config.json: the packaged default (the shipped config.json).
    monkeypatch.chdir(empty)
    default = load_config()
    assert default.source == packaged_default_config().resolve()
    assert default.config.models["coder"].context_size == 4096
    assert default.config.models["router"].pinned is True

    monkeypatch.chdir(local.parent)
    assert find_config() == local
    assert load_config().config.models["coder"].context_size == 1003

    monkeypatch.setenv(CONFIG_ENV, str(env))
    assert find_config() == env
    assert load_config().config.models["coder"].context_size == 1002

    assert find_config(explicit) == explicit
    assert load_config(explicit).config.models["coder"].context_size == 1001


def test_relative_model_path_resolves_against_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    (folder / "weights").mkdir(parents=True)
    path = folder / "config.json"
    path.write_text(json.dumps({"models": {"m": {"path": "weights/m.gguf"}}}), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(path)
    assert ModelCatalog(loaded).path_of("m") == (folder / "weights" / "m.gguf").resolve()
    # And the log file too.
    loaded = parse_config(json.dumps({"models": {"m": {"path": "x.gguf"}}, "log_file": "logs/r.jsonl"}), path)
    assert loaded.log_path == folder.resolve() / "logs" / "r.jsonl"


def test_home_is_expanded_in_model_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_model_path("~/m.gguf", Path("/somewhere")) == tmp_path / "m.gguf"


def test_default_log_path_uses_xdg_state_home(write_config, tmp_path: Path) -> None:
    loaded = load_config(write_config({"models": {"coder": {}}}))
    assert loaded.log_path == tmp_path / "state" / "ggroute" / "requests.jsonl"


def test_router_naming_unknown_model_rejected(write_config) -> None:
    data = {**USERS_CONFIG, "router": {**ROUTER_SECTION, "model": "classifier"}}
    message = _error(write_config, data)
    assert "router.model 'classifier' is not a model" in message


def test_route_naming_unknown_model_rejected(write_config) -> None:
    routes = {**ROUTER_SECTION["routes"], "math": {"model": "mathematician", "description": "math"}}
    message = _error(write_config, {**USERS_CONFIG, "router": {**ROUTER_SECTION, "routes": routes}})
    assert "route 'math' names model 'mathematician'" in message


def test_router_defaults_to_model_named_router(write_config) -> None:
    models = {k: v for k, v in USERS_CONFIG["models"].items() if k != "router"}
    router = {k: v for k, v in ROUTER_SECTION.items() if k != "model"}
    message = _error(write_config, {"models": models, "router": router})
    assert "router.model 'router' is not a model" in message


def test_valid_router_section(write_config) -> None:
    loaded = load_config(write_config({**USERS_CONFIG, "router": ROUTER_SECTION}))
    assert loaded.config.router is not None
    assert loaded.config.router.default_route == "code"
    assert loaded.config.router.min_confidence == 0.5


def test_default_route_not_among_routes_rejected(write_config) -> None:
    message = _error(write_config, {**USERS_CONFIG, "router": {**ROUTER_SECTION, "default_route": "chat"}})
    assert "default_route 'chat' is not one of the routes: code, algo" in message


def test_unknown_model_name_lists_known_models(write_config) -> None:
    loaded = load_config(write_config(USERS_CONFIG))
    with pytest.raises(UnknownModelError) as info:
        loaded.model("writer")
    assert isinstance(info.value, UsageError)
    assert str(info.value) == "unknown model 'writer': config.json defines router, coder, algorithm"


def test_docs_config_md_field_reference_is_in_sync_with_the_schema() -> None:
    from ggroute.models.config_docs import markdown_reference

    doc = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text(encoding="utf-8")
    embedded = doc.split("<!-- generated:start -->\n", 1)[1].split("<!-- generated:end -->", 1)[0]
    assert embedded == markdown_reference(), "regenerate with `ggroute config docs` (see docs/config.md)"
