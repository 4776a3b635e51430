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


_ASKED_DEF = re.compile(r"(?m)^def\s+([A-Za-z_]\w*)\s*\(")
_TOP_DEFINITION = re.compile(  # def NAME, class NAME, NAME = ... (NAME: TYPE = ...)
    r"(?:async\s+)?def\s+([A-Za-z_]\w*)|class\s+([A-Za-z_]\w*)|([A-Za-z_]\w*)\s*(?::[^=]*)?=[^=]")


def asked_functions(task: str) -> frozenset[str]:
    """The functions a task asks for by signature: its top-level `def NAME(` lines (a docstring prompt)."""
    return frozenset(_ASKED_DEF.findall(task))


class CodeEndWatch:
    """Watches an answer as it streams for the end of the code `code_of_answer` returns, when it is Python.

    That is the closing fence of the first python-tagged block, or, when the prompt left a fence open, the
    first fence line of the answer. When the task asked for functions by signature (`asked`), the code also
    ends, once one of them is written, before the first top-level statement that is neither an import nor a
    definition of an asked name or of a name the code so far uses (a helper): a usage example, a test, a
    second variant of the function. Only complete lines are looked at, each once: the cost per token is the
    new text only (and, at a top-level line after the asked function, a search of the code so far).
    """

    def __init__(self, prompt_text: str, asked: frozenset[str] = frozenset()) -> None:
        self._inside_prompt_fence = _OPEN_FENCE_AT_END.search(prompt_text) is not None
        self._scanned = 0  # text before this index is in complete lines already looked at
        self._fence = ""  # the open fence's backticks, "" when outside a block
        self._python = False  # whether the open block is python-tagged
        self._asked = asked
        self._code: list[str] = []  # the Python code's lines so far (when `asked`)
        self._asked_written = False  # a top-level `def` of an asked name has been seen
        self._run_start: int | None = None  # where the top-level comments/blank lines before this line began

    def end(self, text: str) -> int | None:
        """Index where the code ends (just past its closing fence, or before the statement that follows the
        asked function), once it has streamed; None until then."""
        while (newline := text.find("\n", self._scanned)) >= 0:
            start = self._scanned
            line, self._scanned = text[start:newline], newline + 1
            was_in_code = self._in_python_code()  # False on the line that opens the block: not code itself
            if self._line_ends_code(line):
                return self._scanned
            if self._asked and was_in_code and self._beyond_asked(line, start):
                return self._run_start if self._run_start is not None else start
        return None

    def _in_python_code(self) -> bool:
        return self._inside_prompt_fence or (bool(self._fence) and self._python)

    def _beyond_asked(self, line: str, start: int) -> bool:
        """Whether `line` (Python code, not a fence) starts what follows the asked function; tracks the code."""
        if not line.strip() or line.startswith(("#", "@")):  # may open a helper's definition: judged with it
            if self._run_start is None:
                self._run_start = start
            self._code.append(line)
            return False
        if line[0].isspace():  # inside a definition
            self._run_start = None
            self._code.append(line)
            return False
        definition = _TOP_DEFINITION.match(line)
        name = next((g for g in definition.groups() if g), None) if definition else None
        if self._asked_written and not line.startswith(("import ", "from ")) and not (
                name is not None and (name in self._asked or self._code_uses(name))):
            return True
        if name in self._asked and line.lstrip().startswith(("def ", "async ")):
            self._asked_written = True
        self._run_start = None
        self._code.append(line)
        return False

    def _code_uses(self, name: str) -> bool:
        """Whether the code so far reads `name` as a global: a helper or constant it needs. A parameter or local
        of the same name does not count (`lst = [...]` after `def f(lst):` starts a usage example); code that
        does not parse yet is searched for the name as a word."""
        code = "\n".join(self._code)
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            return re.search(rf"\b{re.escape(name)}\b", code) is not None
        return name in _free_names(tree)

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


def _free_names(scope: ast.AST) -> set[str]:
    """Names read in `scope` that it does not bind itself (parameters, assignments, loop targets, imports, nested
    definitions' names): the names it takes from the enclosing scope."""
    bound: set[str] = set()
    read: set[str] = set()
    declared: set[str] = set()
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        arguments = scope.args
        bound |= {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
        bound |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
    body = scope.body if isinstance(scope, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
        else [scope.body] if isinstance(scope, ast.Lambda) else []
    pending: list[ast.AST] = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            if not isinstance(node, ast.Lambda):
                bound.add(node.name)
                pending.extend([*node.decorator_list, *getattr(node, "bases", [])])
            if not isinstance(node, ast.ClassDef):  # defaults are read where the function is defined
                pending.extend([*node.args.defaults, *filter(None, node.args.kw_defaults)])
            read |= _free_names(node)  # what a nested scope reads from outside it may be ours or the module's
            continue
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, (ast.Store, ast.Del)) else read).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared |= set(node.names)  # assigned here, but the variable lives outside
        pending.extend(ast.iter_child_nodes(node))
    return read | declared if isinstance(scope, ast.Module) else (read - bound) | declared


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True
