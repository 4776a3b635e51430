"""The one check every face applies to a task before anything loads."""

from __future__ import annotations

from ggroute.core.errors import UsageError
from ggroute.core.text import repair_text


def validate_task(task: str) -> str:
    """The task, safe to encode as UTF-8 (core/text.py: invalid bytes become U+FFFD); empty is a UsageError."""
    if not task or not task.strip():
        raise UsageError("the task is empty: give the text of the task (or '-' to read it from stdin)")
    return repair_text(task)[0]
