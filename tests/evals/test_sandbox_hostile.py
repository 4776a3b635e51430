"""Hostile generated code under the bwrap sandbox: each attempt fails, and nothing outside changes.

Each test runs real code in the real sandbox and then checks the outside from this process: files, processes
(from /proc), listening sockets. None of these would pass with `--unsafe-no-sandbox` (see the last tests).
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ggroute.core.errors import SandboxUnavailableError
from ggroute.evals import bwrap
from ggroute.evals.pids_cgroup import process_cap
from ggroute.evals.sandbox import Isolation, SandboxLimits, check_isolation, run_python
from tests.evals.processes import live_processes_with

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="sandbox is Linux-only")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def marker() -> str:
    """A number no other process on the machine has on its command line (used as a sleep duration)."""
    return f"{int(time.time()) % 1000 + 100}.{uuid.uuid4().int % 10**6:06d}"


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    """A process of ours outside the sandbox that hostile code will try to kill."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def test_cannot_read_system_or_user_files() -> None:
    home = os.path.expanduser("~")
    code = textwrap.dedent(
        f"""
        import os
        for path in ("/etc/passwd", "/etc/shadow", {home!r} + "/.ssh/id_rsa", {home!r} + "/.bash_history"):
            try:
                open(path).read()
                print("READ", path)
            except OSError as exc:
                print("denied", path, type(exc).__name__)
        for path in ({home!r}, "/home", "/root", {str(REPO)!r}):
            print("listing", path, sorted(os.listdir(path)) if os.path.isdir(path) else None)
        """
    )
    result = run_python(code)
    assert result.ok, result
    assert "READ" not in result.stdout
    # The only thing a home directory may show is the way down to the (read-only) Python runtime, when the
    # interpreter lives there (pyenv): nothing else of it, and nothing of the checkout.
    runtime = Path(sys.executable).resolve().parents[1]
    for line in result.stdout.splitlines():
        if line.startswith("listing "):
            _, path, listing = line.split(" ", 2)
            shown = ast.literal_eval(listing) or []
            allowed = {runtime.relative_to(path).parts[0]} if runtime.is_relative_to(path) else set()
            assert set(shown) <= allowed, line


def test_reading_ssh_keys_finds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real key file on the host, at a path the code is told about.
    secret = tmp_path / ".ssh" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text("PRIVATE KEY MATERIAL")
    code = f"print(open({str(secret)!r}).read())"
    result = run_python(code)
    assert not result.ok
    assert "PRIVATE KEY MATERIAL" not in result.stdout
    assert "FileNotFoundError" in result.stderr


def test_writes_outside_the_tmpfs_fail_and_leave_nothing(tmp_path: Path) -> None:
    outside = tmp_path / "somewhere" / "FILE"
    in_checkout = REPO / f"PWNED-{uuid.uuid4().hex[:8]}"
    host_tmp = Path("/tmp") / f"ggroute-escape-{uuid.uuid4().hex[:8]}"
    code = textwrap.dedent(
        f"""
        import os
        for path in ({str(outside)!r}, {str(in_checkout)!r}, "/usr/PWNED", "/PWNED"):
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "w").write("x")
                print("wrote", path)
            except OSError as exc:
                print("refused", path, type(exc).__name__)
        # /tmp inside is the sandbox's own tmpfs: writing works there, and must not reach the host's /tmp.
        open({str(host_tmp)!r}, "w").write("x")
        print("private tmp ok")
        """
    )
    result = run_python(code)
    assert result.ok, result
    assert "private tmp ok" in result.stdout
    assert "wrote /usr/PWNED" not in result.stdout and "wrote /PWNED" not in result.stdout
    for path in (outside, in_checkout, host_tmp, Path("/usr/PWNED"), Path("/PWNED")):
        assert not path.exists(), path


def test_no_network_loopback_or_dns() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = textwrap.dedent(
        f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2)
            print("CONNECTED")
        except OSError as exc:
            print("tcp refused", type(exc).__name__)
        try:
            print("RESOLVED", socket.getaddrinfo("pypi.org", 443))
        except OSError as exc:
            print("dns failed", type(exc).__name__)
        """
    )
    try:
        result = run_python(code)
        with pytest.raises(BlockingIOError):  # nobody connected to our listener
            listener.accept()
    finally:
        listener.close()
    assert result.ok, result
    assert "tcp refused" in result.stdout and "dns failed" in result.stdout


def test_cannot_signal_the_parent_or_any_outside_process(victim: subprocess.Popen[bytes]) -> None:
    code = textwrap.dedent(
        f"""
        import os, signal
        for pid in (os.getppid(), {os.getpid()}, {victim.pid}):
            try:
                os.kill(pid, signal.SIGKILL)
                print("signalled", pid)
            except OSError as exc:
                print("refused", pid, type(exc).__name__)
        print("sees", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        """
    )
    result = run_python(code)
    assert victim.poll() is None  # still running
    assert f"signalled {victim.pid}" not in result.stdout
    seen = [int(pid) for pid in result.stdout.split("sees [")[1].rstrip("]\n").split(", ")]
    assert victim.pid not in seen and os.getpid() not in seen
    assert max(seen) < 10  # its own PID namespace: only the sandbox's few processes


def test_setsid_daemons_and_double_forks_die_with_the_sandbox(marker: str) -> None:
    code = textwrap.dedent(
        f"""
        import os, subprocess
        subprocess.Popen(["setsid", "sleep", "{marker}"])
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv("/usr/bin/sleep", ["sleep", "{marker}"])
            os._exit(0)
        print("spawned", flush=True)
        """
    )
    result = run_python(code, SandboxLimits(timeout_s=10))
    assert result.ok, result
    time.sleep(0.2)
    assert live_processes_with(marker) == []


@pytest.mark.slow  # waits out a time limit
def test_fork_bomb_is_capped_and_leaves_nothing(marker: str) -> None:
    if process_cap() is None:
        pytest.skip("running as root without a writable pids cgroup: nothing here would cap a real fork bomb")
    bomb = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n"
    # exec first so that every process of the bomb carries the marker on its command line
    code = f"import os, sys\nos.execv(sys.executable, [sys.executable, '-S', '-c', {bomb!r}, '{marker}'])"
    result = run_python(code, SandboxLimits(timeout_s=3.0, max_processes=64))
    assert not result.ok
    assert result.duration_s < 15
    assert subprocess.run(["true"], check=False).returncode == 0  # this machine can still start processes
    time.sleep(0.2)
    assert live_processes_with(marker) == []


def test_output_flood_of_100_mb_is_bounded() -> None:
    code = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(100):\n    sys.stdout.write(chunk)\nprint('done')"
    result = run_python(code, SandboxLimits(timeout_s=30, max_output_bytes=10_000))
    assert result.ok, result.reason
    assert len(result.stdout) < 11_000
    assert "truncated" in result.stdout


def test_raising_rlimits_is_refused() -> None:
    code = textwrap.dedent(
        """
        import resource
        for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE"):
            limit = getattr(resource, name)
            try:
                resource.setrlimit(limit, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                print("RAISED", name)
            except (ValueError, OSError) as exc:
                print("refused", name, type(exc).__name__)
        bytearray(1_500_000_000)
        print("ALLOCATED")
        """
    )
    result = run_python(code, SandboxLimits(memory_mb=256))
    assert "RAISED" not in result.stdout
    assert "ALLOCATED" not in result.stdout
    assert "MemoryError" in result.stderr


def test_filling_the_tmpfs_stops_at_its_size() -> None:
    if bwrap.require_bwrap().version < (0, 8, 0):
        pytest.skip("bwrap < 0.8 has no --size for the tmpfs")
    code = textwrap.dedent(
        """
        chunk = b"x" * (1 << 20)
        written = 0
        try:
            for i in range(200):
                with open(f"part{i}", "wb") as fh:  # many files: each stays under the file size limit
                    fh.write(chunk)
                written += 1
        except OSError as exc:
            print("stopped", type(exc).__name__, exc.errno)
        print("written", written)
        """
    )
    result = run_python(code, SandboxLimits(tmpfs_mb=16, file_size_mb=4))
    assert "stopped" in result.stdout, result
    assert int(result.stdout.split("written ")[1]) < 17


def test_missing_bwrap_is_refused_with_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    bwrap.find_bwrap.cache_clear()
    try:
        with pytest.raises(SandboxUnavailableError) as raised:
            check_isolation(Isolation.BWRAP)
        with pytest.raises(SandboxUnavailableError):
            run_python("print(1)")
        check_isolation(Isolation.NONE)  # the explicit opt-out needs no bwrap
        assert run_python("print(1)", isolation=Isolation.NONE).ok
    finally:
        monkeypatch.undo()
        bwrap.find_bwrap.cache_clear()
    message = str(raised.value)
    assert "not installed" in message
    assert "apt-get install bubblewrap" in message and "--unsafe-no-sandbox" in message


def test_unsafe_mode_really_is_unisolated(tmp_path: Path) -> None:
    """The contrast that proves the tests above test the sandbox: without it the same code gets through."""
    target = tmp_path / "written-from-unsafe"
    result = run_python(f"open({str(target)!r}, 'w').write('x'); print(len(open('/etc/passwd').read()) > 0)",
                        isolation=Isolation.NONE)
    assert result.ok, result
    assert target.exists()
    assert result.stdout.strip() == "True"
