"""Ctrl+C (SIGINT) and SIGTERM take one path, for every command.

`main()` (cli/app.py) calls `install()` before a command runs, and `finish()` after it ends:

- Outside a generation the signal raises KeyboardInterrupt, as Ctrl+C does by default; typer turns that into
  exit 130, and `finish()` into 128 + the number of the first signal received: 130 for Ctrl+C, 143 for SIGTERM.
- Inside `cancel_on_signal()` (generate, run, eval suite, eval humaneval) the first signal sets an Event that the
  generation loop and llama.cpp's abort callback watch: generation stops within a second with finish_reason
  "cancelled", the text so far stays printed, the footer is printed and the request log line written. A child
  process still running a second after the signal (a sandboxed check) is sent SIGTERM, so the command does not
  wait for it. A second signal raises KeyboardInterrupt: stop waiting.
- A signal that arrives inside a native callback (llama.cpp calls Python back while it decodes or loads) is not
  raised there, where ctypes would print and drop it: see core/interrupts.py.
- After a signal, `finish()` terminates what is left of this process's children and their children (bench's
  measuring processes, sandboxed code) and reaps them: nothing outlives the command, no zombie is left. For
  that the process is a child subreaper (Linux): a descendant whose parent died is re-parented to it, not init.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

from ggroute.core.interrupts import in_native_callback, stop_requested

HANDLED = (signal.SIGINT, signal.SIGTERM)
_PR_SET_CHILD_SUBREAPER = 36  # prctl option, linux/prctl.h
CHILD_GRACE_S = 1.0  # after a signal: how long children may run on before SIGTERM, and then before SIGKILL

_received: list[int] = []  # the signals received, first first


def first_signal() -> int | None:
    """The first of HANDLED received by this process, None when none was."""
    return _received[0] if _received else None


def exit_code(default: int) -> int:
    """128 + the first signal's number (130 SIGINT, 143 SIGTERM), `default` when no signal was received."""
    first = first_signal()
    return 128 + first if first is not None else default


def install() -> None:
    """Outside generation both signals raise KeyboardInterrupt (Ctrl+C's default), remembering which came; and
    this process adopts its orphaned descendants, to end them after a signal."""
    for signum in HANDLED:
        signal.signal(signum, _interrupt)
    _become_subreaper()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    _raise_interrupt(frame)


def _raise_interrupt(frame: FrameType | None) -> None:
    """KeyboardInterrupt, unless the signal came inside a native callback, where raising would lose it: then
    abortable native work stops and the code that started it raises it (core/interrupts.py)."""
    if in_native_callback(frame):
        stop_requested.set()
        return
    raise KeyboardInterrupt


@contextmanager
def cancel_on_signal() -> Iterator[threading.Event]:
    """While generating: the first SIGINT or SIGTERM sets the yielded Event, a second raises KeyboardInterrupt."""
    cancel = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        _received.append(signum)
        if cancel.is_set():  # a second signal: stop waiting
            _raise_interrupt(frame)
            return
        cancel.set()
        timer = threading.Timer(CHILD_GRACE_S, signal_children, (signal.SIGTERM,))
        timer.daemon = True
        timer.start()

    previous = {signum: signal.signal(signum, _on_signal) for signum in HANDLED}
    try:
        yield cancel
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _descendants() -> tuple[Any, list[Any]]:
    """(the psutil module, this process's descendants alive now); imported here: --help does not pay for it."""
    import psutil  # type: ignore[import-untyped]  # no stubs in the dev dependencies (types-psutil)

    try:
        return psutil, psutil.Process().children(recursive=True)
    except psutil.Error:
        return psutil, []


def signal_children(signum: int) -> int:
    """Send `signum` to every descendant of this process (no waiting: their owners reap them); how many."""
    psutil, children = _descendants()
    for child in children:
        with suppress(psutil.Error):  # ended meanwhile
            child.send_signal(signum)
    return len(children)


def end_children(grace_s: float = CHILD_GRACE_S) -> None:
    """Terminate this process's descendants, kill those still alive after `grace_s`, and reap them all."""
    psutil, alive = _descendants()
    for child in alive:
        with suppress(psutil.Error):
            child.terminate()
    for signum in (None, signal.SIGKILL):
        if signum is not None:
            for child in alive:
                with suppress(psutil.Error):
                    child.send_signal(signum)
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            _reap_exited()
            alive = _descendants()[1]
            time.sleep(0.01)
        if not alive:
            return


def _reap_exited() -> None:
    """Collect every child that has ended (ours, and orphans re-parented to this subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _become_subreaper() -> None:
    """Orphaned descendants (bwrap's namespace init once bwrap is gone, a double fork) are re-parented to this
    process instead of init, so `end_children` reaps them: nothing is left behind, not even a zombie. Linux."""
    if not sys.platform.startswith("linux"):
        return
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def finish(code: int, interrupted: int) -> int:
    """The exit code once a command has ended with `code`: after a signal, children are ended and an
    `interrupted` code becomes 128 + the first signal's number."""
    if first_signal() is None:
        return code
    # no handler from here on: a further signal kills at once, as the user (or the supervisor) asks
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_DFL)
    end_children()
    return exit_code(code) if code == interrupted else code
