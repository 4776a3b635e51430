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


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True
