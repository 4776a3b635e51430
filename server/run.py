"""Run the server with uvicorn until Ctrl+C or SIGTERM, then shut down cleanly and return (exit 0).

On the first signal: stop accepting connections, answer queued requests with 503, stop running generations at
their next token (finish_reason "cancelled": streams still get their last chunk and `data: [DONE]`), wait for
the worker threads, close the models. A second Ctrl+C stops waiting for open connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Generator
from types import FrameType

import sse_starlette.sse  # noqa: F401  (patches uvicorn's Server.handle_exit: streams see the shutdown)
import uvicorn

from ggroute.core.errors import UsageError
from ggroute.models.config import LoadedConfig
from ggroute.server.app import create_app
from ggroute.server.service import SHUTDOWN_GRACE_S, Service

log = logging.getLogger("ggroute.server")


class _Server(uvicorn.Server):
    """uvicorn's server with two changes: a signal also cancels the service's generations, and the signal is not
    raised again once the server has stopped (uvicorn does that; ggroute exits 0 after a clean shutdown)."""

    def __init__(self, config: uvicorn.Config, service: Service, on_listening: Callable[[], None]) -> None:
        super().__init__(config)
        self.service = service
        self.on_listening = on_listening
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started:  # the socket accepts connections only now: bind_socket() does not listen()
            self.on_listening()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self.loop is not None and not self.service.closing:
            self.loop.call_soon_threadsafe(self.service.begin_shutdown)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _bind_failure(host: str, port: int) -> str:
    """Why binding host:port fails, found by trying once more: uvicorn keeps the OSError to its log line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"the host does not resolve ({exc})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return "the server could not bind it (its log line above says why)"


@contextlib.contextmanager
def _quiet(logger_name: str) -> Generator[None, None, None]:
    logger = logging.getLogger(logger_name)
    was = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was


def serve(loaded: LoadedConfig, host: str, port: int, *, ready: Callable[[str], None] | None = None,
          log_level: str = "info") -> None:
    """Serve until a signal; `ready(url)` is called once the socket listens (port 0: a free port is chosen)."""
    service = Service(loaded)  # an unusable log_file fails here, before the socket opens
    try:
        config = uvicorn.Config(create_app(service), host=host, port=port, log_level=log_level,
                                timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S) + 2, lifespan="off")
        try:
            with _quiet("uvicorn.error"):  # its "ERROR: [Errno 98] ..." line: ggroute's own error says it all
                sock = config.bind_socket()
        except (OSError, SystemExit) as exc:  # uvicorn logs the OSError, then exits with its startup-failure code
            reason = exc if isinstance(exc, OSError) else _bind_failure(host, port)
            raise UsageError(f"cannot listen on {host}:{port}: {reason}; pick another --host or --port") from None
        bound = sock.getsockname()
        url = f"http://{'[' + host + ']' if ':' in host else host}:{bound[1]}"
        _Server(config, service, lambda: ready(url) if ready is not None else None).run(sockets=[sock])
    finally:
        service.close()
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if left:  # a bug: report it rather than hang or exit silently
        print(f"warning: threads still running after shutdown: {', '.join(left)}", file=sys.stderr)
