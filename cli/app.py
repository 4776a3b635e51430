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

app = typer.Typer(no_args_is_help=True, add_completion=False, help="CPU-first multi-model router on GGUF models.")
app.command()(config_commands.models)
app.command()(generate_commands.generate)
app.command()(bench_commands.bench)
app.command()(routing_commands.route)
app.command()(routing_commands.run)
app.command()(serve_commands.serve)
app.command()(pull_commands.pull)

config_app = typer.Typer(no_args_is_help=True, help="Inspect config.json.")
config_app.command("check")(config_commands.config_check)
config_app.command("docs")(config_commands.config_docs)
app.add_typer(config_app, name="config")

eval_app = typer.Typer(no_args_is_help=True, help="Measure routing and generation.")
eval_app.command("routing")(routing_commands.eval_routing)
eval_app.command("suite")(suite_commands.eval_suite)
eval_app.command("humaneval")(suite_commands.eval_humaneval)
app.add_typer(eval_app, name="eval")

router_app = typer.Typer(no_args_is_help=True, help="Train the router's route head.")
router_app.command("train")(router_commands.train)
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
