"""The base of every user-written JSON schema (config.json, suite files) and how its errors read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt field must never be ignored silently. Types are strict: "4096" is not
    an integer and true is not a number, as in the JSON the user wrote."""

    model_config = ConfigDict(extra="forbid", strict=True)


def format_validation_error(
    source: Path,
    exc: ValidationError,
    *,
    what: str,
    docs: str,
    locate: Callable[[list[int | str]], tuple[str, list[int | str]]] | None = None,
) -> str:
    """One line per problem: `field: message (got VALUE)`. `locate` may turn a location prefix into a label."""
    problems = []
    for err in exc.errors():
        where, loc = locate(list(err["loc"])) if locate else ("", list(err["loc"]))
        field = ".".join(str(part) for part in loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown key (check the spelling; see {docs} for the fields)"
        elif "input" in err and err["type"] != "missing" and not isinstance(err["input"], dict | list):
            message += f" (got {_as_json(err['input'])})"
        problems.append((f"{where}{field}", message))
    return format_problems(source, problems, what=what)


def format_problems(source: Path, problems: list[tuple[str, str]], *, what: str) -> str:
    """The heading and one `field: message` line per problem, as every schema error reads."""
    lines = [f"{source}: {len(problems)} problem(s) in {what}:"]
    lines += [f"  {field}: {message}" for field, message in problems]
    return "\n".join(lines)


def _as_json(value: object) -> str:
    """The value as the user wrote it in JSON (true, "4096"), not as Python shows it (True, '4096')."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
