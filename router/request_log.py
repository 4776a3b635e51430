"""The request log: one JSON object per request, appended to a JSON-lines file.

Two kinds of failure, two answers. A `log_file` that cannot work (its folder is a regular file, it is a folder,
no permission to write it or to create it) is found by `problem()` without leaving anything behind, so a face can
refuse it before any model loads. A write that fails later (disk full, the folder removed meanwhile) never
hides the result it records: `write` logs a warning (stderr in the CLI) and returns False.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from ggroute.core.errors import ConfigError

log = logging.getLogger("ggroute.request_log")


def check_log_file(path: Path, config_source: Path) -> None:
    """ConfigError naming log_file, why it cannot be written and where to change it; nothing when it can be."""
    problem = RequestLog(path).problem()
    if problem is not None:
        raise ConfigError(f"log_file {path} cannot be written: {problem}; set log_file in {config_source} to a "
                          "file in a writable folder")


class RequestLog:
    """Appends one JSON object per request to a file; the folder is created on first write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lost = 0  # lines that could not be written
        self._lock = threading.Lock()
        self._last_warning: str | None = None

    def problem(self) -> str | None:
        """Why the log file cannot be written, found by looking (nothing is created); None when it can be."""
        try:
            return _problem(self.path)
        except OSError as exc:  # e.g. no permission to look inside a folder on the way
            return f"cannot inspect it: {_reason(exc)}"

    def write(self, record: dict[str, object]) -> bool:
        """Append `record` as one line; on failure warn (once per distinct reason) and return False."""
        line = json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}, ensure_ascii=False)
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # backslashreplace: a lone surrogate in a field is written as a \udcxx JSON escape, not an error
                with self.path.open("a", encoding="utf-8", errors="backslashreplace") as handle:
                    handle.write(line + "\n")
            except OSError as exc:
                self.lost += 1
                reason = _reason(exc)
                if reason != self._last_warning:
                    self._last_warning = reason
                    log.warning("cannot write the request log %s (%s); the result is not affected, its log "
                                "line is lost", self.path, reason)
                return False
        return True


def _problem(path: Path) -> str | None:
    if path.is_dir():
        return "it is a directory"
    if path.exists():
        if not os.access(path, os.W_OK):
            return "no permission to write it"
        return None
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a directory"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"no permission to create files in {folder}"
    try:  # os.access says yes to root everywhere, also on /proc and /sys: try an unnamed file, which leaves nothing
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"cannot create files in {folder}: {_reason(exc)}"
    return None


def _reason(exc: OSError) -> str:
    """`[Errno 28] No space left on device: 'x'` -> `No space left on device` (the path is named separately)."""
    if exc.errno is not None:
        return exc.strerror or errno.errorcode.get(exc.errno, str(exc))
    return str(exc)
