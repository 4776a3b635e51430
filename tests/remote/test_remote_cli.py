"""What a user sees from the CLI with remote models: generate's text, footer and --json, exit codes for each kind
of failure (no traceback), `models` and `config check` showing them as remote, `--probe`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ggroute.cli.app import app
from tests.remote.conftest import remote_model
from tests.remote.stub import Stub


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def config(stub: Stub, remote_config: Callable[..., Path], upstream: str = "ok", **settings: Any) -> Path:
    return remote_config({"main": remote_model(stub.url + "/v1", upstream, **settings)})


def test_generate_streams_text_and_the_footer_names_the_server(stub: Stub, remote_config: Callable[..., Path]) -> None:
    result = invoke("generate", "--model", "main", "Say hi.", "-c", str(config(stub, remote_config)))
    assert result.exit_code == 0, result.output
    assert result.stdout == "Hello, world.\n"
    footer = " ".join(result.stderr.split())  # rich wraps it to the terminal's width
    assert f"remote ok at {stub.url}/v1 (usage from upstream, timings from stream)" in footer


def test_generate_json_has_the_remote_object(stub: Stub, remote_config: Callable[..., Path]) -> None:
    result = invoke("generate", "--model", "main", "Say hi.", "--json", "-c", str(config(stub, remote_config)))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["remote"] == {"backend": "openai", "base_url": f"{stub.url}/v1", "upstream_model": "ok",
                                 "usage_from": "upstream", "timings_from": "stream"}
    assert payload["usage"]["completion_tokens"] == 4 and "fallback" not in payload


@pytest.mark.parametrize(("upstream", "settings", "code", "message"), [
    ("http-500", {}, 1, "failed: HTTP 500"),
    ("bad-json-mid", {}, 1, "sent malformed JSON"),
    ("stall-mid", {"read_timeout_s": 0.5}, 1, "went silent"),
    ("stall-mid", {"timeout_s": 0.5}, 3, "timed out after 0.5 s"),
    ("main-key-missing", {"api_key_env": "GGROUTE_TEST_NO_SUCH_KEY"}, 2, "api_key_env names $GGROUTE_TEST_NO_SUCH_KEY"),
])
def test_failures_exit_with_their_code_and_one_clear_line(stub: Stub, remote_config: Callable[..., Path],
                                                          upstream: str, settings: dict[str, Any], code: int,
                                                          message: str) -> None:
    result = invoke("generate", "--model", "main", "Say hi.", "-c", str(config(stub, remote_config, upstream,
                                                                                **settings)))
    assert result.exit_code == code, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_unreachable_server_exits_1(remote_config: Callable[..., Path]) -> None:
    path = remote_config({"main": remote_model("http://127.0.0.1:9/v1", "ok")})
    result = invoke("generate", "--model", "main", "Say hi.", "-c", str(path))
    assert result.exit_code == 1 and "is unreachable" in result.stderr and "Traceback" not in result.output


def test_models_lists_remote_models_as_remote(stub: Stub, remote_config: Callable[..., Path]) -> None:
    result = invoke("models", "--json", "-c", str(config(stub, remote_config)))
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["models"]}
    assert rows["main"] == {"name": "main", "loaded": False, "path_ref": f"{stub.url}/v1", "file": None,
                            "backend": "openai", "base_url": f"{stub.url}/v1", "upstream_model": "ok"}
    assert rows["router"]["file"] is not None  # the local model as before
    table = invoke("models", "-c", str(config(stub, remote_config)))
    assert "remote: ok at" in table.stdout and "none (remote)" in table.stdout


def test_models_probe_reports_reachability_and_latency(stub: Stub, remote_config: Callable[..., Path]) -> None:
    path = remote_config({"main": remote_model(stub.url + "/v1", "ok"),
                          "gone": remote_model("http://127.0.0.1:9/v1", "ok"),
                          "other": remote_model(stub.url + "/v1", "not-listed")})
    result = invoke("models", "--probe", "--json", "-c", str(path))
    assert result.exit_code == 1, result.output  # one server cannot be reached
    rows = {r["name"]: r for r in json.loads(result.stdout)["models"]}
    assert rows["main"]["reachable"] is True and rows["main"]["latency_ms"] > 0 and rows["main"]["lists_model"]
    assert rows["other"]["reachable"] is True and rows["other"]["lists_model"] is False
    assert rows["gone"]["reachable"] is False and "is unreachable" in rows["gone"]["probe_error"]
    assert "reachable" not in rows["router"]
    assert " ".join(result.stderr.split()).startswith("error: gone: model 'gone': http://127.0.0.1:9/v1 is unreachable")


def test_config_check_shows_remote_models_apart_from_the_memory_plan(
        stub: Stub, remote_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GGROUTE_TEST_NO_SUCH_KEY", raising=False)
    path = remote_config({"main": remote_model(stub.url + "/v1", "ok", api_key_env="GGROUTE_TEST_NO_SUCH_KEY")})
    result = invoke("config", "check", "--json", "-c", str(path))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [m["name"] for m in payload["models"]] == ["router"]  # the plan: local models only
    assert payload["remote_models"] == [{"name": "main", "base_url": f"{stub.url}/v1", "upstream_model": "ok",
                                         "api_key_env": "GGROUTE_TEST_NO_SUCH_KEY", "api_key_set": False}]
    assert any("$GGROUTE_TEST_NO_SUCH_KEY is not set" in w for w in payload["warnings"])
    text = invoke("config", "check", "--probe", "-c", str(path))
    assert text.exit_code == 1 and "Remote models" in text.stdout and "not set" in text.stdout
    # Nothing was sent: the error is the key, not the server's reachability.
    stderr = " ".join(text.stderr.split())
    assert "error: main: " in stderr and "GGROUTE_TEST_NO_SUCH_KEY, which is not set" in stderr
    assert "cannot be reached" not in stderr and "unreachable" not in " ".join(text.stdout.split())


def test_models_lists_a_remote_model_without_its_key_with_a_warning(
        stub: Stub, remote_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GGROUTE_TEST_NO_SUCH_KEY", raising=False)
    path = remote_config({"main": remote_model(stub.url + "/v1", "ok", api_key_env="GGROUTE_TEST_NO_SUCH_KEY")})
    result = invoke("models", "--json", "-c", str(path))
    assert result.exit_code == 0, result.output  # as config check: the listing is fine, requests will fail
    main = next(m for m in json.loads(result.stdout)["models"] if m["name"] == "main")
    assert "error" not in main and main["base_url"] == f"{stub.url}/v1"
    assert "$GGROUTE_TEST_NO_SUCH_KEY, which is not set" in main["warning"] and "warning:" in result.stderr


def test_config_check_probe_of_a_reachable_server_exits_0(stub: Stub, remote_config: Callable[..., Path]) -> None:
    result = invoke("config", "check", "--probe", "--json", "-c", str(config(stub, remote_config)))
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["remote_models"]
    assert row["reachable"] is True and row["lists_model"] is True and row["probe_error"] is None


def test_bench_refuses_a_remote_model_by_name(stub: Stub, remote_config: Callable[..., Path]) -> None:
    path = config(stub, remote_config)
    result = invoke("bench", "main", "-c", str(path))
    assert result.exit_code == 2 and "model 'main' is remote: bench measures local llama.cpp models" in result.stderr
