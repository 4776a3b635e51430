"""`ggroute pull`, `--pull`/auto_pull and `ggroute models --plan` against the stub Hub (no model is loaded)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ggroute.cli.app import app
from ggroute.cli.pull_commands import pull_if_asked
from ggroute.models.config import SMOLLM2_PATH, load_config
from ggroute.models.hub import PARTIAL_SUFFIX, local_model_file, pull
from ggroute.models.hub_ref import parse_hub_ref
from tests.hub.conftest import GATED_REPO, SMOL_REF, SMOL_REPO, HubEnv

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def assert_exit(result: Result, code: int) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output


def write_config(tmp_path: Path, models: dict[str, object], **top: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"models": models, "log_file": str(tmp_path / "log.jsonl"), **top}), encoding="utf-8")
    return path


@pytest.fixture
def hub_config(tmp_path: Path) -> Path:
    """coder on the stub Hub's SmolLM2; router a shipped model (not an hf: reference)."""
    return write_config(tmp_path, {"coder": {"path": SMOL_REF, "context_size": 2048},
                                   "router": {"path": SMOLLM2_PATH, "context_size": 1024}}, memory_budget_mb=2000)


def test_pull_downloads_the_configured_models_and_prints_their_plan(hub_env: HubEnv, hub_config: Path) -> None:
    result = invoke("pull", "-c", str(hub_config))
    assert_exit(result, 0)
    assert "coder: " + SMOL_REF + " downloaded 98 MB (98 MB, sha256)" in result.stderr
    assert "Memory plan" in result.stdout and "coder" in result.stdout and "router" not in result.stdout
    again = invoke("pull", "coder", "--json", "-c", str(hub_config))
    assert_exit(again, 0)
    assert "already in the cache" in again.stderr
    payload = json.loads(again.stdout)
    [pulled] = payload["pulled"]
    assert pulled["name"] == "coder" and pulled["ref"] == SMOL_REF
    assert pulled["files"][0]["verified"] == "cached" and pulled["files"][0]["downloaded_bytes"] == 0
    assert [p["name"] for p in payload["plan"]] == ["coder"] and payload["plan"][0]["context_size"] == 2048


def test_pull_a_bare_reference(hub_env: HubEnv, hub_config: Path) -> None:
    result = invoke("pull", f"hf:{SMOL_REPO}:Q4_1", "-c", str(hub_config))
    assert_exit(result, 0)
    assert f"{SMOL_REF} downloaded" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pull", "writer"], "unknown model 'writer'"),
        (["pull", "router"], "model 'router' is not an hf: model"),
        (["pull", "hf:owner/repo"], "names a repository but no file or quantization"),
    ],
)
def test_pull_usage_errors(hub_env: HubEnv, hub_config: Path, args: list[str], message: str) -> None:
    result = invoke(*args, "-c", str(hub_config))
    assert_exit(result, 2)
    assert message in result.stderr


def test_pull_with_no_hf_models_in_the_config_has_nothing_to_do(hub_env: HubEnv, tmp_path: Path) -> None:
    # The shipped config: its models ship in Python packages; a new user's `ggroute pull` is not an error.
    result = invoke("pull", "-c", str(write_config(tmp_path, {"coder": {"path": SMOLLM2_PATH}})))
    assert_exit(result, 0)
    assert "nothing to pull" in result.stderr and "names no hf: models" in result.stderr


def test_pull_of_a_gated_repository_says_what_to_do(hub_env: HubEnv, hub_config: Path) -> None:
    result = invoke("pull", f"hf:{GATED_REPO}/Gated-Q4_1.gguf", "-c", str(hub_config))
    assert_exit(result, 1)
    assert "is a gated repository" in result.stderr and "HF_TOKEN" in result.stderr


def test_a_missing_model_is_an_error_naming_the_pull_command(hub_env: HubEnv, hub_config: Path) -> None:
    result = invoke("generate", "hi", "-m", "coder", "-c", str(hub_config))
    assert_exit(result, 1)
    stderr = " ".join(result.stderr.split())
    assert f"run `ggroute pull {SMOL_REF}` (or pass --pull to run, generate or serve)" in stderr
    assert hub_env.stub.requests == []  # nothing downloads without --pull


def test_serve_refuses_to_start_with_a_model_not_downloaded(hub_env: HubEnv, hub_config: Path) -> None:
    result = invoke("serve", "--port", "0", "-c", str(hub_config))
    assert_exit(result, 1)
    assert f"coder ({SMOL_REF}) not downloaded: run `ggroute pull --config {hub_config}`" in result.stderr
    assert "listening" not in result.stderr


def test_pull_flag_and_auto_pull_download_before_running(hub_env: HubEnv, hub_config: Path, tmp_path: Path) -> None:
    loaded = load_config(hub_config)
    pull_if_asked(loaded, False)
    assert hub_env.stub.requests == []
    pull_if_asked(loaded, True)
    assert local_model_file(parse_hub_ref(SMOL_REF)).is_file()
    auto = write_config(tmp_path, {"coder": {"path": f"{SMOL_REF}@v1.0"}}, auto_pull=True)
    pull_if_asked(load_config(auto), False)
    assert local_model_file(parse_hub_ref(f"{SMOL_REF}@v1.0")).is_file()


def test_models_plan_reads_a_remote_header_before_any_download(hub_env: HubEnv, hub_config: Path) -> None:
    result = invoke("models", "--plan", "--json", "-c", str(hub_config))
    assert_exit(result, 0)
    payload = json.loads(result.stdout)
    coder = next(m for m in payload["models"] if m["name"] == "coder")
    assert coder["source"] == "hub" and not coder["downloaded"] and coder["quantization"] == "Q4_1"
    assert coder["context_size"] == 2048 and coder["own_bytes"] == coder["bytes_by_context"]["2048"]
    assert coder["bytes_by_context"]["2048"] < coder["bytes_by_context"]["32768"]
    router = next(m for m in payload["models"] if m["name"] == "router")
    assert router["shares_weights_with"] == "coder" or router["source"] == "file"
    assert payload["fits_budget"] and payload["ram_bytes"] > 0 and not payload["budget_above_ram"]
    gets = hub_env.stub.body_gets()
    assert gets and all(r.range is not None and not r.range.endswith("-") for r in gets)  # header bytes only


def test_models_plan_after_pull_and_over_budget(hub_env: HubEnv, tmp_path: Path) -> None:
    pull(parse_hub_ref(SMOL_REF))
    config = write_config(tmp_path, {"coder": {"path": SMOL_REF, "context_size": 32768}}, memory_budget_mb=500)
    result = invoke("models", "--plan", "-c", str(config))
    assert_exit(result, 1)
    assert "coder alone is over memory_budget_mb" in result.stdout
    huge = write_config(tmp_path, {"coder": {"path": SMOL_REF}}, memory_budget_mb=10**9)
    payload = json.loads(invoke("models", "--plan", "--json", "-c", str(huge)).stdout)
    assert payload["budget_above_ram"] and payload["models"][0]["source"] == "file"


def test_models_plan_offline_and_not_downloaded(hub_env: HubEnv, hub_config: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    hub_env.offline(monkeypatch)
    result = invoke("models", "--plan", "-c", str(hub_config))
    assert_exit(result, 1)
    stderr = " ".join(result.stderr.split())
    assert f"{hub_config}: models.coder: model file" in stderr and "run `ggroute pull" in stderr
    assert "counts only the models planned: coder could not be" in " ".join(result.stdout.split())


def test_models_plan_asks_an_unreachable_hub_once(hub_env: HubEnv, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Each request to an unreachable Hub waits through huggingface_hub's retries (25 s here): one is enough.
    from ggroute.core.errors import HubUnreachableError
    from ggroute.models import hub_header

    asked: list[str] = []

    def unreachable(ref: object) -> None:
        asked.append(str(ref))
        raise HubUnreachableError("cannot reach the Hub at http://127.0.0.1:9 (ConnectError: refused)")

    monkeypatch.setattr(hub_header, "remote_gguf_info", unreachable)
    config = write_config(tmp_path, {"coder": {"path": SMOL_REF}, "algorithm": {"path": "hf:someone/Other-GGUF:Q4_1"}})
    result = invoke("models", "--plan", "-c", str(config))
    assert_exit(result, 1)
    assert len(asked) == 1
    stderr = " ".join(result.stderr.split())
    assert f"{config}: models.coder: cannot reach the Hub" in stderr
    assert f"{config}: models.algorithm: model" in stderr
    assert "its header was not read because the Hub could not be reached for 'coder'" in stderr


def test_ctrl_c_during_pull_exits_130_and_the_next_pull_resumes(hub_env: HubEnv, hub_config: Path) -> None:
    hub_env.stub.throttle_s = 0.05  # about 20 MB/s: the pull is still running when the signal comes
    process = subprocess.Popen(
        [sys.executable, "-m", "ggroute.cli", "pull", "coder", "-c", str(hub_config)],
        cwd=ROOT, env=hub_env.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not [p for p in hub_env.cache.rglob(f"*{PARTIAL_SUFFIX}") if p.stat().st_size > 0]:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "run `ggroute pull " in stderr and "Traceback" not in stderr
    [partial] = hub_env.cache.rglob(f"*{PARTIAL_SUFFIX}")
    kept = partial.stat().st_size
    hub_env.stub.throttle_s = 0.0
    hub_env.stub.requests.clear()
    [pulled] = pull(parse_hub_ref(SMOL_REF)).files
    assert [r.range for r in hub_env.stub.body_gets()] == [f"bytes={kept}-"]
    assert pulled.verified == "sha256"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("hf:nobody/No-Such-Repo/x-Q4_1.gguf", "check the repository, revision and file names"),
        (f"hf:{SMOL_REPO}/missing-Q4_1.gguf", "check the repository, revision and file names"),
        (f"hf:{GATED_REPO}/Gated-Q4_1.gguf", "gated repository"),
        (f"hf:{SMOL_REPO}/notes/page-Q8_0.gguf", "is not a GGUF file"),
    ],
)
def test_models_plan_of_a_remote_header_that_cannot_be_read(hub_env: HubEnv, tmp_path: Path, path: str,
                                                             message: str) -> None:
    config = write_config(tmp_path, {"coder": {"path": path}})
    result = invoke("models", "--plan", "-c", str(config))
    assert_exit(result, 1)
    stderr = " ".join(result.stderr.split())
    assert f"{config}: models.coder: " in stderr and message in stderr
