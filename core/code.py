"""The code in a model's answer: the first fenced block (Python first), or the answer itself when the prompt
left a code fence open (completion templates that end in ```python)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_FENCE_RE = re.compile(r"^[ \t]{0,3}(`{3,})[ \t]*([^`]*?)[ \t]*$")
_PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, content) for each ``` block; an unterminated last block runs to the end of the text."""
    blocks: list[tuple[str, str]] = []
    fence, tag = "", ""
    body: list[str] = []
    for line in text.splitlines():
        if not fence:
            match = _FENCE_RE.match(line)
            if match:
                fence, body = match.group(1), []
                tag = (match.group(2).split() or [""])[0].lower()
            continue
        stripped = line.strip()
        if stripped.startswith(fence) and not stripped.lstrip("`"):
            blocks.append((tag, "\n".join(body)))
            fence = ""
        elif stripped.endswith(fence) and not line.rstrip().endswith("`" * (len(fence) + 1)):
            body.append(line.rstrip()[: -len(fence)])  # "code```": closing fence glued to the last line
            blocks.append((tag, "\n".join(body)))
            fence = ""
        else:
            body.append(line)
    if fence:
        blocks.append((tag, "\n".join(body)))
    return blocks


def extract_code(text: str) -> str:
    """Code from a model reply: first python-tagged fenced block, else first untagged, else first any.

    Falls back to the whole text stripped when there is no fence.
    """
    blocks = _fenced_blocks(text)
    for wanted in (lambda t: t in _PYTHON_TAGS, lambda t: t == "", lambda t: True):
        for tag, body in blocks:
            if wanted(tag):
                return body.strip("\n")
    return text.strip()


_OPEN_FENCE_AT_END = re.compile(r"(?:^|\n)[ \t]{0,3}```[ \t]*([\w+#.-]*)[ \t]*\n?$")


@dataclass(frozen=True)
class AnswerCode:
    code: str
    language: str  # the fence's tag, lowercased ("" when none)
    parses: bool | None  # Python code: whether ast.parse accepts it; None for other or unknown languages


def code_of_answer(prompt_text: str, answer: str) -> AnswerCode:
    """What a user pipes into a file: the answer's code without the prose around it."""
    opened = _OPEN_FENCE_AT_END.search(prompt_text)
    if opened is not None:  # the answer starts inside the fence the prompt opened: code up to its closing fence
        language = opened.group(1).lower()
        lines = answer.splitlines()
        end = next((i for i, line in enumerate(lines) if line.strip().startswith("```")), len(lines))
        code = "\n".join(lines[:end]).strip("\n")
    else:
        blocks = _fenced_blocks(answer)
        python = [b for b in blocks if b[0] in _PYTHON_TAGS]
        language, code = (python or blocks or [("", answer.strip())])[0]
        code = code.strip("\n")
    return AnswerCode(code, language, _parses(code) if language in _PYTHON_TAGS else None)


class CodeEndWatch:
    """Watches an answer as it streams for the end of the code `code_of_answer` returns, when it is Python.

    That is the closing fence of the first python-tagged block, or, when the prompt left a fence open, the
    first fence line of the answer. Only complete lines are looked at, each once: the cost per token is the
    new text only.
    """

    def __init__(self, prompt_text: str) -> None:
        self._inside_prompt_fence = _OPEN_FENCE_AT_END.search(prompt_text) is not None
        self._scanned = 0  # text before this index is in complete lines already looked at
        self._fence = ""  # the open fence's backticks, "" when outside a block
        self._python = False  # whether the open block is python-tagged

    def end(self, text: str) -> int | None:
        """Index just past the line that closes the code, once it has streamed; None until then."""
        while (newline := text.find("\n", self._scanned)) >= 0:
            line, self._scanned = text[self._scanned : newline], newline + 1
            if self._line_ends_code(line):
                return self._scanned
        return None

    def _line_ends_code(self, line: str) -> bool:
        stripped = line.strip()
        if self._inside_prompt_fence:
            return stripped.startswith("```")
        if not self._fence:
            match = _FENCE_RE.match(line)
            if match:
                self._fence = match.group(1)
                self._python = (match.group(2).split() or [""])[0].lower() in _PYTHON_TAGS
            return False
        if stripped.startswith(self._fence) and not stripped.lstrip("`"):
            self._fence = ""
            return self._python
        return False


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True
