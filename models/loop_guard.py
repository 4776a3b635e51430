"""Recognise a degenerate loop in generated text while it streams, so generation stops instead of burning tokens.

Small models fall into loops: the same line (`import random`) or the same few lines over and over until
max_tokens. The guard looks at complete lines only, so its cost is one comparison of a few short strings per
line, not per token: a cycle of 1 to `max_cycle_lines` lines repeated `min_repeats` times in a row at the end
of the text is a loop, provided the cycle holds a line with some substance (closing braces and blank lines
repeat in ordinary code). A single line that grows past `_RUNAWAY_LINE_CHARS` without a newline and whose end
is periodic (`abcabcabc...`) is a loop too.

When it fires, the text is cut after the first occurrence of the cycle: what the model said once is kept,
its repeats are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

_SUBSTANTIAL_CHARS = 4  # a cycle needs a line with at least this many non-blank characters
_RUNAWAY_LINE_CHARS = 512
_RUNAWAY_TAIL_CHARS = 256
_RUNAWAY_MAX_PERIOD = 64


@dataclass(frozen=True)
class Loop:
    keep_chars: int  # the text to keep: up to the end of the cycle's first occurrence
    cycle: str  # one occurrence of the repeated text
    repeats: int  # how many times it had been written when recognised


class LoopGuard:
    def __init__(self, min_repeats: int, max_cycle_lines: int) -> None:
        self.min_repeats = min_repeats
        self.max_cycle_lines = max_cycle_lines
        self._lines: list[str] = []  # complete lines so far
        self._line_starts: list[int] = []  # offset in the text where each line starts
        self._partial_start = 0  # offset where the line being written starts
        self._checked_runaway_at = 0

    def feed(self, text: str, new_from: int) -> Loop | None:
        """`text` is everything generated so far, `text[new_from:]` the part added since the last call."""
        start = new_from
        while (newline := text.find("\n", start)) >= 0:
            self._lines.append(text[self._partial_start:newline])
            self._line_starts.append(self._partial_start)
            self._partial_start = start = newline + 1
            loop = self._line_cycle(text)
            if loop is not None:
                return loop
        if len(text) - self._partial_start >= _RUNAWAY_LINE_CHARS and len(text) - self._checked_runaway_at >= 64:
            self._checked_runaway_at = len(text)
            return self._runaway_line(text)
        return None

    def _line_cycle(self, text: str) -> Loop | None:
        lines = self._lines
        for size in range(1, self.max_cycle_lines + 1):
            span = size * self.min_repeats
            if span > len(lines):
                break
            cycle = lines[-size:]
            if not any(len(line.strip()) >= _SUBSTANTIAL_CHARS for line in cycle):
                continue
            if all(lines[-size * (r + 1): len(lines) - size * r] == cycle for r in range(1, self.min_repeats)):
                first = len(lines) - span  # index of the first line of the first occurrence
                keep = self._line_starts[first + size]  # through the newline that ends the first occurrence
                return Loop(keep, text[self._line_starts[first]:keep], self.min_repeats)
        return None

    def _runaway_line(self, text: str) -> Loop | None:
        tail = text[-_RUNAWAY_TAIL_CHARS:]
        for period in range(1, _RUNAWAY_MAX_PERIOD + 1):
            unit = tail[-period:]
            if len(unit.strip()) and tail == (unit * (len(tail) // period + 1))[-len(tail):]:
                keep = len(text) - len(tail) + period
                return Loop(keep, unit, len(tail) // period)
        return None
