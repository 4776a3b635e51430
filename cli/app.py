"""The `ggroute` command line: the typer app and its command tree. Errors become exit codes in the cli package
only (cli/exit_codes.py).

The commands live in the *_commands modules, which import cli/common.py and never this module; this module
imports them and registers their functions, so dependencies point one way. Heavy imports (numpy, llama_cpp, the
pipeline) stay inside the command functions: `ggroute --help` loads no model and no numpy.
"""

from __future__ import annotations

import sys

import typer

from ggroute.cli import (
    bench_commands,
    config_commands,
    generate_commands,
    pull_commands,
    router_commands,
    routing_commands,
    serve_commands,
    suite_commands,
)
from ggroute.cli.common import err, fail, harden_stdio
from ggroute.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME
from ggroute.core.errors import GgrouteError


def _without_type(option: typer.core.TyperOption | None) -> typer.core.TyperOption | None:
    """typer 0.29 shows `<bool>` beside --help as beside any flag (cli/common.py's flag_option mends the others)."""
    if option is not None:
        option.metavar = ""
    return option


class _HelpFlagCommand(typer.core.TyperCommand):
    def get_help_option(self, ctx: typer.Context) -> typer.core.TyperOption | None:  # type: ignore[override]
        return _without_type(super().get_help_option(ctx))


class _HelpFlagGroup(typer.core.TyperGroup):
    def get_help_option(self, ctx: typer.Context) -> typer.core.TyperOption | None:  # type: ignore[override]
        return _without_type(super().get_help_option(ctx))


app = typer.Typer(no_args_is_help=True, add_completion=False, help="CPU-first multi-model router on GGUF models.",
                  cls=_HelpFlagGroup)
app.command(cls=_HelpFlagCommand)(config_commands.models)
app.command(cls=_HelpFlagCommand)(generate_commands.generate)
app.command(cls=_HelpFlagCommand)(bench_commands.bench)
app.command(cls=_HelpFlagCommand)(routing_commands.route)
app.command(cls=_HelpFlagCommand)(routing_commands.run)
app.command(cls=_HelpFlagCommand)(serve_commands.serve)
app.command(cls=_HelpFlagCommand)(pull_commands.pull)

config_app = typer.Typer(no_args_is_help=True, help="Inspect config.json.", cls=_HelpFlagGroup)
config_app.command("check", cls=_HelpFlagCommand)(config_commands.config_check)
config_app.command("docs", cls=_HelpFlagCommand)(config_commands.config_docs)
app.add_typer(config_app, name="config")

eval_app = typer.Typer(no_args_is_help=True, help="Measure routing and generation.", cls=_HelpFlagGroup)
eval_app.command("routing", cls=_HelpFlagCommand)(routing_commands.eval_routing)
eval_app.command("suite", cls=_HelpFlagCommand)(suite_commands.eval_suite)
eval_app.command("humaneval", cls=_HelpFlagCommand)(suite_commands.eval_humaneval)
app.add_typer(eval_app, name="eval")

router_app = typer.Typer(no_args_is_help=True, help="Train the router's route head.", cls=_HelpFlagGroup)
router_app.command("train", cls=_HelpFlagCommand)(router_commands.train)
app.add_typer(router_app, name="router")


def main() -> None:
    """The console script: no traceback for what a user can cause (bad bytes in or out, a signal, an error)."""
    import logging

    from ggroute.cli import signals

    harden_stdio()
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    signals.install()
    try:
        app()
        code: int = EXIT_OK
    except SystemExit as exc:  # typer's standalone mode ends every command with sys.exit
        code = _exit_status(exc.code)
    except KeyboardInterrupt:  # a signal outside the command's own handling
        err.print("[yellow]interrupted[/]")
        code = EXIT_INTERRUPTED
    except GgrouteError as exc:  # an error a command did not translate itself: still one line, its exit code
        code = fail(exc).exit_code
    sys.exit(signals.finish(code, EXIT_INTERRUPTED))


def _exit_status(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints the message and exits 1
    return EXIT_RUNTIME
