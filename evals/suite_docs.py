"""The suite file field reference as Markdown, generated from the schema (docs/suites.md embeds it)."""

from __future__ import annotations

from pydantic import BaseModel

from ggroute.evals.suite import Case, Checks, Suite, Target
from ggroute.models.config_docs import markdown_reference as config_markdown_reference

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("Top level", Suite),
    ("`defaults`", Target),
    ("`cases[]`", Case),
    ("`cases[].checks`", Checks),
]


def markdown_reference() -> str:
    return config_markdown_reference(SECTIONS)
