"""What every config section shares."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

DEFAULT_MODEL = "hotchpotch/query-crafter-multilingual"

# Marks a field (or a whole section) that may differ between attempts of one run: it
# changes how fast a run goes, never what it writes (see qcraft_ray.ledger.fingerprint).
MAY_CHANGE: dict[str, Any] = {"may_change_on_resume": True}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
