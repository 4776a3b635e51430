"""The suite file field reference as Markdown, generated from the schema (docs/suites.md embeds it)."""

from __future__ import annotations

from pydantic import BaseModel

from ggroute.models.config_docs import _constraints, _default
from ggroute.router.suite import Case, Checks, Suite, Target

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("Top level", Suite),
    ("`defaults`", Target),
    ("`cases[]`", Case),
    ("`cases[].checks`", Checks),
]


def _is_model(factory: object) -> bool:
    return isinstance(factory, type) and issubclass(factory, BaseModel)


def markdown_reference() -> str:
    out: list[str] = []
    for title, model in SECTIONS:
        out += [f"### {title}", "", "| field | default | constraints | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            description = (field.description or "").replace("|", "\\|")
            default = "`{}`" if _is_model(field.default_factory) else _default(field)
            out.append(f"| `{name}` | {default} | {_constraints(field)} | {description} |")
        out.append("")
    return "\n".join(out)
