"""Labeled routing tasks: JSON lines of {"task", "route"} and optionally "source" (the style a task is written in).

Every problem names the file and line: bad JSON, a repeated or unknown key, an empty task, a route the router does
not have, bytes that are not UTF-8. Lines end at "\n" only: JSON text may hold U+2028, U+0085 and other characters
that str.splitlines() would also split at.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from ggroute.core.errors import UsageError
from ggroute.core.files import JSONProblem, loads_strict, read_text
from ggroute.core.schema import StrictModel

CORPUS_SUFFIX = ".jsonl"


class LabeledTask(StrictModel):
    task: str = Field(min_length=1, description="The task text as a user would type it.")
    route: str = Field(description="The route it belongs to.")
    source: str | None = Field(None, description="The style it is written in (e.g. competitive, short).")

    @field_validator("task")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the task is empty")
        return value


def read_labeled(path: Path, known_routes: list[str]) -> list[LabeledTask]:
    lines = read_text(path, UsageError, "labeled file").split("\n")
    rows: list[LabeledTask] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = LabeledTask.model_validate(loads_strict(line))
        except JSONProblem as exc:
            raise UsageError(f"{path}:{number}: {exc.describe(with_line=False)}") from None
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
            raise UsageError(
                f"{path}:{number}: not a {{\"task\", \"route\"[, \"source\"]}} object: {problems}"
            ) from None
        if row.route not in known_routes:
            raise UsageError(f"{path}:{number}: route '{row.route}' is not one of {', '.join(known_routes)}")
        rows.append(row)
    if not rows:
        raise UsageError(f"{path}: no labeled tasks")
    return rows


def read_labeled_files(paths: list[Path], known_routes: list[str]) -> list[LabeledTask]:
    """Several files, or folders of *.jsonl files; a task without `source` takes its file's name."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob(f"*{CORPUS_SUFFIX}")) if path.is_dir() else [path]
    if not files:
        raise UsageError(f"no {CORPUS_SUFFIX} files in {', '.join(map(str, paths))}")
    rows: list[LabeledTask] = []
    for file in files:
        stem = file.name.removesuffix(CORPUS_SUFFIX)
        rows += [r if r.source else r.model_copy(update={"source": stem}) for r in read_labeled(file, known_routes)]
    return rows
