"""Text that enters from outside (stdin, command-line arguments, JSON files) made safe to encode as UTF-8.

Invalid UTF-8 is decoded with replacement: every byte sequence that is not UTF-8 becomes U+FFFD, as a careful
user expects of `cat file | ggroute run -` when the file holds one stray Latin-1 byte. Command-line arguments
and file names reach Python as lone surrogates (the `surrogateescape` error handler); those are turned back into
their bytes and decoded the same way. A lone surrogate from elsewhere (a JSON "\\ud800" escape) becomes U+FFFD.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_SURROGATES = re.compile("[\ud800-\udfff]+")
_UTF8_REPLACEMENT = REPLACEMENT.encode("utf-8")


def decode_input(data: bytes) -> tuple[str, int]:
    """`data` decoded as UTF-8 with replacement; also how many replacement characters decoding added."""
    text = data.decode("utf-8", errors="replace")
    return text, text.count(REPLACEMENT) - data.count(_UTF8_REPLACEMENT)


def repair_text(text: str) -> tuple[str, int]:
    """`text` with its lone surrogates decoded as above; also how many replacement characters that added.

    Text that encodes as UTF-8 already is returned as it is (the common case costs one regex search)."""
    if _SURROGATES.search(text) is None:
        return text, 0
    parts: list[bytes] = []
    last = 0
    for match in _SURROGATES.finditer(text):
        parts.append(text[last : match.start()].encode("utf-8"))
        parts.append(bytes(_escaped_byte(ord(ch)) for ch in match.group()))
        last = match.end()
    parts.append(text[last:].encode("utf-8"))
    repaired, _ = decode_input(b"".join(parts))
    return repaired, repaired.count(REPLACEMENT) - text.count(REPLACEMENT)


def _escaped_byte(code: int) -> int:
    """The byte a `surrogateescape` surrogate stands for (U+DC80..U+DCFF); 0xFF (never valid UTF-8) otherwise."""
    return code - 0xDC00 if 0xDC80 <= code <= 0xDCFF else 0xFF
