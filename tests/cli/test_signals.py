"""cli/signals.py and core/interrupts.py in this process: a signal that arrives inside a native callback is not
raised there (ctypes would print it as "Exception ignored" and drop it) but where the native call returns.

libc's qsort stands in for llama.cpp: native code that calls a Python function back. The subprocess tests of
what a user sees are in test_hardening.py."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Iterator

import pytest

from ggroute.cli import signals
from ggroute.core import interrupts
from ggroute.core.text import decode_input, repair_text

Compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))


@pytest.fixture
def sigusr1_as_interrupt() -> Iterator[None]:
    """SIGUSR1 handled by the handler main() installs for SIGINT and SIGTERM; process state restored after."""
    previous = signal.signal(signal.SIGUSR1, signals._interrupt)
    received = list(signals._received)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)
        signals._received[:] = received
        interrupts.stop_requested.clear()


def sort_calling_back(on_call: int, *, declared: bool) -> list[str]:
    """qsort 10 ints; the comparison sends SIGUSR1 to this process on its `on_call`-th call. What happened
    inside the callback, as a list of notes."""
    notes: list[str] = []
    calls = [0]

    def body(a: ctypes._Pointer[ctypes.c_int], b: ctypes._Pointer[ctypes.c_int]) -> int:
        calls[0] += 1
        try:
            if calls[0] == on_call:
                os.kill(os.getpid(), signal.SIGUSR1)
            return int(a[0] - b[0])
        except KeyboardInterrupt:
            notes.append("raised inside the callback")
            return 0

    # two entry points with code objects of their own: `native_callback` registers code, not function objects
    def declared_compare(a: ctypes._Pointer[ctypes.c_int], b: ctypes._Pointer[ctypes.c_int]) -> int:
        return body(a, b)

    def plain_compare(a: ctypes._Pointer[ctypes.c_int], b: ctypes._Pointer[ctypes.c_int]) -> int:
        return body(a, b)

    callback = Compare(interrupts.native_callback(declared_compare) if declared else plain_compare)
    values = (ctypes.c_int * 10)(*range(10, 0, -1))
    ctypes.CDLL(None).qsort(values, 10, ctypes.sizeof(ctypes.c_int), callback)
    return notes


def test_a_signal_inside_a_declared_native_callback_is_raised_after_it_returns(sigusr1_as_interrupt) -> None:
    notes = sort_calling_back(3, declared=True)
    assert notes == []  # nothing raised where ctypes would have swallowed it
    assert interrupts.stop_requested.is_set()
    assert signals.first_signal() is not None
    with pytest.raises(KeyboardInterrupt):
        interrupts.raise_if_stop_requested()


def test_a_signal_inside_an_undeclared_callback_is_raised_there(sigusr1_as_interrupt) -> None:
    # the failure the declaration exists for: the interrupt is raised inside the callback
    notes = sort_calling_back(3, declared=False)
    assert notes == ["raised inside the callback"]
    assert not interrupts.stop_requested.is_set()


def test_a_signal_outside_native_code_raises_keyboard_interrupt(sigusr1_as_interrupt) -> None:
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
    assert not interrupts.stop_requested.is_set()


def test_exit_code_is_128_plus_the_first_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signals, "_received", [])
    assert signals.exit_code(130) == 130
    monkeypatch.setattr(signals, "_received", [signal.SIGTERM, signal.SIGINT])
    assert signals.exit_code(130) == 143
    monkeypatch.setattr(signals, "_received", [signal.SIGINT, signal.SIGTERM])
    assert signals.exit_code(130) == 130


@pytest.mark.parametrize(("raw", "text", "replaced"), [
    (b"plain", "plain", 0),
    (b"caf\xe9", "caf\ufffd", 1),
    (b"\xff\xfe ok \xe2\x82", "\ufffd\ufffd ok \ufffd", 3),
    ("already \ufffd here".encode(), "already \ufffd here", 0),
])
def test_bytes_decode_with_replacement_and_count(raw: bytes, text: str, replaced: int) -> None:
    assert decode_input(raw) == (text, replaced)
    # the same bytes as a command-line argument (lone surrogates, os.fsdecode) repair to the same text
    assert repair_text(os.fsdecode(raw)) == (text, replaced)


def test_lone_surrogates_from_json_become_replacement_characters() -> None:
    text, replaced = repair_text("half an emoji \ud83d and \udcff")
    assert (text, replaced) == ("half an emoji \ufffd and \ufffd", 2)
    text.encode("utf-8")  # encodable now
