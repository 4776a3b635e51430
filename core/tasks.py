"""The one check every face applies to a task before anything loads."""

from __future__ import annotations

from ggroute.core.errors import UsageError


def validate_task(task: str) -> str:
    if not task or not task.strip():
        raise UsageError("the task is empty: give the text of the task (or '-' to read it from stdin)")
    return task
