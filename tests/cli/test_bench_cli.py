"""`ggroute bench` on the real SmolLM2 model with tiny sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ggroute.cli.app import app
from ggroute.models.llamacpp.runtime import gpu_offload_supported

TINY = ["--repeat", "1", "--prompt-tokens", "16", "--gen-tokens", "8"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.mark.slow
def test_thread_sweep_json_shape(write_config, test_config) -> None:
    config = write_config(test_config)
    result = invoke("bench", "coder", *TINY, "--threads", "1,2", "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = payload["results"]
    assert [r["n_threads"] for r in rows] == [1, 2]
    for row in rows:
        assert row["model"] == "coder" and row["skipped"] is None
        assert row["decode_tokens_per_s"] > 0 and row["prefill_tokens_per_s"] > 0
        assert row["load_s"] > 0 and row["time_to_first_token_s"] > 0
        assert row["peak_rss_mb"] > 100  # the model's weights alone are ~97 MB
        assert row["estimate_mb"] > 0
    fastest = max(rows, key=lambda r: r["decode_tokens_per_s"])
    assert payload["best"] == {"coder": fastest["settings"]}
    assert payload["interrupted"] is False


@pytest.mark.slow
def test_gpu_values_are_skipped_with_the_reason_on_a_cpu_build(write_config, test_config) -> None:
    if gpu_offload_supported():
        pytest.skip("this llama.cpp build can offload to a GPU")
    config = write_config(test_config)
    result = invoke("bench", "coder", *TINY, "--n-gpu-layers", "0,8", "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    rows = {r["n_gpu_layers"]: r for r in json.loads(result.stdout)["results"]}
    assert rows[0]["skipped"] is None
    assert "cannot offload to a GPU" in rows[8]["skipped"]
    assert rows[8]["decode_tokens_per_s"] is None  # not silently run on the CPU


def test_values_that_do_not_fit_are_skipped_with_the_reason(write_config, test_config) -> None:
    test_config["memory_budget_mb"] = 400
    config = write_config(test_config)
    result = invoke("bench", "coder", "--repeat", "1", "--prompt-tokens", "60", "--gen-tokens", "8",
                    "--ctx", "64,32768", "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    rows = {r["context_size"]: r for r in json.loads(result.stdout)["results"]}
    assert rows[64]["skipped"] == "prompt 60 + 8 generated tokens exceed context_size 64"
    assert "over memory_budget_mb" in rows[32768]["skipped"]


@pytest.mark.slow
def test_apply_round_trips_config_json(write_config, test_config) -> None:
    config = write_config(test_config)
    original = config.read_text()
    result = invoke("bench", "coder", *TINY, "--threads", "1", "--batch", "64", "--apply", "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    applied = json.loads(result.stdout)["applied"]
    assert json.loads(original)["models"]["coder"]["n_threads"] == 1  # the test config has it already
    assert applied["changed"] == {"coder": {"n_batch": 64}}  # only what the file did not have
    assert Path(applied["backup"]).read_text() == original
    after = json.loads(config.read_text())
    before = json.loads(original)
    assert after["models"]["coder"] == {**before["models"]["coder"], "n_threads": 1, "n_batch": 64}
    assert list(after["models"]["coder"])[: len(before["models"]["coder"])] == list(before["models"]["coder"])
    assert after["models"]["algorithm"] == before["models"]["algorithm"]
    assert {k: v for k, v in after.items() if k != "models"} == {k: v for k, v in before.items() if k != "models"}
    # The same sweep again: the file has those values already, so nothing is written and no backup made.
    backups = sorted(config.parent.glob("*.bak"))
    again = invoke("bench", "coder", *TINY, "--threads", "1", "--batch", "64", "--apply", "-c", str(config))
    assert again.exit_code == 0, again.output
    assert "--apply: the fastest values are those config.json has already: nothing written" in again.stdout
    assert sorted(config.parent.glob("*.bak")) == backups and json.loads(config.read_text()) == after


def test_apply_refuses_to_edit_the_packaged_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config.json here, and $GGROUTE_CONFIG is unset by the test environment
    monkeypatch.delenv("GGROUTE_CONFIG", raising=False)
    result = invoke("bench", "coder", *TINY, "--threads", "1", "--apply")
    assert result.exit_code == 2
    assert "--apply writes into the config file, but none was found" in " ".join(result.output.split())


@pytest.mark.slow
def test_timeout_advice_warns_about_short_timeouts(write_config, test_config) -> None:
    test_config["models"]["coder"].update(max_tokens=4096, timeout_s=0.5)
    config = write_config(test_config)
    result = invoke("bench", "coder", *TINY, "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    [advice] = json.loads(result.stdout)["timeout_advice"]
    assert advice["too_short"] is True
    assert advice["expected_s"] == pytest.approx(4096 / advice["decode_tokens_per_s"], rel=0.01)
    text = invoke("bench", "coder", *TINY, "-c", str(config))
    assert "warning:" in text.stdout and "raise timeout_s" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown model 'nope'"),
        (["coder", "--threads", "a,2"], "'a' is not an integer"),
        (["coder", "--threads", "0"], "below the smallest n_threads"),
        (["coder", "--n-gpu-layers", "-2"], "below the smallest n_gpu_layers"),
        (["coder", "--weights-type", "q4_1"], "'q4_1' is not a weights_type"),
        (["coder", "--cache-type-k", "f16,q5_1"], "'q5_1' is not a cache_type_k"),
    ],
)
def test_bad_input_is_a_usage_error(write_config, test_config, args: list[str], message: str) -> None:
    config = write_config(test_config)
    result = invoke("bench", *args, *TINY, "-c", str(config))
    assert result.exit_code == 2
    assert message in result.stderr


def test_plot_without_matplotlib_fails_before_measuring(write_config, test_config, monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # fault injection: the optional extra is missing
    config = write_config(test_config)
    result = invoke("bench", "coder", *TINY, "--plot", str(tmp_path / "x.png"), "-c", str(config))
    assert result.exit_code == 2
    assert "pip install 'ggroute[plot]'" in result.stderr


@pytest.mark.slow
def test_ctrl_c_mid_sweep_prints_what_was_measured(write_config, test_config) -> None:
    config = write_config(test_config)
    ggroute = Path(sys.executable).with_name("ggroute")
    # 4 combinations of ~6 s each (3 loads and 3 x 100 tokens in a fresh process)
    command = [str(ggroute), "bench", "coder", "--repeat", "3", "--prompt-tokens", "16", "--gen-tokens", "100",
               "--threads", "1,2", "--batch", "64,128", "--json", "-c", str(config)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    time.sleep(15)  # at least one combination measured (two on an idle machine), the sweep far from done
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    payload = json.loads(stdout)
    assert payload["interrupted"] is True
    assert 0 < len(payload["results"]) < 4


@pytest.mark.slow
def test_weights_and_key_type_sweep_converts_and_applies(write_config, test_config) -> None:
    config = write_config(test_config)
    result = invoke("bench", "coder", *TINY, "--weights-type", "none,q8_0", "--cache-type-k", "q8_0", "--apply",
                    "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = {r["settings"]: r for r in payload["results"]}
    assert set(rows) == {"weights=none keys=q8_0", "weights=q8_0 keys=q8_0"}
    assert rows["weights=none keys=q8_0"]["weights_type"] is None
    assert rows["weights=q8_0 keys=q8_0"]["weights_type"] == "q8_0"
    # the Q8_0 copy holds ~1.6x the 4-bit file's weights: the plan follows the file actually loaded
    assert rows["weights=q8_0 keys=q8_0"]["estimate_mb"] > rows["weights=none keys=q8_0"]["estimate_mb"] + 40
    best = rows[payload["best"]["coder"]]
    assert best["decode_tokens_per_s"] == max(r["decode_tokens_per_s"] for r in rows.values())
    coder = json.loads(config.read_text())["models"]["coder"]
    assert coder["cache_type_k"] == "q8_0" and coder.get("weights_type") == best["weights_type"]


def test_a_router_that_only_routes_is_ranked_by_prompt_speed(write_config, test_config) -> None:
    from ggroute.evals.bench import BenchResult, BenchSettings
    from ggroute.evals.bench_sweep import best_per_model, ranking_metrics
    from ggroute.models.catalog import ModelCatalog
    from ggroute.models.config import load_config

    test_config["models"]["router"] = dict(test_config["models"]["coder"])
    test_config["router"] = {"routes": {"coder": {"model": "coder", "description": "software"},
                                        "algorithm": {"model": "algorithm", "description": "algorithms"}},
                             "default_route": "coder"}
    metrics = ranking_metrics(ModelCatalog(load_config(write_config(test_config))))
    assert metrics == {"coder": "decode_tokens_per_s", "algorithm": "decode_tokens_per_s",
                       "router": "prefill_tokens_per_s"}
    fast_prompt = BenchResult("router", BenchSettings(weights_type="bf16"), prefill_tokens_per_s=900.0,
                              decode_tokens_per_s=40.0)
    fast_decode = BenchResult("router", BenchSettings(weights_type="none"), prefill_tokens_per_s=300.0,
                              decode_tokens_per_s=60.0)
    assert best_per_model([fast_decode, fast_prompt], metrics)["router"] is fast_prompt
    coder = [BenchResult("coder", BenchSettings(n_threads=n), prefill_tokens_per_s=p, decode_tokens_per_s=d)
             for n, p, d in ((1, 900.0, 40.0), (2, 300.0, 60.0))]
    assert best_per_model(coder, metrics)["coder"] is coder[1]


@pytest.mark.slow
def test_applying_router_weights_names_the_shipped_head_that_matches_or_says_retrain(routed_config) -> None:
    """The route head is trained for the router's weights and keys: --apply says when it no longer matches."""
    config = routed_config()
    result = invoke("bench", "router", *TINY, "--weights-type", "bf16", "--apply", "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    applied = json.loads(result.stdout)["applied"]
    assert json.loads(config.read_text())["models"]["router"]["weights_type"] == "bf16"
    assert "the shipped head pkg:ggroute.models/router-head.json matches the new ones" in applied["head_warning"]
    # keys no shipped head was trained with: retrain, and where the previous config is
    result = invoke("bench", "router", *TINY, "--cache-type-k", "f16", "--apply", "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    applied = json.loads(result.stdout)["applied"]
    assert "retrain it with `ggroute router train`" in applied["head_warning"]
    assert applied["backup"] in applied["head_warning"]
    # settings the head was trained for: nothing to say
    result = invoke("bench", "router", *TINY, "--weights-type", "q4_0", "--cache-type-k", "q8_0", "--apply",
                    "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "head_warning" not in json.loads(result.stdout)["applied"]


def test_the_table_is_readable_at_80_columns() -> None:
    # It used to cut the settings to "threa…" and the fastest mark to "fast…", so no row could be told apart.
    from rich.console import Console

    from ggroute.cli.bench_commands import render_table, skipped_lines
    from ggroute.evals.bench import BenchResult, BenchSettings

    fast = BenchResult("algorithm", BenchSettings(n_threads=2, weights_type="iq4_nl"), load_s=0.35,
                       prefill_tokens_per_s=1164.9, decode_tokens_per_s=52.1, time_to_first_token_s=0.364,
                       peak_rss_mb=1277, estimate_mb=1360)
    slow = BenchResult("algorithm", BenchSettings(n_threads=1, context_size=4096), load_s=0.26,
                       prefill_tokens_per_s=118.2, decode_tokens_per_s=42.2, time_to_first_token_s=0.508,
                       peak_rss_mb=277, estimate_mb=360)
    skipped = BenchResult("algorithm", BenchSettings(n_threads=1, context_size=64),
                          skipped="prompt 60 + 8 generated tokens exceed context_size 64")
    console = Console(width=80, record=True)
    console.print(render_table([slow, skipped, fast], {"algorithm": fast}, {}))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    rows = [" ".join(line.split()) for line in text.splitlines() if line.strip().startswith("algorithm")]
    assert rows == ["algorithm * threads=2 0.35 1164.9 52.1 0.364 1277 1360",  # weights=iq4_nl on the next line
                    "algorithm threads=1 ctx=4096 0.26 118.2 42.2 0.508 277 360",
                    "algorithm threads=1 ctx=64 skipped"]
    assert "weights=iq4_nl" in text.split()
    assert skipped_lines([fast, skipped]) == [
        "[yellow]skipped[/] algorithm threads=1 ctx=64: prompt 60 + 8 generated tokens exceed context_size 64"]
