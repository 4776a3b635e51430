"""The loop guard: a model repeating itself stops with finish `repetition`, ordinary code does not trip it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ggroute.models.config import LoopGuardConfig
from ggroute.models.generate import Generation, RequestOptions
from ggroute.models.loop_guard import Loop, LoopGuard
from tests.cli.scripted_cli import SCRIPT_ENV
from tests.fakes import Script, ScriptedBackend, fake_spec

REPO = Path(__file__).resolve().parents[2]


def feed_all(guard: LoopGuard, text: str, chunk: int = 3) -> tuple[int, Loop | None]:
    """Feed `text` in small chunks as a stream would; return where the loop fired (or -1) and the loop."""
    for end in range(chunk, len(text) + chunk, chunk):
        loop = guard.feed(text[:end], max(0, end - chunk))
        if loop is not None:
            return end, loop
    return -1, None


def test_the_readme_loop_stops_after_the_fourth_copy_and_keeps_one() -> None:
    text = "import sys\nimport time\n" + "import random\n" * 50
    at, loop = feed_all(LoopGuard(4, 8), text)
    assert loop is not None
    assert text[: loop.keep_chars] == "import sys\nimport time\nimport random\n"
    assert at <= len("import sys\nimport time\n") + 4 * len("import random\n") + 3


def test_a_cycle_of_several_lines_is_a_loop() -> None:
    cycle = "for i in range(10):\n    print(i)\n"
    _, loop = feed_all(LoopGuard(4, 8), "def f():\n" + cycle * 6)
    assert loop is not None and loop.cycle == cycle


@pytest.mark.parametrize(
    "text",
    [
        # closing braces repeat in ordinary code: no substance, no loop
        "function f() {\n  if (a) {\n    if (b) {\n      x();\n    }\n  }\n}\n}\n}\n}\n}\n",
        # similar but different lines
        "".join(f"assert add({i}, {i}) == {2 * i}\n" for i in range(11)),
        # three copies only: below min_repeats
        "print('hello')\n" * 3 + "done\n",
        # blank lines
        "x = 1\n" + "\n" * 20 + "y = 2\n",
    ],
)
def test_ordinary_text_is_not_a_loop(text: str) -> None:
    assert feed_all(LoopGuard(4, 8), text)[1] is None


def test_a_runaway_line_without_newlines_is_a_loop() -> None:
    text = "x = [" + "1, 2, " * 200
    _, loop = feed_all(LoopGuard(4, 8), text, chunk=7)
    assert loop is not None
    assert text[: loop.keep_chars] == "x = [1, 2, "  # one copy of the unit kept


def test_a_line_of_repeated_digits_is_a_loop_within_two_hundred_characters() -> None:
    # README's stdin example: a "stack trace" of `.000000` groups, one token per digit, ran into max_tokens
    # (digit masking shrinks such a line below the 256 masked characters the counting check needs).
    text = "The most common stack trace format is:\n\n```\n1. 00:00:00" + ".000000" * 80
    at, loop = feed_all(LoopGuard(4, 24), text)
    assert loop is not None and loop.kind == "runaway"
    assert at <= len("The most common stack trace format is:\n\n```\n") + 256
    kept = text[: loop.keep_chars]
    assert kept.startswith("The most common stack trace format is:\n\n```\n1. 00:00:00") and len(kept) < 80


@pytest.mark.parametrize(
    "text",
    [
        # long lines that are not periodic: prose, a base64 blob, a long list of different numbers
        "This paragraph goes on for a long while without any newline, " * 2 + "as prose in a README often does. " * 4,
        "data = '" + base64.b64encode(b"".join(hashlib.sha256(bytes([i])).digest() for i in range(8))).decode() + "'",
        # (under 512 characters: longer, a list of numbers is a counting runaway)
        "primes = [" + ", ".join(str(p) for p in range(3, 400, 2) if all(p % d for d in range(3, p, 2))) + "]",
        # a regex that writes its unit four times on purpose (an IPv4 address: one octet and a dot, 46 characters)
        "IPV4 = re.compile(r'^" + r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\." * 3
        + r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$')",
    ],
)
def test_a_long_line_that_does_not_repeat_itself_is_not_a_loop(text: str) -> None:
    assert feed_all(LoopGuard(4, 24), text, chunk=16)[1] is None


def test_generation_stops_with_repetition_and_drops_the_repeats() -> None:
    script = Script(pieces=("import os\n", "import random\n"), repeat=True, end_of_text=False)
    model = ScriptedBackend(fake_spec(max_tokens=1000), script)
    generation = Generation(model, "loop please", RequestOptions())
    streamed = "".join(generation)
    result = generation.result
    assert result is not None and result.finish_reason == "repetition"
    assert result.text == "import os\nimport random\n"
    assert streamed.startswith(result.text)  # the first repeats were streamed before the loop was clear
    assert result.repetition is not None
    assert result.repetition.repeats == 4
    assert result.repetition.tokens_saved == 1000 - result.usage.completion_tokens
    assert result.repetition.dropped_chars == len("import os\nimport random\n") * 3
    assert model.streams[0].closed  # no token sampled after the loop was recognised


def test_the_guard_can_be_switched_off_per_model() -> None:
    script = Script(pieces=("again\n",), repeat=True, end_of_text=False)
    model = ScriptedBackend(fake_spec(max_tokens=40, loop_guard={"enabled": False}), script)
    result = Generation(model, "loop please", RequestOptions()).run()
    assert result.finish_reason == "length" and result.repetition is None


@pytest.mark.parametrize("value", [0, 1, 2])
def test_a_threshold_that_would_stop_ordinary_answers_is_refused(value: int) -> None:
    with pytest.raises(ValidationError, match="would stop ordinary answers"):
        LoopGuardConfig(min_repeats=value)


def test_a_loop_that_counts_is_a_loop_at_sixteen_lines() -> None:
    lines = "".join(f"    fib4({n}) -> {n * 37 % 1000}.98\n" for n in range(20, 60))
    at, loop = feed_all(LoopGuard(4, 8), "def fib4(n):\n" + lines)
    assert loop is not None and loop.repeats == 16
    assert at < len("def fib4(n):\n") + len(lines) * 16 // 40 + 3  # stopped after the 16th line, not at the end


def test_a_counting_line_that_grows_is_a_loop_at_eight_lines() -> None:
    # HumanEval/88 on the algorithm model: each comment line one number longer, 512 tokens gone by the 13th
    lines = "".join(f"    # sort_array([{', '.join(str(n) for n in range(k))}])\n" for k in range(3, 40))
    at, loop = feed_all(LoopGuard(4, 24), "    array = []\n" + lines)
    assert loop is not None and loop.kind == "counting" and loop.repeats == 8
    assert at < len("    array = []\n") + sum(len(line) + 1 for line in lines.splitlines()[:8]) + 3


@pytest.mark.parametrize("rows", [
    [f"    [{', '.join('1' for _ in range(4))}],  # row {k}" for k in range(12)],  # same length: 16 lines needed
    [f"assert f([{', '.join(str(n) for n in range(k // 4 + 1))}]) == {k}" for k in range(12)],  # grows by 2
], ids=["numbers of the same count", "grows slowly"])
def test_counting_lines_that_do_not_grow_fast_need_sixteen(rows: list[str]) -> None:
    assert feed_all(LoopGuard(4, 24), "\n".join(rows) + "\n")[1] is None


def test_a_numbered_two_line_cycle_is_a_loop() -> None:
    text = "for i in range(100):\n" + "".join(f"    if i == {n}:\n        continue\n" for n in range(0, 80, 2))
    _, loop = feed_all(LoopGuard(4, 8), text)
    assert loop is not None and "continue" in loop.cycle


def test_a_counting_sentence_on_one_line_is_a_loop() -> None:
    text = "It works like this: " + " ".join(f"If the input number is {n}, it returns False." for n in range(20, 90))
    _, loop = feed_all(LoopGuard(4, 8), text, chunk=5)
    assert loop is not None
    assert text[: loop.keep_chars].startswith("It works like this: If the input number is")


def test_a_short_table_of_test_cases_is_not_a_loop() -> None:
    cases = "".join(f"assert add({a}, {b}) == {a + b}\n" for a, b in [(1, 2), (3, 4), (0, 0), (-1, 1), (5, 5)])
    assert feed_all(LoopGuard(4, 8), cases)[1] is None


def test_sixteen_lines_of_indentation_are_a_loop() -> None:
    _, loop = feed_all(LoopGuard(4, 8), "def f():\n    x = 1\n" + "    \n" * 40)
    assert loop is not None and loop.repeats == 16


def test_a_long_block_written_a_third_time_is_a_loop() -> None:
    block = ("    def any_int(x, y, z):\n        '''\n        Create a function that takes 3 numbers.\n"
             "        Returns true if one of the numbers is equal to the sum of the other two.\n\n"
             "        Examples\n        any_int(5, 2, 7) ➞ True\n\n        any_int(3, 2, 2) ➞ False\n    '''\n")
    at, loop = feed_all(LoopGuard(4, 24), block * 6)
    assert loop is not None and loop.cycle == block and loop.repeats == 3
    assert at <= 3 * len(block) + 3


def test_a_short_block_written_three_times_is_not_a_loop() -> None:
    assert feed_all(LoopGuard(4, 24), "x = f()\nprint(x)\n" * 3 + "done()\n")[1] is None


@pytest.mark.parametrize(
    "lines",
    [
        # ordinals and numbers in words, hyphenated or not
        [f"    # then remove the {w} element\n" for w in (
            "thirty-five", "thirty-six", "thirty-seven", "thirty-eight", "thirty-nine", "forty-one", "forty-two",
            "forty-three", "forty-four", "forty-five", "forty-six", "forty-seven", "forty-eight", "forty-nine",
            "fifty", "fifty-one", "fifty-two", "fifty-three", "fifty-four")],
        [f"    # {w} find the closest number\n    closest = smallest - closest\n" for w in (
            "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth", "twenty", "thirty", "forty",
            "fifty", "sixtieth")],
        # a single character in quotes
        [f"    if text == '{c}':\n        return True\n" for c in "abcdefghijklmnop"],
        # a list of numbers that grows
        [f"    if n == {n}:\n        return {list(range(1, n))}\n" for n in range(4, 20)],
        [f"    elif operator in [{n}, {n + 1}]:\n        return {n // 2}\n" for n in range(30, 60, 2)],
        # a numbered six-line cycle
        [f"    elif n == {n}:\n        print(\"No {fruit} in the basket\")\n"
         for n, fruit in zip(range(12, 42), ["apples", "oranges", "mango fruits"] * 10, strict=True)],
    ],
    ids=["number-words", "ordinals", "quoted-letters", "growing-lists", "number-pairs", "six-line-count"],
)
def test_a_loop_that_counts_in_words_letters_or_lists_is_a_loop(lines: list[str]) -> None:
    text = "def f(n):\n" + "".join(lines)
    at, loop = feed_all(LoopGuard(4, 24), text)
    assert loop is not None, "not recognised"
    assert at < len(text)  # stopped before the end: the loop was recognised while it ran
    assert text[: loop.keep_chars].startswith("def f(n):\n" + lines[0].split("\n")[0])


@pytest.mark.parametrize(
    "text",
    [
        # a conversion table: numbers and strings that differ
        "".join(f"    ({n}, '{r}'),\n" for n, r in [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"),
                                                     (90, "XC"), (50, "L"), (40, "XL"), (10, "X"), (9, "IX"),
                                                     (5, "V"), (4, "IV"), (1, "I")]),
        # fifteen numbered test cases, one per line
        "".join(f"assert add({i}, {i}) == {2 * i}\n" for i in range(15)),
        # five numbered branches of two lines
        "".join(f"    if n == {n}:\n        return {n * n}\n" for n in range(5)),
        # three numbered branches of four lines
        "".join(f"    if n == {n}:\n        x = {n}\n        y = x * {n}\n        return y\n" for n in range(3)),
    ],
)
def test_ordinary_counted_code_is_not_a_loop(text: str) -> None:
    assert feed_all(LoopGuard(4, 24), text)[1] is None


def test_a_sentence_written_a_third_time_with_one_flag_changed_is_a_loop() -> None:
    # `ggroute run --route coder "Dockerfile for a Flask app"`: the same explanation for flag after flag
    intro = "This command builds the image.\n\n"
    copies = [f"The `{flag}` flag specifies that the output should be a `flask-app.heroku_create.heroku_create.yml` "
              "file.\n\n" for flag in ("-t", "-f", "-p", "-f", "-o")]
    text = intro + "".join(copies)
    at, loop = feed_all(LoopGuard(4, 24), text)
    assert loop is not None and loop.kind == "counting" and loop.repeats == 3
    assert at < len(text) - len(copies[-1]) + 3  # before the fourth copy was written
    assert text[: loop.keep_chars].rstrip("\n") == intro + copies[0].rstrip("\n")  # the first copy is kept


@pytest.mark.parametrize(
    "text",
    [
        # three flags explained differently: prose, but not the same sentence
        "The `-t` flag tags the image with a name and optionally a version, like myapp:1.0 or myapp:latest.\n\n"
        "The `-f` flag names the Dockerfile to build from, when it is not called Dockerfile or not in the root.\n\n"
        "The `-q` flag suppresses the build output and prints only the image ID at the end of a successful build.\n",
        # three long code lines that differ only in a number: code, not prose
        "".join(f"    result_{i} = compute_statistics(dataset_frame, window_size={i}, min_periods=1, center=True, "
                "closed='right')\n" for i in range(3)),
    ],
    ids=["different-sentences", "long-code-lines"],
)
def test_three_similar_lines_that_are_not_one_sentence_repeated_are_not_a_loop(text: str) -> None:
    assert feed_all(LoopGuard(4, 24), text)[1] is None


def test_the_guard_can_be_switched_off_per_request() -> None:
    script = Script(pieces=("again and again\n",), repeat=True, end_of_text=False)
    model = ScriptedBackend(fake_spec(max_tokens=40), script)
    result = Generation(model, "loop please", RequestOptions(loop_guard=False)).run()
    assert result.finish_reason == "length" and result.repetition is None
    assert result.usage.completion_tokens == 40


@pytest.mark.parametrize(("flags", "finish"), [((), "repetition"), (("--no-loop-guard",), "length")])
def test_no_loop_guard_on_the_command_line(flags: tuple[str, ...], finish: str) -> None:
    script = {"pieces": ["again and again\n"], "repeat": True, "end_of_text": False}
    done = subprocess.run(
        [sys.executable, "-m", "tests.cli.scripted_cli", "generate", "--model", "coder", "loop please", "--json",
         "--max-tokens", "60", *flags],
        cwd=REPO, env={**os.environ, SCRIPT_ENV: json.dumps(script)}, capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["finish_reason"] == finish


def test_long_comment_sentences_that_take_turns_are_a_loop_at_a_third_copy() -> None:
    # HumanEval/122 on the algorithm model: three comment lines in no fixed order, none a cycle.
    sentence = ("    # If the sum of the elements with the first k elements is {} the sum of the elements with the "
                "second k elements, then return the sum of the elements with the second k elements\n")
    turns = [sentence.format(w) for w in ("greater than", "less than", "equal to", "less than", "equal to",
                                          "greater than", "less than")]
    text = "def f(arr, k):\n" + "".join(turns)
    guard = LoopGuard(min_repeats=4, max_cycle_lines=24)
    loop = guard.feed(text, 0)
    assert loop is not None and text[: loop.keep_chars] == "def f(arr, k):\n" + "".join(turns[:6])
    # a long command line written three times on purpose is not prose: not a loop
    command = ("    aws emr create-cluster --instance-groups InstanceGroupType=MASTER,InstanceCount=1,"
               "InstanceType=m4.large InstanceGroupType=CORE,InstanceCount=2 \\\n")
    examples = "".join(command + f"    --name cluster-{i}\n\n" for i in range(3))
    assert LoopGuard(min_repeats=4, max_cycle_lines=24).feed(examples, 0) is None
