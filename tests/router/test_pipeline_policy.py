"""Pipeline policy over the scripted fake backend (real config, catalog, pool and request log): what is logged
per request, what loads when, forced routes, and the router's need for a ScoringModel."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ggroute.core.errors import ConfigError, GenerationError, UnknownModelError, UsageError
from ggroute.models.catalog import ModelCatalog, ModelSpec
from ggroute.models.config import SMOLLM2_PATH, load_config
from ggroute.models.generate import RequestOptions
from ggroute.router.pipeline import Pipeline
from tests.fakes import Script, ScriptedBackend, ScriptedLoader, scripted_loader

ROUTE_FIELDS = {"route", "confidence", "reason", "route_latency_ms"}
RESULT_FIELDS = {"ts", "model", "finish_reason", "usage", "timings", "limits", "evicted", "text_chars", "repetition",
                 "backend"}


def config(tmp_path: Path, **top: object) -> dict[str, object]:
    """Router, coder and algorithm all on SmolLM2's file (only its header is read), with a router section."""
    model = {"path": SMOLLM2_PATH, "context_size": 1024, "max_tokens": 16}
    return {
        "models": {"router": dict(model), "coder": dict(model), "algorithm": dict(model)},
        "router": {
            "model": "router",
            "routes": {"coder": {"model": "coder", "description": "everyday code"},
                       "algorithm": {"model": "algorithm", "description": "algorithms"}},
            "default_route": "coder",
        },
        "log_file": str(tmp_path / "requests.jsonl"),
        **top,
    }


@pytest.fixture
def make_pipeline(write_config, tmp_path: Path,
                  cached_headers: None) -> Iterator[Callable[..., tuple[Pipeline, ScriptedLoader]]]:
    pipelines: list[Pipeline] = []

    def make(scripts: dict[str, Script] | None = None, **top: object) -> tuple[Pipeline, ScriptedLoader]:
        loader = scripted_loader(**(scripts or {}))
        pipeline = Pipeline(load_config(write_config(config(tmp_path, **top))), loader)
        pipelines.append(pipeline)
        return pipeline, loader

    yield make
    for pipeline in pipelines:
        pipeline.close()


def log_lines(pipeline: Pipeline) -> list[dict[str, object]]:
    path = pipeline.loaded.log_path
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def test_generate_logs_one_line_without_route_fields(make_pipeline) -> None:
    pipeline, loader = make_pipeline({"coder": Script(pieces=("Hi", " there"))})
    with pipeline.generate("coder", "Say hi.") as generation:
        text = "".join(generation)
    assert text == "Hi there"
    [line] = log_lines(pipeline)
    assert set(line) == RESULT_FIELDS
    assert line["model"] == "coder" and line["finish_reason"] == "stop" and line["text_chars"] == 8
    assert line["backend"] == "llama.cpp"
    assert line["usage"] == {"prompt_tokens": 2, "cached_prompt_tokens": 0, "completion_tokens": 2}
    assert line["timings"]["load_s"] == 0.25  # this request loaded the model
    assert loader.loads() == ["coder"]
    with pipeline.generate("coder", "Say hi again.") as generation:
        generation.run()
    second = log_lines(pipeline)[1]
    assert second["timings"]["load_s"] is None and loader.loads() == ["coder"]  # loaded once


def test_run_with_a_forced_route_logs_the_route_fields(make_pipeline) -> None:
    pipeline, loader = make_pipeline({"algorithm": Script(pieces=("sorted",))})
    with pipeline.run("Sort a list", forced_route="algorithm") as (outcome, generation):
        result = generation.run()
    assert (outcome.route, outcome.model, outcome.confidence) == ("algorithm", "algorithm", None)
    assert result.text == "sorted"
    assert loader.loads() == ["algorithm"]  # the router model is not needed for a forced route
    [line] = log_lines(pipeline)
    assert set(line) == RESULT_FIELDS | ROUTE_FIELDS
    assert line["route"] == "algorithm" and line["reason"] == "forced by --route" and line["confidence"] is None
    assert line["model"] == "algorithm"


def test_unknown_route_is_a_usage_error_before_anything_loads(make_pipeline) -> None:
    pipeline, loader = make_pipeline()
    with pytest.raises(UsageError, match="unknown route 'nope'"), pipeline.run("x", forced_route="nope"):
        pass
    assert loader.loads() == [] and log_lines(pipeline) == []


def test_unknown_model_is_an_error_before_anything_loads(make_pipeline) -> None:
    pipeline, loader = make_pipeline()
    with pytest.raises(UnknownModelError, match="unknown model 'gpt'") as info, pipeline.generate("gpt", "hi"):
        pass
    assert info.value.known == ["router", "coder", "algorithm"]
    assert loader.loads() == [] and log_lines(pipeline) == []


@pytest.mark.parametrize("task", ["", " \n "])
def test_empty_task_is_a_usage_error_before_anything_loads(make_pipeline, task: str) -> None:
    pipeline, loader = make_pipeline()
    with pytest.raises(UsageError, match="empty"), pipeline.generate("coder", task):
        pass
    with pytest.raises(UsageError, match="empty"), pipeline.run(task, forced_route="coder"):
        pass
    assert loader.loads() == []


def test_the_log_records_a_timeout(make_pipeline) -> None:
    pipeline, _ = make_pipeline({"coder": Script(prefill_s=math.inf)})
    with pipeline.generate("coder", "Think hard.", RequestOptions(timeout_s=0.05)) as generation:
        result = generation.run()
    assert result.finish_reason == "timeout"
    [line] = log_lines(pipeline)
    assert line["finish_reason"] == "timeout" and line["text_chars"] == 0
    assert line["limits"]["timeout_s"] == 0.05
    assert line["usage"]["completion_tokens"] == 0 and line["timings"]["time_to_first_token_s"] is None


def test_the_log_records_length_and_the_partial_text_size(make_pipeline) -> None:
    pipeline, _ = make_pipeline({"coder": Script(pieces=("ab",), repeat=True)})
    with pipeline.generate("coder", "Go on.", RequestOptions(max_tokens=3)) as generation:
        generation.run()
    [line] = log_lines(pipeline)
    assert (line["finish_reason"], line["text_chars"], line["usage"]["completion_tokens"]) == ("length", 6, 3)


def test_a_backend_failure_propagates_and_frees_the_model(make_pipeline) -> None:
    pipeline, loader = make_pipeline({"coder": Script(fail_at_token=2)})
    with pytest.raises(GenerationError, match="scripted failure at token 2"), \
            pipeline.generate("coder", "Fail.") as generation:
        generation.run()
    assert log_lines(pipeline) == []  # no result, no line
    assert pipeline.pool.unload("coder") is True  # the lease was returned: the model is idle
    assert loader.closes() == ["coder"]


def test_eviction_is_logged_with_the_request_that_caused_it(make_pipeline, write_config, tmp_path: Path) -> None:
    plan = ModelCatalog(load_config(write_config(config(tmp_path)))).spec("coder").plan
    budget_mb = math.ceil(plan.own_bytes / 1_000_000)  # one model at a time
    assert plan.weight_bytes + 2 * (plan.kv_bytes + plan.compute_bytes) > budget_mb * 1_000_000
    pipeline, loader = make_pipeline(memory_budget_mb=budget_mb)
    for name in ("coder", "algorithm"):
        with pipeline.generate(name, "Hello.") as generation:
            generation.run()
    first, second = log_lines(pipeline)
    assert first["evicted"] == [] and second["evicted"] == ["coder"]
    assert second["timings"]["load_s"] == 0.25
    assert loader.events == [("load", "coder"), ("close", "coder"), ("load", "algorithm")]


def test_pipeline_close_closes_every_loaded_model(make_pipeline) -> None:
    pipeline, loader = make_pipeline()
    for name in ("coder", "algorithm"):
        with pipeline.generate(name, "Hello.") as generation:
            generation.run()
    pipeline.close()
    assert loader.closes() == ["coder", "algorithm"]
    assert all(m.closed == 1 for models in loader.models.values() for m in models)


def test_routing_needs_a_router_model_that_can_score_tokens(make_pipeline) -> None:
    """The scripted fake is a Backend, not a ScoringModel: classifying with it is a ConfigError, not a fallback."""
    pipeline, loader = make_pipeline()
    with pytest.raises(ConfigError, match="router model 'router' cannot score tokens"):
        pipeline.route("Sort a list")
    with pytest.raises(ConfigError, match="cannot score tokens"), pipeline.run("Sort a list"):
        pass
    assert loader.loads() == ["router"] and log_lines(pipeline) == []
    assert pipeline.pool.unload("router") is True  # the failed decision returned its lease


def test_a_config_without_router_section_routes_nothing(make_pipeline) -> None:
    pipeline, loader = make_pipeline(router=None)
    with pytest.raises(ConfigError, match="no `router` section"):
        pipeline.route("Sort a list")
    with pipeline.generate("coder", "Sort a list") as generation:  # naming the model still works
        assert generation.run().finish_reason == "stop"
    assert loader.loads() == ["coder"]


def test_a_loaded_model_serves_requests_while_another_model_loads(write_config, tmp_path: Path,
                                                                   cached_headers: None) -> None:
    inner = scripted_loader()
    loading, release = threading.Event(), threading.Event()

    def slow_loader(spec: ModelSpec) -> ScriptedBackend:
        if spec.name == "algorithm":
            loading.set()
            release.wait(10)  # a load taking seconds
        return inner(spec)

    served = threading.Event()

    def serve_coder() -> None:
        with pipeline.generate("coder", "Hello.") as generation:
            generation.run()
        served.set()

    def load_algorithm() -> None:
        with pipeline.generate("algorithm", "Hello.") as generation:
            generation.run()

    with Pipeline(load_config(write_config(config(tmp_path))), slow_loader) as pipeline:
        serve_coder()  # coder is loaded and idle
        served.clear()
        threads = [threading.Thread(target=load_algorithm)]
        threads[0].start()
        try:
            assert loading.wait(5)
            threads.append(threading.Thread(target=serve_coder))
            threads[1].start()
            served_during_load = served.wait(0.5)
        finally:
            release.set()
            for thread in threads:
                thread.join(10)
    assert served.is_set() and inner.loads() == ["coder", "algorithm"]
    assert served_during_load, "a request for a loaded model waited for another model's load"
