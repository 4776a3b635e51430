"""What every command module shares: option types, the two consoles, error and exit handling, JSON output.

Imports nothing of ggroute.cli but exit_codes, payloads and signals, so every command module can import it (no
cycle).
"""

from __future__ import annotations

import io
import json
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape

from ggroute.cli import signals
from ggroute.cli.exit_codes import EXIT_INTERRUPTED, EXIT_TIMEOUT, exit_code_for
from ggroute.cli.payloads import GenerationPayload
from ggroute.core.code import code_of_answer
from ggroute.core.errors import GgrouteError, UsageError
from ggroute.core.text import decode_input, repair_text
from ggroute.models.metrics import GenerationResult

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

def flag_option(*names: str, help: str) -> typer.models.OptionInfo:
    """A boolean option that takes no value. metavar="": typer 0.29 shows `<bool>` beside every flag, which reads as
    if `--json true` were the way to write it."""
    option: typer.models.OptionInfo = typer.Option(*names, help=help, metavar="")
    return option


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="config.json to use (else $GGROUTE_CONFIG, ./config.json, the default)."),
]
JsonOption = Annotated[bool, flag_option("--json", help="Print one JSON object instead of text.")]
MaxTokensOption = Annotated[int | None, typer.Option(min=1, help="Override the model's max_tokens.")]
TimeoutOption = Annotated[float | None, typer.Option(min=0.01, help="Override the model's timeout_s.")]
TemperatureOption = Annotated[
    float | None, typer.Option(min=0.0, max=2.0, help="Override the model's temperature (0 is greedy).")
]
SeedOption = Annotated[int | None, typer.Option(min=0, help="Override the model's sampling seed.")]
CodeOption = Annotated[bool, flag_option(
    "--code", help="Print only the code of the answer (its first fenced block); generation stops once a Python "
                   "block has closed, or once a function whose signature the task gives is written. With --json "
                   "add code fields.")]
NoLoopGuardOption = Annotated[bool, flag_option(
    "--no-loop-guard", help="Do not stop repetition for this request (when the guard cut an answer that was not "
                            "a loop, e.g. a long table of numbered lines).")]
VerboseOption = Annotated[bool, flag_option("--verbose", "-v", help="Show prompt, limits, timings.")]
T = TypeVar("T")


def fail(exc: GgrouteError) -> typer.Exit:
    """Print the error and return the typer.Exit carrying its code (exit_codes.py); the caller raises it."""
    err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(exit_code_for(exc))


def check_output_file(flag: str, path: Path | None) -> None:
    """Refuse an output file that cannot be written before the work that fills it (exit 2)."""
    if path is None:
        return
    if path.is_dir():
        raise fail(UsageError(f"{flag} {path}: is a directory; give a file name"))
    if not path.parent.is_dir():
        raise fail(UsageError(f"{flag} {path}: folder {path.parent} does not exist"))


def guarded(action: Callable[[], T]) -> T:
    try:
        return action()
    except GgrouteError as exc:
        raise fail(exc) from None


def harden_stdio() -> None:
    """Text that cannot be encoded for the terminal (a lone surrogate from a file name or a JSON escape, a
    character outside a non-UTF-8 locale) is written as a backslash escape instead of raising."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def read_task(task: str) -> str:
    """The task argument, or stdin for '-'; bytes that are not UTF-8 become U+FFFD, with a warning."""
    if task == "-":
        raw = _read_stdin()
        text, replaced = decode_input(raw)
        source = "stdin"
    else:
        text, replaced = repair_text(task)
        source = "the task argument"
    if replaced:
        err.print(f"[yellow]warning:[/] {source} is not valid UTF-8: {replaced} invalid byte sequence(s) "
                  "replaced with U+FFFD", soft_wrap=True)
    if not text.strip():
        if source == "stdin":
            raise fail(UsageError("the task is empty: stdin gave no text (pipe the task in, or give it as the "
                                  "argument instead of '-')"))
        raise fail(UsageError("the task is empty: give the text of the task (or '-' to read it from stdin)"))
    return text


def _read_stdin() -> bytes:
    stdin = sys.stdin
    if stdin is None:  # started with stdin closed: nothing to read
        return b""
    buffer = getattr(stdin, "buffer", None)
    return buffer.read() if buffer is not None else stdin.read().encode("utf-8", "surrogateescape")


def emit_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


# While generating, Ctrl+C or SIGTERM sets an event the generation loop and llama.cpp's abort callback watch
# (cli/signals.py: one path for both signals; a second one stops waiting).
ctrl_c_cancels = signals.cancel_on_signal


def exit_for(result: GenerationResult) -> None:
    """Exit 130 for a cancelled generation (143 after SIGTERM, in main), 3 for a timed-out one; return for a
    finished one."""
    if result.finish_reason == "cancelled":
        what = "terminated (SIGTERM)" if signals.first_signal() == signal.SIGTERM else "interrupted"
        err.print(f"[yellow]{what}[/]: partial output kept above")
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.finish_reason == "timeout":
        err.print(f"[yellow]timed out[/] after {result.limits.timeout_s} s: partial output kept")
        raise typer.Exit(EXIT_TIMEOUT)


def consume(generation: Iterable[str], *, stream: bool) -> None:
    """Run a generation to its end, writing its text to stdout as it comes when `stream`."""
    for piece in generation:
        if stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
    if stream:
        sys.stdout.write("\n")


def add_code(payload: GenerationPayload, prompt_text: str, result: GenerationResult) -> None:
    """`--code --json`: the answer's code, its language and whether it parses (Python)."""
    answer = code_of_answer(prompt_text, result.text)
    payload["code"] = answer.code
    payload["code_language"] = answer.language
    payload["code_parses"] = answer.parses


def print_code(prompt_text: str, result: GenerationResult) -> None:
    """`--code`: the answer's code alone on stdout, a warning on stderr when Python code does not parse."""
    answer = code_of_answer(prompt_text, result.text)
    sys.stdout.write(answer.code + "\n")
    if not answer.code.strip():  # an empty file downstream, and exit 0: say why
        err.print(f"[yellow]warning:[/] the answer has no code (finish={result.finish_reason}); run without --code "
                  "to see what it said", soft_wrap=True)
    elif answer.parses is False:
        err.print("[yellow]warning:[/] the code does not parse as Python (ast.parse failed)")


def report_result(payload: GenerationPayload, prompt_text: str, result: GenerationResult, *, as_json: bool,
                  code: bool, verbose: bool) -> None:
    """The end of `generate` and `run`: the --json object, or --code's code, then the footer on stderr."""
    from ggroute.cli import render  # the GGUF and memory modules: not needed for `ggroute --help`

    if as_json:  # with --code, the payload has its code fields already (generation_payload)
        emit_json(payload)
        return
    if code:
        print_code(prompt_text, result)
    err.print(f"[dim]{escape(render.footer(result))}[/]")
    if verbose:
        render.verbose_report(err, result)


def generation_payload(result: GenerationResult, *, code_of_prompt: str | None = None) -> GenerationPayload:
    """`generate --json` (and the first fields of `run --json`): the result without the prompt preview; with
    `code_of_prompt` (--code: the prompt the answer continues) its code fields too, before any of run's."""
    payload = cast(GenerationPayload, result.model_dump(exclude={"prompt_preview"}))
    if code_of_prompt is not None:
        add_code(payload, code_of_prompt, result)
    return payload
