"""The bubblewrap (bwrap) command line that isolates generated code, and whether bwrap works on this machine.

Inside: new user (uid/gid 65534), PID, network, IPC, UTS and (when possible) cgroup namespaces; its own /proc
and a minimal /dev; /usr, the Python runtime and /etc/ld.so.cache read-only; one private tmpfs at /tmp, the
only writable place, holding the script; everything else (home, /etc, the project checkout, other users'
files) is simply not there. `--die-with-parent` and the PID namespace end every process started inside when
the sandbox ends; `--new-session` keeps code from writing to the caller's terminal.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from ggroute.core.errors import SandboxUnavailableError

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; Fedora: sudo dnf install bubblewrap), "
    "or pass --unsafe-no-sandbox to run generated code without isolation"
)
SANDBOX_DIR = "/tmp"  # the tmpfs, inside the sandbox
SANDBOX_UID = 65534  # "nobody"
_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Bwrap:
    path: str
    version: tuple[int, ...]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def argv(self, python: str, script_fd: int, tmpfs_bytes: int, command: list[str]) -> list[str]:
        """bwrap's command line for `command`, with the script copied from `script_fd` into the tmpfs."""
        recent = self.version >= (0, 8, 0)  # --size and --disable-userns
        argv = [
            self.path,
            "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
            "--die-with-parent", "--new-session",
            *(["--disable-userns"] if recent else []),
            *_runtime_mounts(python),
            "--proc", "/proc", "--dev", "/dev",
            *(["--size", str(tmpfs_bytes)] if recent else []), "--tmpfs", SANDBOX_DIR,
            "--file", str(script_fd), f"{SANDBOX_DIR}/main.py",
            "--remount-ro", "/",
            "--chdir", SANDBOX_DIR,
            "--",
            *command,
        ]
        return argv


def _runtime_mounts(python: str) -> list[str]:
    """Read-only binds for /usr, the root-level links into it, and the interpreter's prefix when outside /usr."""
    mounts = ["--ro-bind", "/usr", "/usr"]
    for name in _ROOT_LINKS:
        path = f"/{name}"
        if os.path.islink(path):
            mounts += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            mounts += ["--ro-bind", path, path]
    mounts += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    if prefix != "/usr" and not prefix.startswith("/usr/"):
        mounts += ["--ro-bind", prefix, prefix]
    return mounts


@functools.cache
def find_bwrap() -> Bwrap | str:
    """bwrap when it is installed and can create the namespaces here, else the reason it cannot be used."""
    path = shutil.which("bwrap")
    if path is None:
        return "bwrap (bubblewrap) is not installed"
    try:
        interpreter = os.path.realpath(sys.executable)
        probe = subprocess.run(
            [path, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent",
             *_runtime_mounts(interpreter), "--", interpreter, "-S", "-c", "pass"],
            capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False)
        version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{path} could not be run: {exc}"
    if probe.returncode != 0:
        detail = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit code {probe.returncode}"
        hint = ""
        if "ermission" in detail or "not permitted" in detail:
            hint = ("; unprivileged user namespaces look disabled (sysctl kernel.unprivileged_userns_clone, "
                    "kernel.apparmor_restrict_unprivileged_userns)")
        return f"{path} failed to start Python in a sandbox here ({detail}){hint}"
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", version.stdout)
    numbers = tuple(int(part) for part in found.groups() if part is not None) if found else (0,)
    return Bwrap(path, numbers)


def require_bwrap() -> Bwrap:
    """bwrap, or SandboxUnavailableError saying why not and how to install it."""
    found = find_bwrap()
    if isinstance(found, str):
        raise SandboxUnavailableError(f"cannot run generated code in a sandbox: {found}; {INSTALL_HINT}")
    return found
