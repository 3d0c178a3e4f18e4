"""The config reference table, generated from the pydantic models (README section)."""

from __future__ import annotations

import json
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from qcraft_ray.config import MAY_CHANGE, RunConfig


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return ""
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    return "`" + json.dumps(value) + "`"


def _rows(model: type[BaseModel], prefix: str, may_change: bool = False) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = _section(field.annotation)
        free = may_change or field.json_schema_extra == MAY_CHANGE
        if ann is not None:
            if field.default is None:  # an optional section: say so, then its keys
                rows.append(f"| `{key}` | `null` | {field.description} |")
            rows.extend(_rows(ann, key + ".", free))
            continue
        desc = (field.description or "").replace("|", "\\|")
        if free:
            desc += " *May change when resuming.*"
        rows.append(f"| `{key}` | {_default(field)} | {desc} |")
    return rows


def _section(ann: Any) -> type[BaseModel] | None:
    """The config section a field holds (``Section | None`` included), if any."""
    for t in (ann, *typing.get_args(ann)):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def markdown() -> str:
    head = ["| key | default | meaning |", "| --- | --- | --- |"]
    return "\n".join(head + _rows(RunConfig, "")) + "\n"
