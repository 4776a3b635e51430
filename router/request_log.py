"""The request log: one JSON object per request, appended to a JSON-lines file."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path


class RequestLog:
    """Appends one JSON object per request to a file; the folder is created on first write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, record: dict[str, object]) -> None:
        line = json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
