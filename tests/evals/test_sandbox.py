"""Tests for ggroute.evals.sandbox's limits and results: real child processes, no mocks, both isolation modes.

The hostile cases (what isolation keeps out) are in test_sandbox_hostile.py.
"""

from __future__ import annotations

import functools
import os
import textwrap
import threading
from collections.abc import Callable

import pytest

from ggroute.core.code import extract_code
from ggroute.evals import sandbox
from ggroute.evals.sandbox import Isolation, SandboxLimits, SandboxResult
from tests.evals.processes import live_processes_with

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="sandbox is Linux-only")


@pytest.fixture(params=[Isolation.BWRAP, Isolation.NONE], ids=["bwrap", "unsafe"])
def isolation(request: pytest.FixtureRequest) -> Isolation:
    value: Isolation = request.param
    return value


@pytest.fixture
def run_python(isolation: Isolation) -> Callable[..., SandboxResult]:
    """sandbox.run_python in the parametrized isolation mode."""
    return functools.partial(sandbox.run_python, isolation=isolation)


def test_ok_prints_stdout(run_python: Callable[..., SandboxResult]) -> None:
    result = run_python("print('hello', 6 * 7)")
    assert result.ok, result
    assert result.exit_code == 0
    assert not result.timed_out
    assert result.stdout == "hello 42\n"
    assert result.stderr == ""
    assert result.reason == ""
    assert 0 < result.duration_s < 10


def test_stdlib_works_without_site(run_python: Callable[..., SandboxResult]) -> None:
    code = "import json, sqlite3, decimal, hashlib, collections, re, math, zlib\nprint(json.dumps([1]))"
    result = run_python(code)
    assert result.ok, result.stderr
    assert result.stdout.strip() == "[1]"


def test_syntax_error_is_a_failed_result(run_python: Callable[..., SandboxResult]) -> None:
    result = run_python("def broken(:\n    pass\n")
    assert not result.ok
    assert result.exit_code == 1
    assert not result.timed_out
    assert "SyntaxError" in result.stderr
    assert result.reason.startswith("exit code 1")


def test_nonzero_exit_and_exception_reasons(run_python: Callable[..., SandboxResult]) -> None:
    assert run_python("import sys; sys.exit(3)").reason == "exit code 3"
    result = run_python("raise ValueError('nope')")
    assert not result.ok
    assert result.reason == "exit code 1: ValueError: nope"


@pytest.mark.slow  # waits out a time limit
def test_infinite_loop_times_out(run_python: Callable[..., SandboxResult]) -> None:
    result = run_python("while True: pass", SandboxLimits(timeout_s=1.5))
    assert result.timed_out
    assert not result.ok
    assert result.exit_code is None
    assert result.reason == "timed out after 1.5 s"
    assert 1.4 < result.duration_s < 5


@pytest.mark.slow  # waits out a time limit
def test_cpu_limit_kills_busy_loop_before_wall_clock(run_python: Callable[..., SandboxResult]) -> None:
    result = run_python("while True: pass", SandboxLimits(timeout_s=20, cpu_s=1))
    assert not result.ok
    assert not result.timed_out
    assert result.exit_code is not None and result.exit_code < 0
    assert "CPU time limit" in result.reason
    assert result.duration_s < 10


@pytest.mark.slow  # waits out a time limit
def test_process_tree_is_contained_and_leaves_no_survivors(run_python: Callable[..., SandboxResult]) -> None:
    # A bounded tree (each process forks at most 4 children, 4 levels deep: <= 341 processes), every leaf
    # then becomes `sleep MARKER`. What is tested is the containment: the wall-clock timeout fires and nothing
    # of the tree is alive afterwards. The unbounded fork bomb is in test_sandbox_hostile.py (bwrap only).
    marker = "61.2471"
    code = textwrap.dedent(
        f"""
        import os
        depth, spawned = 0, 0
        while depth < 4 and spawned < 4:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                depth, spawned = depth + 1, 0
            else:
                spawned += 1
        print("tree", flush=True)
        os.execv("/usr/bin/sleep", ["sleep", "{marker}"])
        """
    )
    result = run_python(code, SandboxLimits(timeout_s=2.0, max_processes=400))
    assert result.timed_out, result
    assert result.duration_s < 10
    assert "tree" in result.stdout
    assert live_processes_with(marker) == []


def test_background_grandchild_is_killed_when_main_exits(run_python: Callable[..., SandboxResult]) -> None:
    # The main process exits at once; its forked child would hold stdout open and sleep for a minute.
    marker = "62.3581"
    code = textwrap.dedent(
        f"""
        import os
        if os.fork() == 0:
            os.execv("/usr/bin/sleep", ["sleep", "{marker}"])
        print("parent done", flush=True)
        """
    )
    result = run_python(code, SandboxLimits(timeout_s=20))
    assert result.ok, result
    assert result.duration_s < 5
    assert live_processes_with(marker) == []


def test_memory_hog_fails_with_memory_error(run_python: Callable[..., SandboxResult]) -> None:
    result = run_python("x = bytearray(2_000_000_000)\nprint('allocated')", SandboxLimits(memory_mb=256))
    assert not result.ok
    assert "MemoryError" in result.stderr
    assert "allocated" not in result.stdout
    assert "memory" in result.reason


def test_big_file_write_hits_file_size_limit(run_python: Callable[..., SandboxResult]) -> None:
    code = textwrap.dedent(
        """
        chunk = b"x" * (1024 * 1024)
        with open("big.bin", "wb") as fh:
            for _ in range(100):
                fh.write(chunk)
        print("wrote 100 MB")
        """
    )
    result = run_python(code, SandboxLimits(file_size_mb=4))
    assert not result.ok
    assert "wrote 100 MB" not in result.stdout
    assert "file size" in result.reason


def test_environment_is_scrubbed(run_python: Callable[..., SandboxResult], isolation: Isolation,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GGROUTE_SECRET_TOKEN", "s3cr3t-value-do-not-leak")
    code = "import os, sys\nprint(sorted(os.environ))\nprint(open('/proc/self/environ').read(), sys.flags)"
    result = run_python(code)
    assert result.ok, result.stderr
    assert "s3cr3t-value-do-not-leak" not in result.stdout
    assert "GGROUTE_SECRET_TOKEN" not in result.stdout
    first_line = result.stdout.splitlines()[0]
    expected = ["HOME", "LANG", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "TMPDIR"]
    if isolation is Isolation.BWRAP:  # bwrap sets PWD (to the sandbox's /tmp) after --chdir
        expected.insert(3, "PWD")
    assert first_line == repr(expected)
    assert "PATH=/usr/bin:/bin" in result.stdout
    assert "dont_write_bytecode=1" in result.stdout


def test_hash_seed_is_fixed(run_python: Callable[..., SandboxResult]) -> None:
    code = "print(hash('ggroute'), list({'a', 'b', 'c', 'd', 'e'}))"
    first, second = run_python(code), run_python(code)
    assert first.ok and second.ok
    assert first.stdout == second.stdout


def test_cwd_is_fresh_temp_dir_holding_only_the_script(run_python: Callable[..., SandboxResult]) -> None:
    code = textwrap.dedent(
        """
        import os, tempfile
        print(os.getcwd())
        print(os.environ["HOME"])
        print(tempfile.gettempdir())
        print(sorted(os.listdir(".")))
        open("junk.txt", "w").write("left behind?")
        """
    )
    first, second = run_python(code), run_python(code)
    assert first.ok, first.stderr
    cwd, home, tmp, listing = first.stdout.splitlines()
    assert cwd == home == tmp
    assert cwd != os.getcwd()
    assert listing == "['main.py']"
    assert second.stdout.splitlines()[3] == "['main.py']"  # nothing of the first run is left for the second


def test_unsafe_temp_dir_is_removed_afterwards() -> None:
    code = "import os\nprint(os.getcwd())\nopen('junk.txt', 'w').write('x')"
    first = sandbox.run_python(code, isolation=Isolation.NONE)
    second = sandbox.run_python(code, isolation=Isolation.NONE)
    assert first.ok, first.stderr
    cwd = first.stdout.strip()
    assert os.path.basename(cwd).startswith("ggroute-sandbox-")
    assert not os.path.exists(cwd)
    assert second.stdout.strip() != cwd


@pytest.mark.slow  # waits out a time limit
def test_unsafe_temp_dir_removed_after_timeout() -> None:
    code = "import os\nprint(os.getcwd(), flush=True)\nopen('junk.txt', 'w').write('x')\nwhile True: pass"
    result = sandbox.run_python(code, SandboxLimits(timeout_s=1.0), isolation=Isolation.NONE)
    assert result.timed_out
    assert not os.path.exists(result.stdout.strip())


def test_cancel_event_stops_the_run_at_once(run_python: Callable[..., SandboxResult]) -> None:
    marker = "63.4692"
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    code = f"import os\nos.execv('/usr/bin/sleep', ['sleep', '{marker}'])"
    result = run_python(code, SandboxLimits(timeout_s=30), cancel=cancel)
    assert result.cancelled and not result.ok and not result.timed_out
    assert result.reason == "cancelled"
    assert 0.4 < result.duration_s < 3
    assert live_processes_with(marker) == []


def test_stdin_is_devnull(run_python: Callable[..., SandboxResult]) -> None:
    result = run_python("import sys\nprint(repr(sys.stdin.read()))")
    assert result.ok, result.stderr
    assert result.stdout.strip() == "''"


def test_output_is_capped_and_truncation_noted(run_python: Callable[..., SandboxResult]) -> None:
    result = run_python("print('y' * 1_000_000)", SandboxLimits(max_output_bytes=1000))
    assert result.ok
    assert result.stdout.startswith("y" * 1000)
    assert "truncated" in result.stdout
    assert len(result.stdout) < 1200


@pytest.mark.slow  # waits out a time limit
def test_output_flood_stays_bounded_until_timeout(run_python: Callable[..., SandboxResult]) -> None:
    code = "import os\nwhile True:\n    os.write(1, b'z' * 65536)\n    os.write(2, b'e' * 65536)"
    result = run_python(code, SandboxLimits(timeout_s=1.0, max_output_bytes=5000))
    assert result.timed_out
    assert len(result.stdout) < 5200 and len(result.stderr) < 5200
    assert "truncated" in result.stdout and "truncated" in result.stderr


def test_missing_interpreter_is_a_failed_result(run_python: Callable[..., SandboxResult]) -> None:
    result = run_python("print(1)", python="/nonexistent/python3")
    assert not result.ok
    assert result.exit_code is None
    assert "could not start" in result.reason


# --- extract_code -----------------------------------------------------------------------------------------


def test_extract_python_fence() -> None:
    text = "Here you go:\n```python\nprint(1)\nprint(2)\n```\nHope it helps."
    assert extract_code(text) == "print(1)\nprint(2)"


def test_extract_py_fence() -> None:
    assert extract_code("```py\nx = 1\n```") == "x = 1"


def test_extract_plain_fence() -> None:
    assert extract_code("Answer:\n```\nimport math\nprint(math.pi)\n```\n") == "import math\nprint(math.pi)"


def test_extract_no_fence_returns_stripped_text() -> None:
    assert extract_code("\n  print('bare')  \n\n") == "print('bare')"


def test_extract_unterminated_fence_takes_rest() -> None:
    text = "Sure:\n```python\ndef f(n):\n    return n * 2\nprint(f("
    assert extract_code(text) == "def f(n):\n    return n * 2\nprint(f("


def test_extract_prefers_python_block() -> None:
    text = "Run:\n```bash\npython main.py\n```\nOutput:\n```\n42\n```\nCode:\n```python\nprint(42)\n```\n"
    assert extract_code(text) == "print(42)"


def test_extract_first_block_when_no_python_tag() -> None:
    assert extract_code("```\nfirst()\n```\n```\nsecond()\n```") == "first()"
    assert extract_code("```text\nnot code\n```") == "not code"


def test_extract_keeps_indentation_and_inner_backticks() -> None:
    text = '````python\nif True:\n    s = """```"""\n```\n````'
    assert extract_code(text) == 'if True:\n    s = """```"""\n```'


def test_extract_closing_fence_glued_to_last_line() -> None:
    assert extract_code("```python\nprint(3)```") == "print(3)"
