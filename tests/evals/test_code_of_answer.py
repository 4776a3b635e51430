"""`--code`: the code of an answer, as a user pipes it into a file."""

from __future__ import annotations

import pytest

from ggroute.core.code import CodeEndWatch, asked_functions, code_of_answer

CHAT_PROMPT = "<|im_start|>user\nWrite add<|im_end|>\n<|im_start|>assistant\n"
COMPLETION_PROMPT = "Write Python code for: add two numbers\n\nCode:\n```python\n"


def test_a_chat_answer_gives_its_first_python_block() -> None:
    answer = "Sure! Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nIt adds two numbers."
    code = code_of_answer(CHAT_PROMPT, answer)
    assert (code.code, code.language, code.parses) == ("def add(a, b):\n    return a + b", "python", True)


def test_python_that_does_not_parse_says_so() -> None:
    code = code_of_answer(CHAT_PROMPT, "```python\ndef add(a, b)\n    return a + b\n```")
    assert code.parses is False


def test_other_languages_are_not_parsed() -> None:
    code = code_of_answer(CHAT_PROMPT, "```dockerfile\nFROM python:3.12\n```")
    assert (code.code, code.language, code.parses) == ("FROM python:3.12", "dockerfile", None)


def test_an_answer_without_a_fence_is_the_code_itself() -> None:
    assert code_of_answer(CHAT_PROMPT, "  print('hi')\n").code == "print('hi')"


def test_a_completion_prompt_that_opened_a_fence_gives_the_answer_up_to_its_closing_fence() -> None:
    answer = "def add(a, b):\n    return a + b\n```\n\nExplanation: it adds."
    code = code_of_answer(COMPLETION_PROMPT, answer)
    assert (code.code, code.language, code.parses) == ("def add(a, b):\n    return a + b", "python", True)


def test_a_completion_answer_cut_by_max_tokens_is_all_code() -> None:
    code = code_of_answer(COMPLETION_PROMPT, "def add(a, b):\n    return a +")
    assert code.code == "def add(a, b):\n    return a +" and code.parses is False


# --- CodeEndWatch: where generation may stop when only the code is wanted ----------------------------------


def _first_end(prompt: str, answer: str, asked: frozenset[str] = frozenset()) -> str | None:
    """Feed `answer` one character at a time, as a stream; the text kept when the watch says the code ended."""
    watch = CodeEndWatch(prompt, asked)
    for i in range(1, len(answer) + 1):
        end = watch.end(answer[:i])
        if end is not None:
            return answer[:end]
    return None


def test_the_watch_ends_at_the_closing_fence_of_the_first_python_block() -> None:
    answer = "Run:\n```bash\npip install x\n```\nThen:\n```python\ndef add(a, b):\n    return a + b\n```\nIt adds."
    kept = _first_end(CHAT_PROMPT, answer)
    assert kept == answer[: answer.index("It adds.")]
    assert code_of_answer(CHAT_PROMPT, kept or "").code == code_of_answer(CHAT_PROMPT, answer).code


def test_the_watch_does_not_end_at_other_blocks_or_an_unclosed_one() -> None:
    assert _first_end(CHAT_PROMPT, "```dockerfile\nFROM python\n```\nDone.\n") is None
    assert _first_end(CHAT_PROMPT, "```\nplain\n```\n") is None  # untagged: a python block may still follow
    assert _first_end(CHAT_PROMPT, "```python\ndef f():\n    pass\n") is None
    assert _first_end(CHAT_PROMPT, "```python\nx = '```'\n  ``` not a fence\n") is None  # fences in code lines


def test_the_watch_waits_for_the_closing_fence_line_to_end() -> None:
    watch = CodeEndWatch(CHAT_PROMPT)
    assert watch.end("```python\nx = 1\n```") is None
    assert watch.end("```python\nx = 1\n```\n") == len("```python\nx = 1\n```\n")


def test_after_a_prompt_that_opened_a_fence_the_first_fence_line_ends_the_code() -> None:
    assert _first_end(COMPLETION_PROMPT, "def add(a, b):\n    return a + b\n```\n\nMore text") == (
        "def add(a, b):\n    return a + b\n```\n")


# --- a task that asks for functions by signature: the code ends after them ----------------------------------

SIGNATURE_TASK = (
    "from typing import List\n\n\ndef below_zero(operations: List[int]) -> bool:\n"
    '    """Return True if the balance ever falls below zero."""\n'
)
BODY = "def below_zero(operations):\n    balance = 0\n    for op in operations:\n        balance += op\n" \
       "        if balance < 0:\n            return True\n    return False\n"


def test_asked_functions_are_the_top_level_signatures_of_the_task() -> None:
    assert asked_functions(SIGNATURE_TASK) == {"below_zero"}
    assert asked_functions("Write a function that merges two dicts") == frozenset()
    assert asked_functions("class A:\n    def method(self):\n        pass\n") == frozenset()  # methods are not


@pytest.mark.parametrize("after", [
    "\n# Example usage\nprint(below_zero([1, -2]))\n",
    "\n\nif __name__ == '__main__':\n    print(below_zero([1]))\n",
    "\nassert below_zero([-1])\n",
    '\ndef below_zero_fast(operations):\n    """Faster."""\n',  # a second variant nobody asked for
    "\nresult = below_zero([1])\n",
    # a usage example that names its data like the parameter (HumanEval/94: `lst = [...]` after `def f(lst):`)
    "\n# Test the function\noperations = [1, -2]\nprint(below_zero(operations))\n",
])
def test_after_the_asked_function_the_code_ends_before_examples_tests_and_variants(after: str) -> None:
    answer = "Here it is:\n```python\n" + BODY + after + "```\nDone."
    kept = _first_end(CHAT_PROMPT, answer, asked_functions(SIGNATURE_TASK))
    assert kept == "Here it is:\n```python\n" + BODY
    assert code_of_answer(CHAT_PROMPT, kept or "").code == BODY.rstrip("\n")


def test_helpers_imports_and_constants_the_function_uses_are_kept() -> None:
    body = ("import math\n\ndef below_zero(operations):\n    return _first_negative(operations) is not None\n"
            "\n\nfrom itertools import accumulate\n\n# the helper\n@staticmethod\ndef _first_negative(ops):\n"
            "    return next((b for b in accumulate(ops) if b < LIMIT), None)\n\nLIMIT = 0\n")
    answer = "```python\n" + body + "```\nDone."
    assert _first_end(CHAT_PROMPT, answer, asked_functions(SIGNATURE_TASK)) == answer[: answer.index("Done.")]


@pytest.mark.parametrize("body, after", [
    # a constant read through `global`, and one read by a default value
    ("def below_zero(operations):\n    global calls\n    calls += 1\n    return False\n", "\ncalls = 0\n"),
    ("def below_zero(operations, limit=LIMIT):\n    return False\n", "\nLIMIT = 0\n"),
    # a helper read inside a lambda, a comprehension and a nested function
    ("def below_zero(operations):\n    key = lambda o: weight(o)\n    return False\n",
     "\ndef weight(o):\n    return o\n"),
    ("def below_zero(operations):\n    return any(ok(o) for o in operations)\n", "\nok = bool\n"),
    ("def below_zero(operations):\n    def inner(o):\n        return SCALE * o\n    return False\n",
     "\nSCALE = 2\n"),
])
def test_names_the_function_reads_from_outside_are_kept(body: str, after: str) -> None:
    answer = "```python\n" + body + after + "```\nDone."
    assert _first_end(CHAT_PROMPT, answer, asked_functions(SIGNATURE_TASK)) == answer[: answer.index("Done.")]


def test_code_before_the_asked_function_and_without_a_signature_task_is_not_cut() -> None:
    answer = "```python\nprint('setup')\n" + BODY + "print(below_zero([1]))\n```\n"
    assert _first_end(CHAT_PROMPT, answer) == answer  # no signature asked: only the fence ends it
    kept = _first_end(CHAT_PROMPT, answer, asked_functions(SIGNATURE_TASK))
    assert kept == "```python\nprint('setup')\n" + BODY


def test_a_completion_prompt_that_opened_a_fence_is_cut_the_same_way() -> None:
    answer = BODY + "\nprint(below_zero([1, -2]))\n```\n"
    assert _first_end(COMPLETION_PROMPT, answer, asked_functions(SIGNATURE_TASK)) == BODY
