"""The config.json field reference as Markdown, generated from the pydantic schema (docs/config.md embeds it)."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ggroute.models.config import (
    AppConfig,
    CalibrationConfig,
    LoopGuardConfig,
    ModelConfig,
    RouteConfig,
    RouterConfig,
    ServerConfig,
)

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("Top level", AppConfig),
    ("`models.NAME`", ModelConfig),
    ("`models.NAME.loop_guard`", LoopGuardConfig),
    ("`router`", RouterConfig),
    ("`router.routes.NAME`", RouteConfig),
    ("`router.calibration`", CalibrationConfig),
    ("`server`", ServerConfig),
]


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    return f"`{value!r}`" if value is not None else "unset"


def _constraints(field: FieldInfo) -> str:
    parts: list[str] = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "min length")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return ", ".join(parts)


def _is_model(factory: object) -> bool:
    return isinstance(factory, type) and issubclass(factory, BaseModel)


def markdown_reference(sections: list[tuple[str, type[BaseModel]]] = SECTIONS) -> str:
    """One table per schema section; also used for the suite file reference (evals/suite_docs.py)."""
    out: list[str] = []
    for title, model in sections:
        out += [f"### {title}", "", "| field | default | constraints | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            description = (field.description or "").replace("|", "\\|")
            default = "`{}`" if _is_model(field.default_factory) else _default(field)
            out.append(f"| `{name}` | {default} | {_constraints(field)} | {description} |")
        out.append("")
    return "\n".join(out)
