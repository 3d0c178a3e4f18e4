"""Iceberg tables: the output table a run commits to, or an input table it reads."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from qcraft_ray.config.base import Section

# Catalog properties that hold secrets: taken from the environment, never from config
# (config is copied into _run.json and _report.json).
_SECRET = re.compile(r"secret|password|token|credential|access-key", re.IGNORECASE)
_PASSWORD_IN_URI = re.compile(r"://[^/@:]+:[^/@]+@")
_TABLE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")


class IcebergTable(Section):
    catalog: dict[str, str] = Field(
        description="pyiceberg catalog properties, e.g. {type: sql, uri: "
        "'sqlite:////data/catalog.db', warehouse: 's3://lake/warehouse'} or {type: rest, "
        "uri: ...}. Secrets are refused here: set them in the environment "
        "(PYICEBERG_CATALOG__<NAME>__<KEY>, or AWS_* for S3). s3.endpoint and s3.region "
        "default to storage.*."
    )
    catalog_name: str = Field(
        "qcraft",
        description="The catalog's name: which PYICEBERG_CATALOG__<NAME>__* variables "
        "and .pyiceberg.yaml entry add to catalog.",
    )
    table: str = Field(description="'namespace.table' (namespaces may nest: 'a.b.table').")

    @field_validator("catalog")
    @classmethod
    def _no_secrets(cls, v: dict[str, str]) -> dict[str, str]:
        secret = sorted(
            k for k, val in v.items() if _SECRET.search(k) or _PASSWORD_IN_URI.search(str(val))
        )
        if secret:
            raise ValueError(
                f"catalog properties {secret} hold secrets and would be written to the "
                "run's bookkeeping; set them in the environment instead "
                "(PYICEBERG_CATALOG__<NAME>__<KEY>, or AWS_* variables for S3)"
            )
        return {str(k): str(val) for k, val in v.items()}

    @field_validator("table")
    @classmethod
    def _check_table(cls, v: str) -> str:
        if not _TABLE.match(v):
            raise ValueError(f"table must be 'namespace.table' (letters, digits, _); got {v!r}")
        return v

    @property
    def namespace(self) -> tuple[str, ...]:
        return tuple(self.table.split(".")[:-1])


class IcebergInput(IcebergTable):
    snapshot_id: int | None = Field(
        None,
        description="Read this snapshot. null: the table's current snapshot when the run "
        "starts, recorded in _run.json so a resumed run reads the same rows.",
    )
