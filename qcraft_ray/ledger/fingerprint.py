"""The fingerprint of a run: the settings and inputs that decide what it writes.

An attempt may resume a run only when its fingerprint equals the one in ``_run.json``.
Fields that change how fast a run goes but never what it writes are declared on the
config fields themselves (``json_schema_extra=MAY_CHANGE`` in :mod:`qcraft_ray.config`)
and left out, so a run can resume on a smaller or bigger cluster.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from qcraft_ray import schema as S
from qcraft_ray.config import MAY_CHANGE, RunConfig
from qcraft_ray.io.plan import InputPlan
from qcraft_ray.mode import Mode

# Bumped when the bookkeeping files change shape: a run started by another version is
# then refused (with this key among the differences) instead of misread.
BOOKKEEPING_VERSION = 2

# The Iceberg snapshot an input.iceberg run reads: pinned by its first attempt.
SNAPSHOT_KEY = "input.iceberg.snapshot"

# Dict-valued settings compared whole rather than key by key.
_WHOLE = ("input.language_map", "input.iceberg.catalog", "output.iceberg.catalog")


def may_change_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> set[str]:
    """Dotted keys of the fields (or sections) marked as allowed to change on resume."""
    keys: set[str] = set()
    for name, f in model.model_fields.items():
        key = f"{prefix}{name}"
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        if all(extra.get(k) == v for k, v in MAY_CHANGE.items()):
            keys.add(key)
        elif isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            keys |= may_change_keys(f.annotation, key + ".")
    return keys


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key not in _WHOLE:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def fingerprint(cfg: RunConfig, mode: Mode, plan: InputPlan) -> dict[str, Any]:
    """The settings and inputs that decide a run's output, as flat dotted keys."""
    free = may_change_keys()
    flat = _flatten(cfg.model_dump(mode="json"))
    keep = {k: v for k, v in flat.items() if not _under(k, free)}
    keep["mode"] = mode.value
    keep["input.files"] = [[f.display, f.num_rows] for f in plan.files]
    if plan.snapshot_id is not None:
        keep[SNAPSHOT_KEY] = plan.snapshot_id
    keep["bookkeeping"] = BOOKKEEPING_VERSION
    keep["schema_version"] = S.SCHEMA_VERSION  # a run's files never mix schema versions
    return keep


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every key whose value differs, except keys that may change
    (a fingerprint written before a setting became free still holds it)."""
    free = may_change_keys()
    keys = sorted(k for k in set(old) | set(new) if not _under(k, free))
    return [
        f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}"
        for k in keys
        if old.get(k) != new.get(k)
    ]


def _under(key: str, roots: set[str]) -> bool:
    return any(key == r or key.startswith(r + ".") for r in roots)
