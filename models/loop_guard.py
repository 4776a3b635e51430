"""Recognise a degenerate loop in generated text while it streams, so generation stops instead of burning tokens.

Small models fall into loops: the same line (`import random`) or the same few lines over and over until
max_tokens. The guard looks at complete lines only, so its cost is one comparison of a few short strings per
line, not per token: a cycle of 1 to `max_cycle_lines` lines repeated `min_repeats` times in a row at the end
of the text is a loop, provided the cycle holds a line with some substance (closing braces and blank lines
repeat in ordinary code). A single line that grows past `_RUNAWAY_LINE_CHARS` without a newline and whose end
is periodic (`abcabcabc...`) is a loop too.

Small models also count their way through a loop (`fib4(22) -> ...`, `fib4(23) -> ...`; `if i == 54:` /
`continue`, `if i == 56:` / `continue`): lines equal once their digits are masked are a loop too, at three times
the repeats, because short tables of similar numbered lines (test cases, data) are also written on purpose. At
that count a cycle needs no substance: a dozen lines of nothing but indentation is a loop as well (empty lines
never are).

When it fires, the text is cut after the first occurrence of the cycle: what the model said once is kept,
its repeats are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SUBSTANTIAL_CHARS = 4  # a cycle needs a line with at least this many non-blank characters
_RUNAWAY_LINE_CHARS = 512
_RUNAWAY_TAIL_CHARS = 256
_RUNAWAY_MAX_PERIOD = 64
_DIGITS = re.compile(r"\d+")


def _mask_digits(text: str) -> str:
    return _DIGITS.sub("0", text)


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
        self._masked: list[str] = []  # the same with digits masked
        self._line_starts: list[int] = []  # offset in the text where each line starts
        self._partial_start = 0  # offset where the line being written starts
        self._checked_runaway_at = 0

    def feed(self, text: str, new_from: int) -> Loop | None:
        """`text` is everything generated so far, `text[new_from:]` the part added since the last call."""
        start = new_from
        while (newline := text.find("\n", start)) >= 0:
            self._lines.append(text[self._partial_start:newline])
            self._masked.append(_mask_digits(self._lines[-1]))
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
        return (self._cycle_in(self._lines, self.min_repeats, text, substantial=True)
                or self._cycle_in(self._masked, 3 * self.min_repeats, text, substantial=False))

    def _cycle_in(self, lines: list[str], repeats: int, text: str, *, substantial: bool) -> Loop | None:
        for size in range(1, self.max_cycle_lines + 1):
            span = size * repeats
            if span > len(lines):
                break
            cycle = lines[-size:]
            if substantial and not any(len(line.strip()) >= _SUBSTANTIAL_CHARS for line in cycle):
                continue
            if not any(cycle):  # empty lines, however many, are layout
                continue
            if all(lines[-size * (r + 1): len(lines) - size * r] == cycle for r in range(1, repeats)):
                first = len(lines) - span  # index of the first line of the first occurrence
                keep = self._line_starts[first + size]  # through the newline that ends the first occurrence
                return Loop(keep, text[self._line_starts[first]:keep], repeats)
        return None

    def _runaway_line(self, text: str) -> Loop | None:
        masked = _mask_digits(text[self._partial_start:])
        if len(masked) < _RUNAWAY_TAIL_CHARS:
            return None
        tail = masked[-_RUNAWAY_TAIL_CHARS:]
        for period in range(1, _RUNAWAY_MAX_PERIOD + 1):
            unit = tail[-period:]
            if len(unit.strip()) and tail == (unit * (len(tail) // period + 1))[-len(tail):]:
                # Masking shortens numbers, so the cut is placed in the line by how much of it is periodic.
                periodic = len(masked) - len(tail) + period
                keep = self._partial_start + self._original_offset(text[self._partial_start:], periodic)
                return Loop(keep, unit, len(tail) // period)
        return None

    @staticmethod
    def _original_offset(line: str, masked_offset: int) -> int:
        """The offset in `line` that corresponds to `masked_offset` in its digit-masked form."""
        original = masked = 0
        for match in _DIGITS.finditer(line):
            gap = match.start() - original
            if masked + gap >= masked_offset:
                break
            masked += gap + 1
            original = match.end()
        return original + max(0, masked_offset - masked)
