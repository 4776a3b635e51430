"""Recognise a degenerate loop in generated text while it streams, so generation stops instead of burning tokens.

Small models fall into loops: the same line (`import random`) or the same few lines over and over until
max_tokens. The guard looks at complete lines only, so its cost is one comparison of a few short strings per
line, not per token: a cycle of 1 to `max_cycle_lines` lines repeated `min_repeats` times in a row at the end
of the text is a loop, provided the cycle holds a line with some substance (closing braces and blank lines
repeat in ordinary code). A single line without a newline whose last `_RAW_RUNAWAY_TAIL_CHARS` characters are
one unit of up to 16 characters over and over (`abcabcabc...`, `.000000.000000...`) is a loop too, and so is
one that grows past `_RUNAWAY_LINE_CHARS` and is periodic once its numbers are masked (`1, 2, 3, 4, ...`).

A long cycle (at least `_LONG_CYCLE_CHARS` characters: a docstring and a `def` written again and again, a
pair of long comment lines) is a loop at its third copy: nobody writes a block that long three times in a row
on purpose, and at four copies a 512-token answer is often over before the guard would fire.

Small models also count their way through a loop (`fib4(22) -> ...`, `fib4(23) -> ...`; `if i == 54:` /
`continue`; `# then remove the thirty-five element`; `if text == 'r':` / `return True`; `return [1, 2, 3]`,
`return [1, 2, 3, 4]`): lines equal once what counts is masked (numbers in digits or in words, ordinals, a
single character in quotes, a code span of 1-3 characters in backticks, a list of numbers of any length) are
a loop too. A counting cycle needs more
copies: 16 lines in all for a cycle of 1 to 3 lines (four times the repeats for a single line), `min_repeats`
copies for longer ones, because short tables of similar numbered lines (test cases, data) are also written on
purpose (16 rather than 12: a fifth fewer files of installed code cut, benchmarks/
loop_guard_false_positives.py). A single counting line whose list grows from copy to copy (`sort([2, 4, 3])`,
`sort([2, 4, 3, 5])`, ...) is a loop at 8 lines: each copy costs more tokens than the last, so at 16 a 512-token
answer would be over before the guard fired. The exception is one long sentence of prose written a third time
with one number or short code span (`-t`) changed: a model explaining made-up flags one after another. A
counting cycle needs no substance: sixteen lines of nothing but indentation are a loop as well (empty lines
never are).

A long sentence (a comment or prose line of at least `_RECURRING_LINE_ALNUM` letters and digits) written a third
time among the last `max_cycle_lines` lines is a loop even when it is no cycle: small models rotate a few such
lines in no fixed order (`# If the sum ... is greater ...`, `... less ...`, `... equal ...`). Long code or
command lines are not held to this (they repeat on purpose in examples).

When it fires, the text is cut after the first occurrence of the cycle: what the model said once is kept,
its repeats are dropped (for a rotating sentence: cut before its third copy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_SUBSTANTIAL_CHARS = 4  # a cycle needs a line with at least this many non-blank characters
_LONG_CYCLE_CHARS = 100  # a cycle with at least this many non-blank characters is a loop at its third copy
_LONG_CYCLE_REPEATS = 3
# A sentence with at least this many letters and digits, written a third time among the last max_cycle_lines lines
# in any order, is a loop (_recurring_long_line); long code and command lines that repeat on purpose are not prose.
_RECURRING_LINE_ALNUM = 80
_COUNTING_LINES = 16  # a counting cycle of 1-3 lines is a loop once it fills this many lines
# A counting line that gets longer each time (`f([1, 2])`, `f([1, 2, 3])`, ...) costs more tokens with every copy:
# it is a loop at 8 lines, when their count of numbers never falls and has grown by at least 4.
_GROWING_LINES = 8
_GROWING_NUMBERS = 4
_PROSE_LETTERS = 0.8  # share of letters and spaces that makes a line prose rather than code or data
_SENTENCE_WORDS = 10  # spaces: a sentence of eleven words or more
_RUNAWAY_LINE_CHARS = 512
_RUNAWAY_TAIL_CHARS = 256
_RUNAWAY_MAX_PERIOD = 64
# A line whose own characters repeat (`.000000.000000...`) is a loop sooner: small models spend a token per digit,
# and digit masking shrinks such a line below the masked tail the counting check needs.
_RAW_RUNAWAY_LINE_CHARS = 192
_RAW_RUNAWAY_TAIL_CHARS = 160
_RAW_RUNAWAY_MAX_PERIOD = 16  # ten copies or more in the tail: an IPv4 regex writes its 46-character octet four times
_DIGITS = re.compile(r"\d+")
_NUMBER_WORD = (r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                r"sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|"
                r"thousand|million|billion|first|second|third|fifth|eighth|ninth|twelfth|"
                r"(?:four|six|seven|eleven|thir|fif|eigh|nine)teenth|(?:four|six|seven|ten|eleven|hundred|thousand)th|"
                r"(?:twent|thirt|fort|fift|sixt|sevent|eight|ninet)ieth)")
_COUNTING = re.compile(
    rf"\d+(?:\.\d+)?|\b{_NUMBER_WORD}(?:[- ](?:and[- ])?{_NUMBER_WORD})*\b|(['\"])[^'\"\\]\1|(`)[^`\s]{{1,3}}`",
    re.IGNORECASE)
_NUMBER_LIST = re.compile(r"0(?:\s*,\s*0)+")


def _mask_digits(text: str) -> str:
    return _DIGITS.sub("0", text)


def _mask_counting(line: str) -> str:
    """The line with what a counting loop changes from copy to copy masked: `# the thirty-five element` and
    `# the 36th element`, `return [1, 2]` and `return [1, 2, 3]`, `'a'` and `'b'` all compare equal."""
    return _NUMBER_LIST.sub("0", _COUNTING.sub(lambda m: "'?'" if m.group(1) or m.group(2) else "0", line))


def _is_sentence(lines: list[str]) -> bool:
    """One line of prose (blank lines around it aside): mostly letters and spaces, eleven words or more."""
    written = [line.strip() for line in lines if line.strip()]
    if len(written) != 1:
        return False
    text = written[0]
    letters = sum(c.isalpha() or c == " " for c in text)
    return text.count(" ") >= _SENTENCE_WORDS and letters >= _PROSE_LETTERS * len(text)


# "exact": equal lines; "counting": lines equal once numbers are masked; "runaway": one line repeating itself.
LoopKind = Literal["exact", "counting", "runaway"]


@dataclass(frozen=True)
class Loop:
    keep_chars: int  # the text to keep: up to the end of the cycle's first occurrence
    cycle: str  # one occurrence of the repeated text
    repeats: int  # how many times it had been written when recognised
    kind: LoopKind = "exact"


class LoopGuard:
    def __init__(self, min_repeats: int, max_cycle_lines: int) -> None:
        self.min_repeats = min_repeats
        self.max_cycle_lines = max_cycle_lines
        self._lines: list[str] = []  # complete lines so far
        self._masked: list[str] = []  # the same with what counts masked (_mask_counting)
        self._line_starts: list[int] = []  # offset in the text where each line starts
        self._partial_start = 0  # offset where the line being written starts
        self._checked_runaway_at = 0

    def feed(self, text: str, new_from: int) -> Loop | None:
        """`text` is everything generated so far, `text[new_from:]` the part added since the last call."""
        start = new_from
        while (newline := text.find("\n", start)) >= 0:
            self._lines.append(text[self._partial_start:newline])
            self._masked.append(_mask_counting(self._lines[-1]))
            self._line_starts.append(self._partial_start)
            self._partial_start = start = newline + 1
            loop = self._line_cycle(text)
            if loop is not None:
                return loop
        if len(text) - self._partial_start >= _RAW_RUNAWAY_LINE_CHARS and len(text) - self._checked_runaway_at >= 32:
            self._checked_runaway_at = len(text)
            return self._runaway_line(text)
        return None

    def _line_cycle(self, text: str) -> Loop | None:
        return (self._cycle_in(self._lines, text, counting=False) or self._cycle_in(self._masked, text, counting=True)
                or self._recurring_long_line(text))

    def _recurring_long_line(self, text: str) -> Loop | None:
        """A long sentence (a comment or prose line) written a third time among the last `max_cycle_lines`
        lines, in any order with others (three comment lines that take turns: `# If the sum ... is greater
        ...`, `... less ...`, `... equal ...`): a loop that is no cycle. Cut before the third copy."""
        line = self._lines[-1]
        if sum(c.isalnum() for c in line) < _RECURRING_LINE_ALNUM or not _is_sentence([line.lstrip("# ")]):
            return None
        window = self._lines[-self.max_cycle_lines - 1:-1]
        if window.count(line) < _LONG_CYCLE_REPEATS - 1:
            return None
        return Loop(self._line_starts[-1], line + "\n", _LONG_CYCLE_REPEATS, "exact")

    def _repeats_needed(self, cycle: list[str], *, counting: bool) -> int:
        long_cycle = sum(len(line.strip()) for line in cycle) >= _LONG_CYCLE_CHARS
        if counting:
            if long_cycle and _is_sentence(cycle):  # a long sentence again and again with one word changed
                return min(self.min_repeats, _LONG_CYCLE_REPEATS)
            return max(self.min_repeats, -(-_COUNTING_LINES // len(cycle)))
        if long_cycle:
            return min(self.min_repeats, _LONG_CYCLE_REPEATS)
        return self.min_repeats

    def _cycle_in(self, lines: list[str], text: str, *, counting: bool) -> Loop | None:
        for size in range(1, self.max_cycle_lines + 1):
            if size * min(self.min_repeats, _LONG_CYCLE_REPEATS) > len(lines):
                break
            cycle = lines[-size:]
            if lines[-2 * size:-size] != cycle:  # not even twice: the common case, decided cheaply
                continue
            if not counting and not any(len(line.strip()) >= _SUBSTANTIAL_CHARS for line in cycle):
                continue
            if not any(cycle):  # empty lines, however many, are layout
                continue
            repeats = self._repeats_needed(cycle, counting=counting)
            if counting and size == 1 and _grows(self._lines[-_GROWING_LINES:]):
                repeats = max(self.min_repeats, _GROWING_LINES)
            span = size * repeats
            if span > len(lines):
                continue
            if all(lines[-size * (r + 1): len(lines) - size * r] == cycle for r in range(2, repeats)):
                first = len(lines) - span  # index of the first line of the first occurrence
                keep = self._line_starts[first + size]  # through the newline that ends the first occurrence
                return Loop(keep, text[self._line_starts[first]:keep], repeats, "counting" if counting else "exact")
        return None

    def _runaway_line(self, text: str) -> Loop | None:
        line = text[self._partial_start:]
        if (period := _period(line[-_RAW_RUNAWAY_TAIL_CHARS:], _RAW_RUNAWAY_MAX_PERIOD)) is not None:
            start = len(line) - _RAW_RUNAWAY_TAIL_CHARS  # back to where the repetition began, to keep one unit
            while start > 0 and line[start - 1] == line[start - 1 + period]:
                start -= 1
            keep = self._partial_start + start + period
            return Loop(keep, line[start:start + period], (len(line) - start) // period, "runaway")
        if len(line) < _RUNAWAY_LINE_CHARS:
            return None
        masked = _mask_digits(line)
        if len(masked) < _RUNAWAY_TAIL_CHARS:
            return None
        tail = masked[-_RUNAWAY_TAIL_CHARS:]
        if (period := _period(tail, _RUNAWAY_MAX_PERIOD)) is not None:
            # Masking shortens numbers, so the cut is placed in the line by how much of it is periodic.
            periodic = len(masked) - len(tail) + period
            keep = self._partial_start + self._original_offset(line, periodic)
            return Loop(keep, tail[-period:], len(tail) // period, "runaway")
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


def _grows(lines: list[str]) -> bool:
    """`_GROWING_LINES` lines whose count of numbers never falls and grows by `_GROWING_NUMBERS` or more."""
    if len(lines) < _GROWING_LINES:
        return False
    counts = [len(_DIGITS.findall(line)) for line in lines]
    return all(b >= a for a, b in zip(counts, counts[1:], strict=False)) and counts[-1] - counts[0] >= _GROWING_NUMBERS


def _period(tail: str, longest: int) -> int | None:
    """The shortest period (up to `longest`) of `tail`, if it is made of one unit with some substance."""
    for period in range(1, longest + 1):
        unit = tail[-period:]
        if len(unit.strip()) and tail == (unit * (len(tail) // period + 1))[-len(tail):]:
            return period
    return None
