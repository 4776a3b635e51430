"""Run LLM-generated Python in a throwaway sandbox: bwrap namespaces, rlimits, a wall-clock timeout, a clean env.

By default (`Isolation.BWRAP`) the code runs under bubblewrap (see evals/bwrap.py): it sees only /usr and the
Python runtime, read-only, plus a private tmpfs; it has no network, cannot see or signal any process outside,
and everything it starts dies with the sandbox. As root, a pids cgroup caps its process count (RLIMIT_NPROC
does not apply to root). When bwrap is not usable, `run_python` raises SandboxUnavailableError: generated code
is never run unisolated by surprise.

`Isolation.NONE` (`--unsafe-no-sandbox`) is the old containment only: rlimits, the timeout, a scrubbed env and a
process-group kill. It contains honest mistakes (infinite loops, memory hogs, huge writes), not hostile code:
the code can read and write anything the user can, use the network, and a process that calls setsid() escapes.
"""

from __future__ import annotations

import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from ggroute.evals.bwrap import SANDBOX_DIR, Bwrap, require_bwrap
from ggroute.evals.pids_cgroup import PidsCgroup, process_cap

# Interpreter flags. -S: no site (stdlib only, no site-packages); -s: no user site; -B: no .pyc files.
# Deliberately not -I/-E: they make the interpreter ignore PYTHON* variables, which would silently drop
# PYTHONHASHSEED=0 and PYTHONDONTWRITEBYTECODE=1 below. The environment is built from scratch here, so -E
# would not isolate anything further.
_PYTHON_FLAGS = ("-S", "-s", "-B")
_SCRIPT_NAME = "main.py"
# Inside the sandbox: lower RLIMIT_NPROC (never above the hard limit), then exec the real command.
_NPROC_THEN_EXEC = (
    "import os, resource, sys\n"
    "n = int(sys.argv[1]); hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]\n"
    "n = n if hard == resource.RLIM_INFINITY else min(n, hard)\n"
    "resource.setrlimit(resource.RLIMIT_NPROC, (n, n))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)
_READ_CHUNK = 65536
_POLL_S = 0.05  # how often the read loop checks whether the main child has exited
_DRAIN_GRACE_S = 1.0  # after the group is killed, how long to wait for pipes to reach EOF
_REAP_TIMEOUT_S = 5.0
_KILL_DEADLINE_S = 3.0  # how long to keep re-sending SIGKILL to a group that still has live members


class Isolation(Enum):
    BWRAP = "bwrap"  # namespaces; refused when bwrap is not usable
    NONE = "none"  # --unsafe-no-sandbox: rlimits and timeout only


UNSAFE_WARNING = (
    "warning: --unsafe-no-sandbox: generated code runs WITHOUT isolation (it can read and write your files, "
    "use the network and signal your processes); only rlimits and a timeout apply"
)


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock
    cpu_s: int = 10  # RLIMIT_CPU (SIGXCPU at cpu_s, SIGKILL one second later)
    memory_mb: int = 512  # RLIMIT_AS
    file_size_mb: int = 16  # RLIMIT_FSIZE
    max_processes: int = 64  # RLIMIT_NPROC: counts every process of the uid and is not enforced for root
    max_output_bytes: int = 64_000  # per stream; the rest is read and dropped, with a note appended
    tmpfs_mb: int = 64  # size of the sandbox's only writable place (bwrap >= 0.8)


@dataclass(frozen=True)
class SandboxResult:
    ok: bool  # exit code 0 and not timed out
    exit_code: int | None  # None when timed out; negative N when killed by signal N
    timed_out: bool
    stdout: str
    stderr: str
    duration_s: float
    reason: str  # "" when ok, else a one-line human reason
    cancelled: bool = False  # stopped because the caller's cancel event was set (Ctrl+C, SIGTERM)


@dataclass
class _Capture:
    """Keeps the first `limit` bytes of a stream and counts the rest."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def feed(self, chunk: bytes) -> None:
        room = max(self.limit - len(self.data), 0)
        self.data += chunk[:room]
        self.dropped += max(len(chunk) - room, 0)

    def text(self) -> str:
        out = self.data.decode("utf-8", errors="replace")
        if self.dropped:
            out += f"\n[... output truncated: {self.dropped} more bytes dropped]"
        return out


def run_python(
    code: str,
    limits: SandboxLimits = SandboxLimits(),
    *,
    python: str = sys.executable,
    isolation: Isolation = Isolation.BWRAP,
    cancel: threading.Event | None = None,
) -> SandboxResult:
    """Run `code` as a script under `limits`; never raises for bad code.

    Setting `cancel` kills the run at once (within one poll interval) with `cancelled=True`.
    Raises SandboxUnavailableError when `isolation` is BWRAP and bwrap cannot be used here.
    """
    if isolation is Isolation.BWRAP:
        return _run_isolated(code, limits, python, require_bwrap(), cancel)
    workdir = tempfile.mkdtemp(prefix="ggroute-sandbox-")
    try:
        script = os.path.join(workdir, _SCRIPT_NAME)
        with open(script, "w", encoding="utf-8", errors="replace") as fh:
            fh.write(code)
        return _run_in(workdir, [python, *_PYTHON_FLAGS, script], limits, _limiter(limits), cancel=cancel)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check_isolation(isolation: Isolation) -> None:
    """Raise SandboxUnavailableError now, before any model loads, when `isolation` cannot be provided."""
    if isolation is Isolation.BWRAP:
        require_bwrap()


def describe_isolation(isolation: Isolation) -> str:
    """One line for reports: what contains generated code on this machine."""
    if isolation is Isolation.NONE:
        return "none (--unsafe-no-sandbox): rlimits and a timeout only"
    bwrap = require_bwrap()
    cap = process_cap() or "nothing but the timeout (root, and no writable pids cgroup)"
    return (f"bwrap {bwrap.version_text}: user, pid, net, ipc and uts namespaces, read-only runtime, private "
            f"tmpfs; process count capped by {cap}")


def _run_isolated(code: str, limits: SandboxLimits, python: str, bwrap: Bwrap,
                  cancel: threading.Event | None) -> SandboxResult:
    interpreter = os.path.realpath(python)
    if not os.access(interpreter, os.X_OK):  # else bwrap's own mount error would be the reason
        return SandboxResult(False, None, False, "", "", 0.0, f"could not start {python}: not an executable file")
    cgroup = PidsCgroup.create(limits.max_processes)
    # RLIMIT_NPROC is set inside (by _NPROC_THEN_EXEC), not on bwrap: on Linux >= 5.14 a user namespace made
    # while the limit is still the user's own counts only the sandbox's processes against it, whereas set
    # here it would count every process of the user and make bwrap's own clone() fail.
    limiter = _limiter(limits, nproc=False)

    def prepare_child() -> None:
        if isinstance(cgroup, PidsCgroup):
            cgroup.enter()
        limiter()

    with tempfile.TemporaryFile() as script:
        script.write(code.encode("utf-8", errors="replace"))
        script.seek(0)
        command = [interpreter, *_PYTHON_FLAGS, "-c", _NPROC_THEN_EXEC, str(limits.max_processes),
                   interpreter, *_PYTHON_FLAGS, f"{SANDBOX_DIR}/{_SCRIPT_NAME}"]
        argv = bwrap.argv(python, script.fileno(), limits.tmpfs_mb * 1024 * 1024, command)
        try:
            result = _run_in(SANDBOX_DIR, argv, limits, prepare_child, pass_fds=(script.fileno(),), cwd="/",
                             decode_exit=_signal_from_shell_code, cancel=cancel)
        finally:
            if isinstance(cgroup, PidsCgroup):
                left = cgroup.kill_all_and_remove()
                if left:
                    warnings.warn(left, RuntimeWarning, stacklevel=2)
    return result


def _child_env(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


def _set_limit(res: int, soft: int, hard: int | None = None) -> None:
    """Lower a resource limit; never asks for more than the current hard limit (an unprivileged error)."""
    _, cur_hard = resource.getrlimit(res)
    hard = soft if hard is None else hard
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    resource.setrlimit(res, (soft, hard))


def _limiter(limits: SandboxLimits, *, nproc: bool = True) -> Callable[[], None]:
    """Build the preexec_fn; it runs in the forked child after setsid(), before exec."""
    mib = 1024 * 1024

    def apply() -> None:
        _set_limit(resource.RLIMIT_CPU, limits.cpu_s, limits.cpu_s + 1)
        _set_limit(resource.RLIMIT_AS, limits.memory_mb * mib)
        _set_limit(resource.RLIMIT_FSIZE, limits.file_size_mb * mib)
        if nproc:
            _set_limit(resource.RLIMIT_NPROC, limits.max_processes)
        _set_limit(resource.RLIMIT_CORE, 0)

    return apply


def _signal_from_shell_code(code: int) -> int:
    """bwrap reports a command killed by signal N as exit code 128 + N; turn that back into -N."""
    return -(code - 128) if 128 < code <= 128 + 64 else code


def _run_in(workdir: str, argv: list[str], limits: SandboxLimits, prepare_child: Callable[[], None], *,
            pass_fds: tuple[int, ...] = (), cwd: str | None = None,
            decode_exit: Callable[[int], int] = lambda code: code,
            cancel: threading.Event | None = None) -> SandboxResult:
    """Start `argv` in its own session with `prepare_child` run before exec; `workdir` is the code's home."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=workdir if cwd is None else cwd,
            env=_child_env(workdir),
            pass_fds=pass_fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
            preexec_fn=prepare_child,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        reason = f"could not start {argv[0]}: {exc}".replace("\n", " ")
        return SandboxResult(False, None, False, "", "", time.monotonic() - start, reason)
    out, err = _Capture(limits.max_output_bytes), _Capture(limits.max_output_bytes)
    cancelled = cancel.is_set if cancel is not None else (lambda: False)
    timed_out = _supervise(proc, out, err, start + limits.timeout_s, cancelled)
    duration = time.monotonic() - start
    stderr = err.text()
    if cancelled():
        return SandboxResult(False, None, False, out.text(), stderr, duration, "cancelled", cancelled=True)
    exit_code = None if timed_out else decode_exit(proc.returncode)
    return SandboxResult(
        ok=exit_code == 0,
        exit_code=exit_code,
        timed_out=timed_out,
        stdout=out.text(),
        stderr=stderr,
        duration_s=duration,
        reason=_reason(exit_code, timed_out, stderr, limits),
    )


def _supervise(proc: subprocess.Popen[bytes], out: _Capture, err: _Capture, deadline: float,
               cancelled: Callable[[], bool]) -> bool:
    """Pump output until the child exits, the deadline passes or `cancelled()`, then kill its group and reap it.

    Returns True when the main child was still running at the deadline.
    """
    assert proc.stdout is not None and proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        _pump(sel, deadline, stop=lambda: proc.poll() is not None or cancelled())
        timed_out = False
        while not cancelled() and proc.poll() is None:  # pipes closed early, or the deadline passed
            if time.monotonic() >= deadline:
                timed_out = True
                break
            time.sleep(_POLL_S)
        # Always: background/forked descendants in the group would otherwise outlive the run.
        _kill_group(proc.pid)
        _reap(proc)
        _pump(sel, time.monotonic() + _DRAIN_GRACE_S, stop=lambda: False)
    proc.stdout.close()
    proc.stderr.close()
    return timed_out


def _pump(sel: selectors.BaseSelector, until: float, stop: Callable[[], bool]) -> None:
    """Read registered pipes into their captures until all reach EOF, `until` passes, or stop() is true."""
    while sel.get_map():
        remaining = until - time.monotonic()
        if remaining <= 0 or stop():
            return
        for key, _ in sel.select(min(remaining, _POLL_S)):
            chunk = os.read(key.fd, _READ_CHUNK)
            if chunk:
                key.data.feed(chunk)
            else:
                sel.unregister(key.fileobj)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=_REAP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _kill_group(pgid: int) -> None:
    """SIGKILL the group until no live (non-zombie) member is left; re-sending catches racing forks."""
    give_up = time.monotonic() + _KILL_DEADLINE_S
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        if not _live_group_members(pgid) or time.monotonic() > give_up:
            return
        time.sleep(0.01)


def _live_group_members(pgid: int) -> list[int]:
    """PIDs of processes in group `pgid` that are not zombies, from /proc (empty if /proc is unreadable)."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _signal_reason(signum: int) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if signum == signal.SIGXCPU:
        return "CPU time limit exceeded (SIGXCPU)"
    if signum == signal.SIGXFSZ:
        return "file size limit exceeded (SIGXFSZ)"
    if signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT):
        return f"killed by signal {name} (memory limit?)"
    return f"killed by signal {name}"


def _reason(exit_code: int | None, timed_out: bool, stderr: str, limits: SandboxLimits) -> str:
    if timed_out:
        return f"timed out after {float(limits.timeout_s)} s"
    if exit_code is None or exit_code == 0:
        return ""
    if exit_code < 0:
        return _signal_reason(-exit_code)
    last = _last_line(stderr)
    if "[Errno 27]" in stderr or "File too large" in stderr:  # Python ignores SIGXFSZ, so writes get EFBIG
        return f"file size limit exceeded (exit code {exit_code})"
    if last.startswith("MemoryError"):
        return f"memory limit exceeded: MemoryError (exit code {exit_code})"
    return f"exit code {exit_code}: {last}" if last else f"exit code {exit_code}"
