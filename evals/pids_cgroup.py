"""A throwaway pids cgroup that caps how many processes one sandbox run may have, and kills them all at the end.

Why: RLIMIT_NPROC is not enforced for root (it counts processes per real uid, and a user namespace keeps the
caller's uid), so as root a fork bomb inside the sandbox could use up the machine's pids. The kernel's pids
controller caps the whole tree instead. Only root can create cgroups without delegation, which is exactly the
case the rlimit misses; for other users `PidsCgroup.create` returns None with the reason and the rlimit applies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_REMOVE_DEADLINE_S = 2.0


@dataclass(frozen=True)
class PidsCgroup:
    path: Path

    @classmethod
    def create(cls, max_processes: int) -> PidsCgroup | str:
        """A new cgroup limited to `max_processes` tasks, or the reason none could be made."""
        if os.geteuid() != 0:
            return "not root: RLIMIT_NPROC caps processes"
        parent = _pids_hierarchy()
        if parent is None:
            return "no writable pids cgroup controller"
        path = parent / f"ggroute-sandbox-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(max_processes), encoding="ascii")
        except OSError as exc:
            _rmdir_quietly(path)
            return f"cannot create a pids cgroup under {parent}: {exc.strerror or exc}"
        return cls(path)

    def enter(self) -> None:
        """Move the calling process into the cgroup; runs in the forked child before exec."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()), encoding="ascii")

    def members(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text(encoding="ascii")
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def kill_all_and_remove(self) -> str:
        """SIGKILL every member until none is left, then remove the cgroup; returns "" or what went wrong."""
        give_up = time.monotonic() + _REMOVE_DEADLINE_S
        while time.monotonic() < give_up:
            for pid in self.members():
                with contextlib.suppress(ProcessLookupError):  # already gone
                    os.kill(pid, signal.SIGKILL)
            try:
                self.path.rmdir()
                return ""
            except FileNotFoundError:
                return ""
            except OSError:  # EBUSY while killed members are still being reaped
                time.sleep(0.01)
        return f"sandbox cgroup {self.path} still has processes {self.members()} after SIGKILL"


def process_cap() -> str | None:
    """What caps a sandbox's process count on this machine: "pids cgroup", "RLIMIT_NPROC", or None (root
    without a writable pids controller: only the timeout and the PID namespace end a fork bomb)."""
    made = PidsCgroup.create(1)
    if isinstance(made, PidsCgroup):
        made.kill_all_and_remove()
        return "pids cgroup"
    return "RLIMIT_NPROC" if os.geteuid() != 0 else None


def _pids_hierarchy() -> Path | None:
    """The directory to create sandbox cgroups in: cgroup v1's pids hierarchy, or our own cgroup v2 node."""
    v1 = _CGROUP_ROOT / "pids"
    if (v1 / "pids.max").exists() or (v1 / "cgroup.procs").exists():
        return v1 if os.access(v1, os.W_OK) else None
    own = _own_v2_cgroup()
    if own is None or not os.access(own, os.W_OK):
        return None
    control = own / "cgroup.subtree_control"
    try:
        if "pids" not in control.read_text(encoding="ascii").split():
            control.write_text("+pids", encoding="ascii")
    except OSError:
        return None
    return own


def _own_v2_cgroup() -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            candidate = _CGROUP_ROOT / line[3:].lstrip("/")
            if (candidate / "cgroup.controllers").exists():
                return candidate
    return None


def _rmdir_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):  # it was never created, or mkdir failed: nothing to clean up
        path.rmdir()
