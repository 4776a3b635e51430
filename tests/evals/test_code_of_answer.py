"""`--code`: the code of an answer, as a user pipes it into a file."""

from __future__ import annotations

from ggroute.core.code import CodeEndWatch, code_of_answer

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


def _first_end(prompt: str, answer: str) -> str | None:
    """Feed `answer` one character at a time, as a stream; the text kept when the watch says the code ended."""
    watch = CodeEndWatch(prompt)
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
