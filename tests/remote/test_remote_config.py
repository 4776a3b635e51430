"""Config for remote models, route fallbacks and llama.cpp RPC servers: what is accepted, what is refused and how
the refusal reads (exit 2 through the CLI). No model is loaded, no server contacted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ggroute.cli.app import app
from ggroute.core.errors import ConfigError, ModelLoadError
from ggroute.models.catalog import ModelCatalog, RemoteSpec
from ggroute.models.config import SMOLLM2_PATH, load_config

REMOTE = {"backend": "openai", "base_url": "http://gpu-host:8000/v1", "model": "qwen2.5-coder-7b"}


def write(tmp_path: Path, models: dict[str, Any], routes: dict[str, Any] | None = None) -> Path:
    data: dict[str, Any] = {"models": models, "log_file": str(tmp_path / "requests.jsonl")}
    if routes is not None:
        data["router"] = {"model": "router", "routes": routes, "default_route": next(iter(routes))}
        data["models"] = {"router": {"path": SMOLLM2_PATH}, **models}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def refusal(tmp_path: Path, models: dict[str, Any], routes: dict[str, Any] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, models, routes))
    return str(caught.value)


def test_a_remote_model_is_valid_without_a_path_and_takes_no_memory(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, {"big": {**REMOTE, "max_tokens": 900, "timeout_s": 60, "stop": ["\n\n\n"]},
                                          "coder": {"path": SMOLLM2_PATH}}))
    catalog = ModelCatalog(loaded)
    entry = catalog.entry("big")
    assert isinstance(entry, RemoteSpec)
    assert (entry.base_url, entry.upstream_model) == ("http://gpu-host:8000/v1", "qwen2.5-coder-7b")
    assert catalog.local_names == ["coder"]
    assert [p.name for p in catalog.budget_plan().models] == ["coder"]  # the remote model is not in the plan


def test_base_url_loses_its_trailing_slash(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, {"big": {**REMOTE, "base_url": "https://h.example/v1/"}}))
    assert loaded.model("big").base_url == "https://h.example/v1"


@pytest.mark.parametrize(("settings", "expected"), [
    ({"backend": "openai"}, "backend openai needs base_url and model"),
    ({"backend": "openai", "base_url": "http://h/v1"}, "backend openai needs model"),
    ({**REMOTE, "base_url": "gpu-host:8000"}, "must be an http:// or https:// URL with a host"),
    ({**REMOTE, "base_url": "ftp://gpu-host/v1"}, "must be an http:// or https:// URL"),
    ({**REMOTE, "base_url": "http://user:secret@h/v1"}, "must not hold credentials"),
    ({**REMOTE, "base_url": "http://h/v1?x=1"}, "must not have a query"),
    ({**REMOTE, "base_url": "http://h:99999/v1"}, "invalid port"),
    ({**REMOTE, "api_key_env": "sk-proj-abc123"}, "not the key itself"),
    ({**REMOTE, "model": ""}, "at least 1 character"),
    ({**REMOTE, "n_threads": 2, "context_size": 2048}, "n_threads: only for backend llama.cpp"),
    ({**REMOTE, "path": SMOLLM2_PATH}, "path: only for backend llama.cpp"),
    ({**REMOTE, "rpc_servers": ["h:50052"]}, "rpc_servers: only for backend llama.cpp"),
    ({**REMOTE, "read_timeout_s": 0}, "read_timeout_s: Input should be greater than 0"),
    ({**REMOTE, "connect_timeout_s": -1}, "connect_timeout_s: Input should be greater than 0"),
    ({**REMOTE, "backend": "vllm"}, "backend: Input should be 'llama.cpp' or 'openai'"),
    ({"path": SMOLLM2_PATH, "base_url": "http://h/v1"}, "base_url: only for backend openai"),
    ({"path": SMOLLM2_PATH, "read_timeout_s": 9}, "read_timeout_s: only for backend openai"),
])
def test_bad_remote_settings_are_refused_naming_the_field(tmp_path: Path, settings: dict[str, Any],
                                                          expected: str) -> None:
    assert expected in refusal(tmp_path, {"m": settings})


def test_context_size_and_sampling_are_allowed_for_a_remote_model(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, {"m": {**REMOTE, "context_size": 32768, "temperature": 0.7, "seed": 3,
                                                "top_p": 0.9, "system_prompt": "Be brief.", "api_key_env": "GPU_KEY",
                                                "connect_timeout_s": 1.5, "read_timeout_s": 20}}))
    assert loaded.model("m").api_key_env == "GPU_KEY"


def test_a_route_fallback_must_be_another_known_model_and_its_model_remote(tmp_path: Path) -> None:
    local = {"path": SMOLLM2_PATH}
    ok = load_config(write(tmp_path, {"big": REMOTE, "small": local},
                           {"code": {"model": "big", "description": "code", "fallback": "small"}}))
    assert ok.config.router is not None and ok.config.router.routes["code"].fallback == "small"
    assert "names fallback 'nope', which is not in `models`" in refusal(
        tmp_path, {"big": REMOTE}, {"code": {"model": "big", "description": "code", "fallback": "nope"}})
    assert "names its own model 'big' as its fallback" in refusal(
        tmp_path, {"big": REMOTE}, {"code": {"model": "big", "description": "code", "fallback": "big"}})
    assert "its model 'small' is local: fallback covers a remote model's server only" in refusal(
        tmp_path, {"big": REMOTE, "small": local}, {"code": {"model": "small", "description": "c", "fallback": "big"}})


def test_the_router_model_cannot_be_remote(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"models": {"router": REMOTE, "coder": {"path": SMOLLM2_PATH}},
                                "router": {"model": "router", "default_route": "c",
                                           "routes": {"c": {"model": "coder", "description": "code"}}}}))
    with pytest.raises(ConfigError, match="router.model: 'router' is a remote model"):
        load_config(path)


@pytest.mark.parametrize("servers", [["gpu-1:50052", "[fd00::2]:50052"], ["192.168.1.20:50052"]])
def test_rpc_servers_accept_host_port(tmp_path: Path, servers: list[str]) -> None:
    loaded = load_config(write(tmp_path, {"m": {"path": SMOLLM2_PATH, "rpc_servers": servers}}))
    assert loaded.model("m").rpc_servers == servers


@pytest.mark.parametrize(("servers", "expected"), [
    (["gpu-1"], "'gpu-1' is not HOST:PORT"),
    (["gpu-1:0"], "'gpu-1:0' is not HOST:PORT"),
    (["gpu-1:70000"], "is not HOST:PORT"),
    ([":50052"], "is not HOST:PORT"),
    (["tcp://gpu-1:50052"], "is not HOST:PORT"),
    (["gpu-1:5x"], "is not HOST:PORT"),
    (["a:1", "a:1"], "lists a server twice"),
])
def test_bad_rpc_servers_are_refused(tmp_path: Path, servers: list[str], expected: str) -> None:
    assert expected in refusal(tmp_path, {"m": {"path": SMOLLM2_PATH, "rpc_servers": servers}})


def test_rpc_servers_on_a_llama_cpp_python_without_rpc_is_a_load_error_not_ignored(tmp_path: Path) -> None:
    """llama-cpp-python's Llama() swallows unknown keyword arguments: ggroute must refuse instead of running the
    model here alone. Refused before anything is loaded (the check reads llama_cpp's signature only)."""
    import inspect

    import llama_cpp

    from ggroute.models.llamacpp.model import rpc_arguments

    with_rpc = {"m": {"path": SMOLLM2_PATH, "rpc_servers": ["h:50052"]}}
    spec = ModelCatalog(load_config(write(tmp_path, with_rpc))).spec("m")

    if "rpc_servers" in inspect.signature(llama_cpp.Llama.__init__).parameters and llama_cpp.llama_supports_rpc():
        assert rpc_arguments(spec) == {"rpc_servers": "h:50052"}
    else:
        with pytest.raises(ModelLoadError, match="lists rpc_servers, but llama-cpp-python .* cannot use them"):
            rpc_arguments(spec)
    assert rpc_arguments(ModelCatalog(load_config(write(tmp_path, {"m": {"path": SMOLLM2_PATH}}))).spec("m")) == {}


def test_catalog_spec_of_a_remote_model_says_it_is_remote(tmp_path: Path) -> None:
    from ggroute.core.errors import UsageError

    catalog = ModelCatalog(load_config(write(tmp_path, {"big": REMOTE})))
    with pytest.raises(UsageError, match="model 'big' is remote .* no GGUF file or memory plan"):
        catalog.spec("big")


def test_config_check_exits_2_on_a_bad_remote_setting(tmp_path: Path) -> None:
    path = write(tmp_path, {"m": {**REMOTE, "api_key_env": "sk-123"}})
    result = CliRunner().invoke(app, ["config", "check", "-c", str(path)])
    assert result.exit_code == 2, result.output
    assert "models.m.api_key_env: must be the name of an environment variable" in result.stderr
    assert "Traceback" not in result.output
