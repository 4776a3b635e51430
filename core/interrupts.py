"""Signals and native callbacks: what a face's signal handler must know, and what native code must check.

llama.cpp calls back into Python: the abort callback, polled hundreds of times per token while a prompt is
processed, and the log callback, during a model load. Python runs a signal handler at the next bytecode
boundary of the main thread, which during those calls is inside such a callback, and an exception raised there
(the KeyboardInterrupt of Ctrl+C) never reaches the caller: ctypes prints it as "Exception ignored" with a
traceback and drops it, so the interrupt is lost. Hence:

- Python functions that native code calls are declared with `@native_callback`; a handler that would raise asks
  `in_native_callback(frame)` first, and when it is inside one it sets `stop_requested` instead (cli/signals.py).
- Abortable native work (the llama.cpp abort callback) stops as soon as `stop_requested` is set, and the code that
  started native work calls `raise_if_stop_requested()` once it has returned (a decode, a model load): the
  KeyboardInterrupt is raised there, where the caller sees it.

Nothing here installs a handler or sends a signal: the faces own signals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_CALLBACK_CODE: set[CodeType] = set()

# Set when an interrupt could not be raised where it arrived; the process is on its way out.
stop_requested = threading.Event()


def native_callback(function: F) -> F:
    """Declare `function` as called from native code (apply it below the ctypes callback decorator)."""
    _CALLBACK_CODE.add(function.__code__)
    return function


def in_native_callback(frame: FrameType | None) -> bool:
    """Whether `frame` (a signal handler's interrupted frame) runs inside a native callback."""
    while frame is not None:
        if frame.f_code in _CALLBACK_CODE:
            return True
        frame = frame.f_back
    return False


def raise_if_stop_requested() -> None:
    """After native work that runs callbacks: raise the KeyboardInterrupt a handler could not raise inside them."""
    if stop_requested.is_set():
        raise KeyboardInterrupt
