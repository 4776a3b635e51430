"""No traceback on any input, an unusable request log, and SIGTERM handled like Ctrl+C (issue 12, items 2 and 3).

Every test runs `ggroute` as a real process: the console entry point (ggroute.cli.app.main) is where stdin,
argv, the standard streams and the signal handlers are set up. The fast tests run it through
tests/cli/scripted_cli.py, the same entry point with the scripted fake backend (tests/fakes.py) in place of the
engine; the slow ones run the console script on the real small models.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ggroute.cli.exit_codes import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE
from tests.cli.scripted_cli import EVENTS_ENV, SCRIPT_ENV, SIGTERM_AT_FOOTER_ENV
from tests.conftest import SHIPPED, small_config

REPO = Path(__file__).resolve().parents[2]
TASK = "Say hello."
MARKER_ENV = "HARDENING_TEST_MARKER"  # every process a test starts inherits it: leftovers are found by it
SLOW_TOKENS = {"pieces": ["tok "], "repeat": True, "token_delay_s": 0.02}  # a scripted model that never ends


def _console_script() -> str:
    script = Path(sys.executable).parent / "ggroute"
    return str(script) if script.is_file() else (shutil.which("ggroute") or "ggroute")


@dataclass
class Running:
    """A ggroute process with stdout and stderr read in the background (so both can be watched while it runs)."""

    proc: subprocess.Popen[bytes]
    marker: str
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    readers: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        for pipe, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            reader = threading.Thread(target=_drain, args=(pipe, sink), daemon=True)
            reader.start()
            self.readers.append(reader)

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers catch up before deciding
                if check():
                    return
                pytest.fail(f"ggroute ended (rc={self.proc.returncode}) before {what}: {self.err[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout} s: {self.err[-2000:]}")
            time.sleep(0.02)

    def finish(self, timeout: float = 60) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ggroute did not exit within {timeout} s: {self.err[-2000:]}")
        for reader in self.readers:
            reader.join(timeout=5)
        return code

    def signal_and_time(self, signum: int, timeout: float = 30) -> float:
        """Send `signum`, wait for the exit; the seconds it took to exit."""
        assert self.proc.poll() is None, "ggroute ended before the signal could be sent"
        sent = time.monotonic()
        self.proc.send_signal(signum)
        self.finish(timeout)
        return time.monotonic() - sent


def _drain(pipe: object, sink: bytearray) -> None:
    fd = pipe.fileno()  # type: ignore[attr-defined]
    while chunk := os.read(fd, 65536):
        sink.extend(chunk)


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    """start(*args, script=None | {Script fields}, stdin=None | bytes | "open", real=False, prefix=(), env=None):
    ggroute ARGS as a process; `real`: the console script on the real models, else tests/cli/scripted_cli.py.
    stdin: None is /dev/null, bytes are written and closed, "open" a pipe left open; `prefix`: a command that
    runs it (setpriv); `env`: added variables. Killed at teardown if still running."""
    started: list[Running] = []

    def run(*args: str | bytes, script: dict[str, object] | None = None, stdin: bytes | str | None = None,
            real: bool = False, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
            **popen: object) -> Running:
        marker = uuid.uuid4().hex
        environ = {**os.environ, "COLUMNS": "300", MARKER_ENV: marker, **(env or {})}
        if script is not None:
            environ[SCRIPT_ENV] = json.dumps(script)
        command: list[str | bytes] = [*prefix, *([_console_script()] if real
                                                 else [sys.executable, "-m", "tests.cli.scripted_cli"])]
        proc = subprocess.Popen(
            [*command, *args], cwd=REPO, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, **popen,  # type: ignore[call-overload]
        )
        if isinstance(stdin, bytes):
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        running = Running(proc, marker)
        started.append(running)
        return running

    yield run
    for running in started:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()


def run_to_end(start: Callable[..., Running], *args: str | bytes, **kwargs: object) -> Running:
    running = start(*args, **kwargs)
    running.finish()
    return running


def assert_no_traceback(running: Running) -> None:
    assert "Traceback" not in running.err, running.err
    assert "Traceback" not in running.out, running.out


# --- processes: what /proc says ------------------------------------------------------------------------------


def handles_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler installed (SigCgt in /proc/PID/status): ggroute's main() runs."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


def _parent_of(stat: str) -> int:
    return int(stat.rsplit(")", 1)[1].split()[1])  # the fields after "(comm)": state, ppid, ...


def descendants(pid: int) -> list[int]:
    """Every process below `pid` now, read from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(_parent_of(stat.read_text()), []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def processes_with_marker(marker: str) -> list[int]:
    """Processes (zombies included) whose environment holds MARKER_ENV=marker: what a test's run left behind."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def assert_nothing_left(running: Running, seen: list[int]) -> None:
    """No process of the run is left: neither those seen below it while it ran (not even as zombies), nor
    any other that inherited its environment."""
    left = [pid for pid in seen if Path(f"/proc/{pid}").exists()] + processes_with_marker(running.marker)
    assert [(pid, _status(pid), _cmdline(pid)[:200], _stat(pid)) for pid in sorted(set(left))] == []


def _status(pid: int) -> str:
    """The process's state line in /proc (R running, S sleeping, Z zombie ...)."""
    try:
        return next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("State:"))
    except (OSError, StopIteration):
        return "gone"


# --- configs ---------------------------------------------------------------------------------------------------


@pytest.fixture
def config(write_config, tmp_path: Path) -> Path:
    """The small test config (coder and algorithm, no router), its log at tmp_path/requests.jsonl."""
    return write_config(small_config(log_file=str(tmp_path / "requests.jsonl")))


def log_records(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "requests.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def config_with_log(tmp_path: Path, log_file: str, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(small_config(log_file=log_file)), encoding="utf-8")
    return path


def random_bytes(n: int, seed: int = 12) -> bytes:
    return random.Random(seed).randbytes(n)


# --- bytes that are not UTF-8 ----------------------------------------------------------------------------------


def test_random_bytes_on_stdin_are_replaced_with_a_warning(start, config: Path, tmp_path: Path) -> None:
    data = b"Say hello. " + random_bytes(3000)
    run = run_to_end(start, "generate", "--model", "coder", "-", "-c", str(config), stdin=data)
    assert_no_traceback(run)
    assert run.proc.returncode == 0, run.err
    assert run.out == "Hello, world.\n"
    replaced = data.decode("utf-8", errors="replace").count("\ufffd")
    assert f"warning: stdin is not valid UTF-8: {replaced} invalid byte sequence(s) replaced with U+FFFD" in run.err
    assert [r["finish_reason"] for r in log_records(tmp_path)] == ["stop"]


def test_valid_utf8_on_stdin_gives_no_warning(start, config: Path) -> None:
    run = run_to_end(start, "generate", "--model", "coder", "-", "-c", str(config),
                     stdin="Grüße, 你好 — say hello.".encode())
    assert run.proc.returncode == 0, run.err
    assert "warning" not in run.err


def test_non_utf8_task_argument_is_replaced(start, config: Path) -> None:
    run = run_to_end(start, "generate", "--model", "coder", b"Say hello, caf\xe9 \xff\xfe.", "-c", str(config),
                     "--json")
    assert_no_traceback(run)
    assert run.proc.returncode == 0, run.err
    assert json.loads(run.out)["text"] == "Hello, world."
    assert "warning: the task argument is not valid UTF-8: 3 invalid byte sequence(s) replaced" in run.err


@pytest.mark.parametrize(("args", "message"), [
    (["generate", "--model", b"c\xffder", TASK], "error: unknown model 'c\\udcffder': the config defines"),
    (["generate", "--model", "coder", TASK, "-c", b"/nonexistent/\xff.json"],
     "error: /nonexistent/\\udcff.json: config file not found"),
    (["eval", "suite", b"/nonexistent/\xfe.suite.json"], "\\udcfe.suite.json"),
])
def test_non_utf8_names_and_paths_are_errors_not_tracebacks(start, config: Path, args: list[str | bytes],
                                                            message: str) -> None:
    if "-c" not in args:
        args = [*args, "-c", str(config)]
    run = run_to_end(start, *args)
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_USAGE, run.err
    assert message in run.err  # the undecodable byte shown as a backslash escape


@pytest.mark.parametrize("as_json", [False, True])
def test_text_with_lone_surrogates_is_printed_escaped(start, config: Path, tmp_path: Path, as_json: bool) -> None:
    script = {"pieces": ["bad \udcff", " and \ud800 too"]}
    run = run_to_end(start, "generate", "--model", "coder", TASK, "-c", str(config),
                     *(["--json"] if as_json else []), script=script)
    assert_no_traceback(run)
    assert run.proc.returncode == 0, run.err
    if as_json:
        assert json.loads(run.out)["text"] == "bad \udcff and \ud800 too"  # \udcff: a valid JSON escape
    else:
        assert run.out == "bad \\udcff and \\ud800 too\n"
    assert [r["finish_reason"] for r in log_records(tmp_path)] == ["stop"]


# --- the request log -------------------------------------------------------------------------------------------


def _unusable_log(tmp_path: Path, kind: str) -> tuple[str, str]:
    """(log_file, reason ggroute must give) for one way a log file cannot work."""
    if kind == "parent is a file":
        (tmp_path / "plain").write_text("x")
        return str(tmp_path / "plain" / "requests.jsonl"), f"{tmp_path / 'plain'} is not a directory"
    if kind == "ancestor is a file":
        (tmp_path / "plain").write_text("x")
        return str(tmp_path / "plain" / "logs" / "requests.jsonl"), f"{tmp_path / 'plain'} is not a directory"
    if kind == "is a directory":
        (tmp_path / "logs").mkdir()
        return str(tmp_path / "logs"), "it is a directory"
    if kind == "under /proc":  # as root, os.access allows it; only creating a file says no
        return "/proc/ggroute-nope/requests.jsonl", "cannot create files in /proc: No such file or directory"
    raise AssertionError(kind)


UNUSABLE_LOGS = ["parent is a file", "ancestor is a file", "is a directory",
                 *(["under /proc"] if Path("/proc/self").is_dir() else [])]


@pytest.mark.parametrize("kind", UNUSABLE_LOGS)
def test_config_check_refuses_an_unusable_log_file(start, tmp_path: Path, kind: str) -> None:
    log_file, reason = _unusable_log(tmp_path, kind)
    config = config_with_log(tmp_path, log_file)
    run = run_to_end(start, "config", "check", "-c", str(config))
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_USAGE, run.err
    assert f"error: log_file {log_file} cannot be written: {reason}" in " ".join(run.err.split())


@pytest.mark.parametrize("kind", UNUSABLE_LOGS)
def test_unusable_log_file_exits_2_before_any_model_loads(start, tmp_path: Path, kind: str) -> None:
    log_file, reason = _unusable_log(tmp_path, kind)
    config = config_with_log(tmp_path, log_file)
    events = tmp_path / "events.json"
    run = run_to_end(start, "generate", "--model", "coder", TASK, "-c", str(config),
                     env={EVENTS_ENV: str(events)})
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_USAGE, run.err
    assert run.err.strip() == (f"error: log_file {log_file} cannot be written: {reason}; set log_file in {config} "
                               "to a file in a writable folder")
    assert run.out == ""
    assert json.loads(events.read_text()) == []  # no model was loaded


def without_root_powers() -> tuple[str, ...]:
    """A command prefix under which folder permissions apply: as root, setpriv drops the capabilities that let
    root write anywhere (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH); as another user, nothing."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): cannot take away root's write permission")
    caps = "-dac_override,-dac_read_search"
    return ("setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}")


def test_log_file_in_a_folder_without_write_permission_exits_2(start, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    config = config_with_log(tmp_path, str(locked / "requests.jsonl"))
    events = tmp_path / "events.json"
    try:
        run = run_to_end(start, "generate", "--model", "coder", TASK, "-c", str(config),
                         env={EVENTS_ENV: str(events)}, prefix=without_root_powers())
    finally:
        locked.chmod(0o755)
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_USAGE, run.err
    assert run.err.strip() == (f"error: log_file {locked / 'requests.jsonl'} cannot be written: no permission to "
                               f"create files in {locked}; set log_file in {config} to a file in a writable folder")
    assert json.loads(events.read_text()) == []


def test_log_file_without_write_permission_exits_2(start, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    log.write_text("")
    log.chmod(0o444)
    config = config_with_log(tmp_path, str(log))
    run = run_to_end(start, "generate", "--model", "coder", TASK, "-c", str(config), prefix=without_root_powers())
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_USAGE, run.err
    assert f"error: log_file {log} cannot be written: no permission to write it;" in run.err
    assert run.out == ""


@pytest.mark.parametrize("command", [
    ["run", "--route", "coder", TASK],
    ["eval", "suite", "SUITE"],
])
def test_unusable_log_file_fails_every_generating_command_first(start, tmp_path: Path, command: list[str]) -> None:
    data = json.loads(json.dumps(SHIPPED))
    data["log_file"] = str(tmp_path)  # a directory
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data), encoding="utf-8")
    suite = tmp_path / "s.suite.json"
    suite.write_text(json.dumps({"name": "s", "phase": 2, "defaults": {"route": "coder"},
                                 "cases": [{"id": "a", "task": TASK, "checks": {"contains": "Hello"}}]}))
    args = [str(suite) if arg == "SUITE" else arg for arg in command]
    events = tmp_path / "events.json"
    run = run_to_end(start, *args, "-c", str(config), env={EVENTS_ENV: str(events)})
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_USAGE, run.err
    assert f"error: log_file {tmp_path} cannot be written: it is a directory" in run.err
    assert json.loads(events.read_text()) == []


@pytest.mark.parametrize("as_json", [False, True])
def test_a_log_write_that_fails_later_is_a_warning_and_keeps_the_result(start, tmp_path: Path,
                                                                         as_json: bool) -> None:
    config = config_with_log(tmp_path, "/dev/full")  # writable, but every write fails: ENOSPC, a full disk
    run = run_to_end(start, "generate", "--model", "coder", TASK, "-c", str(config),
                     *(["--json"] if as_json else []))
    assert_no_traceback(run)
    assert run.proc.returncode == 0, run.err
    assert "warning: cannot write the request log /dev/full (No space left on device); the result is not " \
           "affected" in run.err
    if as_json:
        assert json.loads(run.out)["text"] == "Hello, world."
    else:
        assert run.out == "Hello, world.\n"
        assert "finish=stop" in run.err  # the footer too


def test_log_folder_replaced_by_a_file_while_generating_is_a_warning(start, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    config = config_with_log(tmp_path, str(logs / "requests.jsonl"))
    script = {"pieces": ["one ", "two ", "three"], "token_delay_s": 0.5}
    run = start("generate", "--model", "coder", TASK, "-c", str(config), script=script)
    run.wait_for(lambda: bool(run.stdout), "streamed text")
    logs.mkdir(exist_ok=True)
    shutil.rmtree(logs)
    logs.write_text("not a folder")  # the log's folder is now a regular file
    assert run.finish() == 0, run.err
    assert_no_traceback(run)
    assert run.out == "one two three\n"
    assert f"warning: cannot write the request log {logs / 'requests.jsonl'} (" in run.err
    assert "finish=stop" in run.err


# --- signals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code", "said"), [
    (signal.SIGTERM, EXIT_TERMINATED, "terminated (SIGTERM): partial output kept above"),
    (signal.SIGINT, EXIT_INTERRUPTED, "interrupted: partial output kept above"),
])
def test_a_signal_during_generation_keeps_the_partial_output(start, config: Path, tmp_path: Path, signum: int,
                                                              code: int, said: str) -> None:
    run = start("generate", "--model", "coder", TASK, "--max-tokens", "100000", "-c", str(config),
                script=SLOW_TOKENS)
    run.wait_for(lambda: run.stdout.count(b"tok") >= 3, "streamed text")
    run.signal_and_time(signum)
    assert_no_traceback(run)
    assert run.proc.returncode == code, run.err
    streamed = run.out
    assert streamed.startswith("tok tok tok") and streamed.endswith("\n")
    assert "finish=cancelled" in run.err and said in run.err
    [record] = log_records(tmp_path)
    assert record["finish_reason"] == "cancelled"
    assert record["usage"]["completion_tokens"] == streamed.count("tok")  # type: ignore[index]


@pytest.mark.parametrize("command", [["generate", "--model", "coder"], ["run", "--route", "coder"]])
def test_a_signal_as_the_answer_ends_still_prints_its_footer(start, write_config, tmp_path: Path,
                                                              command: list[str]) -> None:
    data = json.loads(json.dumps(SHIPPED))  # a router section, for `run`
    data["log_file"] = str(tmp_path / "requests.jsonl")
    run = start(*command, TASK, "--max-tokens", "3", "-c", str(write_config(data)),
                script={"pieces": ["tok "], "repeat": True}, env={SIGTERM_AT_FOOTER_ENV: "1"})
    code = run.finish()
    assert_no_traceback(run)
    assert code == 0, run.err  # the answer was whole: it ended at max_tokens, not by the signal
    assert run.out.startswith("tok tok tok") and "finish=length" in run.err and "terminated" not in run.err
    [record] = log_records(tmp_path)
    assert record["finish_reason"] == "length"


def test_a_second_sigterm_stops_waiting(start, config: Path) -> None:
    # the scripted model sleeps 30 s before its first token (as an engine call that does not return): the first
    # SIGTERM asks the generation to stop, the second stops waiting for it
    run = start("generate", "--model", "coder", TASK, "-c", str(config),
                script={"pieces": ["late"], "token_delay_s": 30})
    run.wait_for(lambda: handles_sigterm(run.proc.pid), "signal handlers")
    time.sleep(1.5)  # config read, the scripted model loaded, waiting for its first token
    run.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert run.proc.poll() is None  # still waiting for the model
    seconds = run.signal_and_time(signal.SIGTERM)
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_TERMINATED, run.err
    assert seconds < 10


def test_sigterm_during_run_with_a_forced_route(start, tmp_path: Path) -> None:
    data = json.loads(json.dumps(SHIPPED))
    data["log_file"] = str(tmp_path / "requests.jsonl")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data), encoding="utf-8")
    run = start("run", "--route", "coder", TASK, "--max-tokens", "100000", "-c", str(config), script=SLOW_TOKENS)
    run.wait_for(lambda: b"tok" in run.stdout, "streamed text")
    run.signal_and_time(signal.SIGTERM)
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_TERMINATED, run.err
    assert "route=coder" in run.err and "finish=cancelled" in run.err
    [record] = log_records(tmp_path)
    assert record["finish_reason"] == "cancelled" and record["route"] == "coder"


def test_sigterm_during_a_suite_reports_the_cases_that_ran(start, config: Path, tmp_path: Path) -> None:
    suite = tmp_path / "long.suite.json"
    suite.write_text(json.dumps({
        "name": "long", "phase": 2, "defaults": {"model": "coder", "max_tokens": 100000},
        "cases": [{"id": "short", "task": TASK, "max_tokens": 3, "checks": {"contains": "tok"}},
                  {"id": "endless", "task": TASK, "checks": {"contains": "tok"}},
                  {"id": "never", "task": TASK, "checks": {"contains": "tok"}}]}), encoding="utf-8")
    run = start("eval", "suite", str(suite), "-c", str(config), "--json", script=SLOW_TOKENS)
    run.wait_for(lambda: len(log_records(tmp_path)) == 1, "the first case's log line")
    time.sleep(0.5)  # the endless case is generating now
    run.signal_and_time(signal.SIGTERM)
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_TERMINATED, run.err
    assert "interrupted: the report covers the cases that ran" in run.err
    payload = json.loads(run.out)
    assert [(c["id"], c["finish_reason"]) for c in payload["cases"]] == [("short", "length"),
                                                                        ("endless", "cancelled")]
    assert [r["finish_reason"] for r in log_records(tmp_path)] == ["length", "cancelled"]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="the sandbox runs generated code under bwrap")
def test_sigterm_during_a_sandboxed_check_ends_it_within_seconds(start, config: Path, tmp_path: Path) -> None:
    suite = tmp_path / "sleepy.suite.json"
    suite.write_text(json.dumps({
        "name": "sleepy", "phase": 3, "defaults": {"model": "coder"},
        "cases": [{"id": "sleeper", "task": "Write code", "checks": {"python": "assert True", "python_timeout_s": 60}},
                  {"id": "never", "task": "Write code", "checks": {"python": "assert True"}}]}), encoding="utf-8")
    script = {"pieces": ["```python\nimport time\ntime.sleep(30)\n```"]}  # the "generated" code sleeps 30 s
    run = start("eval", "suite", str(suite), "-c", str(config), "--json", script=script)
    run.wait_for(lambda: any("main.py" in _cmdline(pid) for pid in descendants(run.proc.pid)), "the sandboxed check")
    seen = descendants(run.proc.pid)
    seconds = run.signal_and_time(signal.SIGTERM)
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_TERMINATED, run.err
    [case] = json.loads(run.out)["cases"]  # the check was stopped, the next case never ran
    assert case["id"] == "sleeper" and not case["passed"]
    assert [c["detail"] for c in case["checks"] if c["name"] == "python"] == ["cancelled"]
    assert_nothing_left(run, seen)
    assert seconds < 3, f"took {seconds:.2f} s to stop"  # not the 30 s the check would have slept


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("command", [
    ["generate", "--model", "coder", "-"],
    ["run", "-"],
    ["route", "-"],
])
def test_sigterm_while_reading_the_task_from_stdin(start, tmp_path: Path, command: list[str]) -> None:
    data = json.loads(json.dumps(SHIPPED))
    data["log_file"] = str(tmp_path / "requests.jsonl")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data), encoding="utf-8")
    run = start(*command, "-c", str(config), stdin="open")
    run.wait_for(lambda: handles_sigterm(run.proc.pid), "signal handlers")
    time.sleep(0.5)  # blocked reading stdin
    seconds = run.signal_and_time(signal.SIGTERM)
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_TERMINATED, run.err
    assert seconds < 5
    assert not (tmp_path / "requests.jsonl").exists()  # nothing ran, nothing logged


# --- the real models -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("size", "code", "message"), [
    (300, 0, "finish="),
    (3000, 1, "error: prompt is "),  # the original report: 3000 random bytes ended in UnicodeEncodeError
])
def test_random_bytes_on_stdin_of_the_real_coder(start, config: Path, size: int, code: int, message: str) -> None:
    run = run_to_end(start, "generate", "--model", "coder", "-", "-c", str(config), stdin=random_bytes(size),
                     real=True)
    assert_no_traceback(run)
    assert run.proc.returncode == code, run.err
    assert "warning: stdin is not valid UTF-8" in run.err and message in run.err


@pytest.mark.slow
def test_non_utf8_task_argument_on_the_real_coder(start, config: Path, tmp_path: Path) -> None:
    run = run_to_end(start, "generate", "--model", "coder", b"Say hello to caf\xe9 \xff.", "-c", str(config),
                     "--json", real=True)
    assert_no_traceback(run)
    assert run.proc.returncode == 0, run.err
    assert json.loads(run.out)["finish_reason"] in ("stop", "length")
    assert [r["finish_reason"] for r in log_records(tmp_path)] == [json.loads(run.out)["finish_reason"]]


@pytest.mark.slow
def test_sigterm_stops_real_generation_like_ctrl_c(start, write_config, tmp_path: Path) -> None:
    data = small_config(log_file=str(tmp_path / "requests.jsonl"))
    data["models"]["coder"].update(context_size=4096, max_tokens=4000, timeout_s=600)  # type: ignore[index]
    config = write_config(data)
    task = "Write a very long and detailed story about a dragon who learns to code. Make it at least 3000 words."
    run = start("generate", "-m", "coder", task, "--max-tokens", "2000", "-c", str(config), real=True)
    run.wait_for(lambda: len(run.stdout) > 20, "streamed text")
    seen = descendants(run.proc.pid)
    seconds = run.signal_and_time(signal.SIGTERM)
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_TERMINATED, run.err
    assert len(run.out.strip()) > 20  # the partial answer stays on stdout
    assert "finish=cancelled" in run.err and "terminated (SIGTERM): partial output kept above" in run.err
    [record] = log_records(tmp_path)
    assert record["finish_reason"] == "cancelled"
    assert 0 < record["usage"]["completion_tokens"] < 2000  # type: ignore[operator]
    assert_nothing_left(run, seen)
    assert seconds < 5, f"took {seconds:.2f} s to stop"
    print(f"SIGTERM to exit: {seconds:.2f} s")


@pytest.mark.slow
def test_sigterm_during_bench_ends_its_child_process(start, config: Path) -> None:
    run = start("bench", "coder", "--repeat", "3", "--prompt-tokens", "16", "--gen-tokens", "400", "--json",
                "-c", str(config), real=True)
    run.wait_for(lambda: bool(descendants(run.proc.pid)), "the measuring child process")
    time.sleep(1.5)  # the child is loading or generating
    seen = descendants(run.proc.pid)
    assert seen
    seconds = run.signal_and_time(signal.SIGTERM)
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_TERMINATED, run.err
    assert json.loads(run.out)["interrupted"] is True
    assert_nothing_left(run, seen)
    assert seconds < 5, f"took {seconds:.2f} s to stop"
    print(f"SIGTERM to exit: {seconds:.2f} s")


@pytest.mark.slow
def test_sigterm_during_eval_routing(start, tmp_path: Path) -> None:
    data = json.loads(json.dumps(SHIPPED))
    data["log_file"] = str(tmp_path / "requests.jsonl")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data), encoding="utf-8")
    run = start("eval", "routing", str(REPO / "tests" / "data" / "routing_dev.jsonl"), "-c", str(config),
                real=True)
    time.sleep(4)  # the router model is loaded and routing the tasks
    seconds = run.signal_and_time(signal.SIGTERM)
    assert_no_traceback(run)
    assert run.proc.returncode == EXIT_TERMINATED, run.err
    assert seconds < 5, f"took {seconds:.2f} s to stop"


def _stat(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text()[:80]
    except OSError:
        return ""
