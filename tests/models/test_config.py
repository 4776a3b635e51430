"""config.json: schema, error messages users see, lookup order and path resolution."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from ggroute.core.errors import ConfigError, UnknownModelError, UsageError
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import (
    CONFIG_ENV,
    GEMMA3_PATH,
    SMOLLM2_PATH,
    config_warnings,
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


def test_every_reference_problem_is_listed_at_once(write_config) -> None:
    """A user fixing a config sees all the names that point nowhere in one run, each under its own field."""
    message = _error(write_config, {
        "models": {"coder": {}, "writer": {"context_size": 2048}},
        "router": {"model": "rtr", "default_route": "coder",
                   "routes": {"coder": {"model": "coder", "description": "d"},
                              "algorithm": {"model": "nada", "description": "d"}}},
    })
    assert "3 problem(s) in config" in message
    assert "  models.writer.path: model 'writer' has no path" in message
    assert "  router.model: 'rtr' is not a model in `models` (coder, writer)" in message
    assert "  router.routes.algorithm.model: route 'algorithm' names model 'nada', which is not in" in message
    assert "router.routes.coder" not in message


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


def _text_error(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "config.json"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    return str(info.value)


DUPLICATE_TOP = """{
  "models": {"coder": {}},
  "memory_budget_mb": 4000,
  "memory_budget_mb": 8000
}"""
DUPLICATE_MODEL = """{
  "models": {
    "coder": {"max_tokens": 64},
    "algorithm": {},
    "coder": {"max_tokens": 128}
  }
}"""
DUPLICATE_FIELD = """{
  "models": {
    "coder": {
      "context_size": 2048, "max_tokens": 64, "context_size": 4096
    }
  }
}"""
DUPLICATE_ROUTE = """{
  "models": {"router": {}, "coder": {}},
  "router": {
    "routes": {
      "code": {"model": "coder", "description": "code"},
      "code": {"model": "coder", "description": "more code"}
    },
    "default_route": "code"
  }
}"""


@pytest.mark.parametrize(("text", "second", "first"), [
    (DUPLICATE_TOP, "'memory_budget_mb' at line 4, column 3", "line 3, column 3"),
    (DUPLICATE_MODEL, "'coder' at line 5, column 5", "line 3, column 5"),
    (DUPLICATE_FIELD, "'context_size' at line 4, column 47", "line 4, column 7"),
    (DUPLICATE_ROUTE, "'code' at line 6, column 7", "line 5, column 7"),
], ids=["top level", "models", "a model's field", "routes"])
def test_a_repeated_key_is_an_error_naming_the_key_and_both_places(
    tmp_path: Path, text: str, second: str, first: str
) -> None:
    # json.loads alone keeps the last value silently: the second "memory_budget_mb" would win without a word.
    message = _text_error(tmp_path, text)
    assert f"config.json: duplicate key {second}: the same object has it at {first} already; each key may " \
           "appear once in an object" in message


def test_the_same_key_in_different_objects_is_fine(write_config) -> None:
    text = '{"models": {"coder": {"max_tokens": 8}, "algorithm": {"max_tokens": 8}}, "max": {"max_tokens": 1}}'
    message = _text_error(write_config({}).parent, text)
    assert "duplicate" not in message and "max: unknown key" in message  # only the schema's complaint


def test_a_key_written_with_an_escape_is_the_same_key(tmp_path: Path) -> None:
    text = '{"models": {"coder": {}},\n "log_file": "a.jsonl", "log_\\u0066ile": "b.jsonl"}'
    assert "duplicate key 'log_file' at line 2, column 25" in _text_error(tmp_path, text)


@pytest.mark.parametrize(("text", "expected"), [
    ('{"memory_budget_mb": ' + "9" * 5000 + "}", "invalid JSON: a number with more than 4300 digits"),
    ("[" * 50_000 + "]" * 50_000, "invalid JSON: nested too deeply"),
    ('{"models": {"coder": {"timeout_s": Infinity}}}', "invalid JSON: Infinity is not a JSON value"),
    ('{"models": {"coder": {"timeout_s": NaN}}}', "invalid JSON: NaN is not a JSON value"),
], ids=["long number", "deep nesting", "Infinity", "NaN"])
def test_json_that_json_loads_cannot_read_is_a_config_error(tmp_path: Path, text: str, expected: str) -> None:
    # Found by tests/fuzz: json.loads raised ValueError and RecursionError here, a traceback in the CLI.
    assert expected in _text_error(tmp_path, text)


def test_bytes_that_are_not_utf8_are_named_by_line_and_column(tmp_path: Path) -> None:
    text = b'{\n  "models": {"coder": {"system_prompt": "caf\xe9"}}\n}'
    message = _text_error(tmp_path, text)
    assert "config file is not UTF-8: line 2, column 45 (byte 0xe9); save it as UTF-8" in message


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(USERS_CONFIG).encode())
    assert load_config(path).config.memory_budget_mb == 8000


def test_max_tokens_not_below_context_size_is_a_warning_on_load(
    write_config, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config({"models": {"coder": {"context_size": 1024, "max_tokens": 1024},
                                    "algorithm": {"context_size": 1024, "max_tokens": 1023}}})
    with caplog.at_level(logging.WARNING, logger="ggroute.config"):
        loaded = load_config(path)
    assert [r.getMessage() for r in caplog.records] == [f"{loaded.source}: {config_warnings(loaded.config)[0]}"]
    (warning,) = config_warnings(loaded.config)  # algorithm, one below, is fine
    assert warning.startswith("models.coder.max_tokens (1024) is not below context_size (1024): the prompt takes")
    assert "lower max_tokens or raise context_size" in warning

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ggroute.config"):
        load_config(path, warn=False)  # `config check` prints them itself
    assert caplog.records == []


def test_the_shipped_config_has_no_warnings() -> None:
    assert config_warnings(load_config(packaged_default_config()).config) == []


def test_missing_file_is_config_error_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.json")
    assert "not found" in str(info.value)
    assert str(tmp_path / "nope.json") in str(info.value)


def test_max_tokens_zero_rejected(write_config) -> None:
    message = _error(write_config, {"models": {"coder": {"max_tokens": 0}}})
    assert "models.coder.max_tokens" in message
    assert "(got 0)" in message


@pytest.mark.parametrize("name", ["", "a b", "a/b", "-x", "auto", "caf\u00e9"])
def test_model_and_route_names_that_the_faces_cannot_carry_are_refused(write_config, name: str) -> None:
    models = {name: {"path": SMOLLM2_PATH, "context_size": 1024}}
    message = _error(write_config, {"models": models})
    assert (f"model name {json.dumps(name, ensure_ascii=False)} is not usable" in message
            or "model name 'auto' is taken" in message)
    routed = {"models": {"coder": {"context_size": 1024}},
              "router": {"model": "coder", "default_route": "other",
                         "routes": {name: {"model": "coder", "description": "x"},
                                    "other": {"model": "coder", "description": "y"}}}}
    message = _error(write_config, routed)
    assert f"route name {json.dumps(name, ensure_ascii=False)} is not usable" in message or "'auto' is taken" in message


def test_usual_model_names_are_accepted(write_config) -> None:
    names = ["coder", "qwen2.5-coder:7b", "Llama_3.1", "7b"]
    loaded = load_config(write_config({"models": {n: {"path": SMOLLM2_PATH} for n in names}}))
    assert list(loaded.config.models) == names


@pytest.mark.parametrize(("value", "shown"), [("4096", '"4096"'), (True, "true"), (4096.0, "4096.0")])
def test_integers_are_json_integers(write_config, value: object, shown: str) -> None:
    # pydantic's lax mode would take "4096" and true as integers; the JSON the user wrote is what is checked.
    message = _error(write_config, {"models": {"coder": {"context_size": value}}})
    assert "models.coder.context_size: Input should be a valid integer" in message
    assert f"(got {shown})" in message


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
    assert "router.model: 'classifier' is not a model" in message


def test_route_naming_unknown_model_rejected(write_config) -> None:
    routes = {**ROUTER_SECTION["routes"], "math": {"model": "mathematician", "description": "math"}}
    message = _error(write_config, {**USERS_CONFIG, "router": {**ROUTER_SECTION, "routes": routes}})
    assert "route 'math' names model 'mathematician'" in message


def test_router_defaults_to_model_named_router(write_config) -> None:
    models = {k: v for k, v in USERS_CONFIG["models"].items() if k != "router"}
    router = {k: v for k, v in ROUTER_SECTION.items() if k != "model"}
    message = _error(write_config, {"models": models, "router": router})
    assert "router.model: 'router' is not a model" in message


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
    assert str(info.value) == "unknown model 'writer': the config defines router, coder, algorithm"


def test_docs_config_md_field_reference_is_in_sync_with_the_schema() -> None:
    from ggroute.models.config_docs import markdown_reference

    doc = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text(encoding="utf-8")
    embedded = doc.split("<!-- generated:start -->\n", 1)[1].split("<!-- generated:end -->", 1)[0]
    assert embedded == markdown_reference(), "regenerate with `ggroute config docs` (see docs/config.md)"


def test_the_shipped_route_head_can_be_named_from_any_folder(tmp_path: Path) -> None:
    shipped = json.loads(Path(__file__).resolve().parents[2].joinpath("config.json").read_text(encoding="utf-8"))
    shipped["router"]["head"] = "pkg:ggroute.models/router-head.json"
    config = tmp_path / "elsewhere" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps(shipped), encoding="utf-8")
    head = load_config(config).router_head_path
    assert head is not None and head.is_file() and head.parent.name == "models"
    shipped["router"]["head"] = "pkg:ggroute.models/no-such-head.json"
    config.write_text(json.dumps(shipped), encoding="utf-8")
    with pytest.raises(ConfigError, match="router.head 'pkg:ggroute.models/no-such-head.json'.*has no file"):
        _ = load_config(config).router_head_path


AVX2_ONLY = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | REPACK = 1 | "
WITH_BF16 = AVX2_ONLY + "AVX512 = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | "


def test_bf16_weights_without_avx512_bf16_get_advice_with_the_q4_0_head() -> None:
    from ggroute.models.llamacpp.runtime import parse_system_info, weights_type_warnings

    assert "AVX2" in parse_system_info(AVX2_ONLY) and "AVX512_BF16" not in parse_system_info(AVX2_ONLY)
    data = json.loads(packaged_default_config().read_text(encoding="utf-8"))
    assert data["models"]["router"]["weights_type"] == "q4_0"  # the shipped router: nothing to warn about
    assert weights_type_warnings(load_config(packaged_default_config()).config, parse_system_info(AVX2_ONLY)) == []
    data["models"]["router"]["weights_type"] = "bf16"
    data["router"]["head"] = "pkg:ggroute.models/router-head.json"
    shipped = parse_config(json.dumps(data), packaged_default_config()).config
    [warning] = weights_type_warnings(shipped, parse_system_info(AVX2_ONLY))
    assert warning.startswith("models.router.weights_type is bf16, but this CPU has no AVX512_BF16")
    assert '"head": "pkg:ggroute.models/router-head-q4_0.json"' in warning
    assert weights_type_warnings(shipped, parse_system_info(WITH_BF16)) == []
    assert weights_type_warnings(shipped, parse_system_info("CPU : NEON = 1 | ARM_FMA = 1 | ")) == []  # not judged


def test_a_bf16_prompt_copy_without_avx512_bf16_gets_advice() -> None:
    from ggroute.models.llamacpp.runtime import parse_system_info, weights_type_warnings

    data = json.loads(packaged_default_config().read_text(encoding="utf-8"))
    data["models"]["coder"]["prompt_weights_type"] = "bf16"
    config = parse_config(json.dumps(data), packaged_default_config()).config
    [warning] = weights_type_warnings(config, parse_system_info(AVX2_ONLY))
    assert warning.startswith("models.coder.prompt_weights_type is bf16, but this CPU has no AVX512_BF16")
    assert weights_type_warnings(config, parse_system_info(WITH_BF16)) == []
