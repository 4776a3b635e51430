"""Fuzz tests (hypothesis): one settings profile for all of them, and the count of inputs tried.

Each test calls `tried(name)` once per generated input; the terminal summary of every run that collected these
tests reports the counts, so `python -m pytest` output says how many inputs the fuzzers tried. The example counts
keep the fast suite fast; `FUZZ_SCALE=50 python -m pytest tests/fuzz` tries 50 times as many inputs.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings

TRIED: Counter[str] = Counter()



def fuzz_settings(max_examples: int) -> settings:
    """No deadline (the test machines are shared: a slow example is not a bug); the examples a test runs."""
    scale = float(os.environ.get("FUZZ_SCALE", "1"))
    return settings(max_examples=max(1, round(max_examples * scale)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def tried(name: str) -> None:
    TRIED[name] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TRIED:
        return
    parts = ", ".join(f"{name} {count}" for name, count in sorted(TRIED.items()))
    terminalreporter.write_sep("-", f"fuzz: {sum(TRIED.values())} inputs tried ({parts})")
