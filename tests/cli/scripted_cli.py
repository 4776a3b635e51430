"""`python -m tests.cli.scripted_cli ARGS...`: the real `ggroute` console entry point (ggroute.cli.app.main, in
a process of its own) with its models played by the scripted fake backend (tests/fakes.py).

For subprocess tests of process-level behaviour (signals, exit codes, bytes on stdin and in argv) where the
engine itself does not matter. Environment:
    SCRIPTED_CLI_SCRIPT  JSON object of `Script` fields for the `coder` model (default: Script())
    SCRIPTED_CLI_EVENTS  a file to write the loader's ("load" | "close", model) events to, as JSON, at exit
    SCRIPTED_CLI_SIGTERM_AT_FOOTER  set: the process sends itself SIGTERM as the footer is made (the answer has
                         ended, its footer is not printed yet)
"""

from __future__ import annotations

import atexit
import json
import os
import signal
from pathlib import Path

from ggroute.cli import render
from ggroute.cli.app import main
from ggroute.models import backend
from ggroute.models.metrics import GenerationResult
from tests.fakes import Script, scripted_loader

SCRIPT_ENV = "SCRIPTED_CLI_SCRIPT"
EVENTS_ENV = "SCRIPTED_CLI_EVENTS"
SIGTERM_AT_FOOTER_ENV = "SCRIPTED_CLI_SIGTERM_AT_FOOTER"


def _install() -> None:
    loader = scripted_loader(coder=Script(**json.loads(os.environ.get(SCRIPT_ENV, "{}"))))
    backend.load_backend = loader  # what the pool loads models with (see the scripted_backends fixture)
    events = os.environ.get(EVENTS_ENV)
    if events:
        atexit.register(lambda: Path(events).write_text(json.dumps(loader.events), encoding="utf-8"))
    if os.environ.get(SIGTERM_AT_FOOTER_ENV):
        footer = render.footer

        def signalled_footer(result: GenerationResult) -> str:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered before the next bytecode: before the print
            return footer(result)

        render.footer = signalled_footer


if __name__ == "__main__":
    _install()
    main()
