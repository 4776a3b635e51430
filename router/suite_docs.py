"""The suite file field reference as Markdown, generated from the schema (docs/suites.md embeds it)."""

from __future__ import annotations

from pydantic import BaseModel

from ggroute.models.config_docs import markdown_reference as config_markdown_reference
from ggroute.router.suite import Case, Checks, Suite, Target

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("Top level", Suite),
    ("`defaults`", Target),
    ("`cases[]`", Case),
    ("`cases[].checks`", Checks),
]


def markdown_reference() -> str:
    return config_markdown_reference(SECTIONS)
