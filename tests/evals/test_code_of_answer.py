"""`--code`: the code of an answer, as a user pipes it into a file."""

from __future__ import annotations

from ggroute.core.code import code_of_answer

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
