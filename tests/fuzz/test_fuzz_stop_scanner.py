"""Fuzzing the stop-string scanner of generation (models/generate.py) against a one-line reference.

The text streams in as chunks (tokens); generation must stop as soon as a stop string is complete and return the
text before it, whatever the chunks are: what the scanner emitted plus the tail it held back equals
`reference(text, stops)`, and the held tail is never longer than the longest stop string less one character.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ggroute.models.generate import StopScanner
from tests.fuzz.conftest import fuzz_settings, tried

# A small alphabet, so that stop strings, their prefixes and overlaps occur often.
pieces = st.text(st.sampled_from("ab\n`é😀"), max_size=6)
stop_lists = st.lists(st.text(st.sampled_from("ab\n`é😀"), max_size=4), max_size=4)


def reference(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text before the first stop string to be complete (the earliest end; of stops ending there, the
    longest), and whether there was one. Empty stop strings are ignored."""
    found = [(text.find(stop) + len(stop), -len(stop), text.find(stop)) for stop in stops if stop and stop in text]
    return (text[: min(found)[2]], True) if found else (text, False)


@fuzz_settings(max_examples=1000)
@given(chunks=st.lists(pieces, max_size=12), stops=stop_lists)
def test_emitted_plus_held_tail_is_the_text_before_the_first_stop(chunks: list[str], stops: list[str]) -> None:
    tried("stop scanner")
    scanner = StopScanner(stops)
    emitted, hit = "", False
    for chunk in chunks:
        piece, hit = scanner.feed(chunk)
        emitted += piece
        if hit:
            break
        assert len(scanner.text) - scanner.emitted <= scanner.hold
    assert (emitted + scanner.finish(), hit) == reference("".join(chunks), stops)
