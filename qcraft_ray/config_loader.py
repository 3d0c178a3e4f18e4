"""Load a :class:`~qcraft_ray.config.RunConfig` from YAML with ``dotted.key=value`` overrides.

Override values parse as YAML (``[a,b]``, ``2``, ``null``). Unknown keys are errors that
name the key and list the keys that exist at that level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from qcraft_ray.config import RunConfig
from qcraft_ray.errors import ConfigError


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``dotted.key=value``; the value is YAML (``[a,b]``, ``2``, ``null``)."""
    if "=" not in item:
        raise ConfigError(f"--set expects dotted.key=value, got {item!r}")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set has an empty key: {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML: {e}") from e
    return parts, value


def _check_key(parts: list[str]) -> None:
    model: type[BaseModel] | None = RunConfig
    for i, part in enumerate(parts):
        if model is None:
            return  # inside a free-form dict (e.g. engine.kwargs)
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(
                f"unknown config key {'.'.join(parts)!r}: {where} has no {part!r}; "
                f"known keys there: {', '.join(sorted(fields))}"
            )
        ann = fields[part].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each ``dotted.key=value`` into a copy of ``data``; unknown keys are errors."""
    out = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        parts, value = parse_override(item)
        _check_key(parts)
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML config file, apply overrides, validate. Errors name the key."""
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    data = apply_overrides(data, overrides or [])
    try:
        return RunConfig.model_validate(data)
    except Exception as e:  # pydantic.ValidationError: keep its per-key lines
        raise ConfigError(f"invalid configuration ({path or 'no file'}):\n{e}") from e
