"""`ggroute serve`: the OpenAI-compatible server (the server package; docs/server.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from ggroute.cli.common import ConfigOption, err, fail, guarded
from ggroute.cli.pull_commands import PullOption, pull_if_asked, require_downloaded
from ggroute.core.errors import UsageError
from ggroute.models.config import load_config

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; the default answers this machine only.")] = (
        "127.0.0.1"),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8080,
    config: ConfigOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level: " + ", ".join(LOG_LEVELS))] = "info",
    pull: PullOption = False,
) -> None:
    """Serve the OpenAI API on local models: "model": "auto" routes each request. Ctrl+C stops it (exit 0)."""
    if log_level not in LOG_LEVELS:
        raise fail(UsageError(f"--log-level {log_level}: use one of {', '.join(LOG_LEVELS)}"))
    loaded = guarded(lambda: load_config(config))
    pull_if_asked(loaded, pull)
    require_downloaded(loaded, config)
    from ggroute.server.run import serve as run_server

    def ready(url: str) -> None:
        err.print(f"ggroute serve: listening on {url} (status page {url}/, API {url}/v1); Ctrl+C stops",
                  soft_wrap=True)

    guarded(lambda: run_server(loaded, host, port, ready=ready, log_level=log_level))
