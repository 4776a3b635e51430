"""`ggroute generate`: one task on one named model, no routing."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated

import typer

from ggroute.cli.common import (
    CodeOption,
    ConfigOption,
    JsonOption,
    MaxTokensOption,
    NoLoopGuardOption,
    SeedOption,
    TemperatureOption,
    TimeoutOption,
    VerboseOption,
    consume,
    ctrl_c_cancels,
    exit_for,
    generation_payload,
    guarded,
    read_task,
    report_result,
)
from ggroute.cli.pull_commands import PullOption, pull_if_asked
from ggroute.models.config import load_config
from ggroute.models.generate import RequestOptions
from ggroute.models.metrics import GenerationResult

if TYPE_CHECKING:
    from ggroute.router.pipeline import Pipeline


def generate(
    task: Annotated[str, typer.Argument(help="The task text, or '-' to read it from stdin.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name from config.json (no routing).")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
    max_tokens: MaxTokensOption = None,
    timeout: TimeoutOption = None,
    temperature: TemperatureOption = None,
    seed: SeedOption = None,
    code: CodeOption = False,
    no_loop_guard: NoLoopGuardOption = False,
    verbose: VerboseOption = False,
    pull: PullOption = False,
) -> None:
    """Run TASK on one model, streaming the output (with --code: printing only its code at the end)."""
    text = read_task(task)
    loaded = guarded(lambda: load_config(config))
    pull_if_asked(loaded, pull)
    from ggroute.router.pipeline import Pipeline

    options = RequestOptions(max_tokens=max_tokens, timeout_s=timeout, temperature=temperature, seed=seed,
                             stop_after_code=code, loop_guard=not no_loop_guard)
    # Until the footer is out, a signal only cancels: one that comes as the answer ends still gets its footer.
    with ctrl_c_cancels() as cancel:
        with guarded(lambda: Pipeline(loaded)) as pipeline:
            result, prompt_text = guarded(
                lambda: _stream(pipeline, model, text, options, cancel, stream=not (as_json or code)))
        payload = generation_payload(result, code_of_prompt=prompt_text if code else None)
        report_result(payload, prompt_text, result, as_json=as_json, code=code, verbose=verbose)
    exit_for(result)


def _stream(pipeline: Pipeline, model: str, text: str, options: RequestOptions, cancel: threading.Event, *,
            stream: bool) -> tuple[GenerationResult, str]:
    with pipeline.generate(model, text, options, cancel=cancel) as generation:
        consume(generation, stream=stream)
    assert generation.result is not None
    return generation.result, generation.prompt.text
