"""Where the run reads from and writes to: input, storage, output."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from qcraft_ray.config.base import MAY_CHANGE, Section
from qcraft_ray.languages import normalize_language


class InputConfig(Section):
    paths: list[str] = Field(
        min_length=1,
        description="Parquet files, folders, globs or URIs (s3://, gs://, ...) to read. "
        "Folders are searched recursively for *.parquet.",
    )
    language: str | None = Field(
        None,
        description="Force one model language (e.g. 'japanese') for every row instead of "
        "reading it from the data. Must be one of the model's 21 languages.",
    )
    language_map: dict[str, str] = Field(
        default_factory=dict,
        description="Extra FineWeb2-style codes mapped to model languages, e.g. "
        "{zho_Hans: chinese}. Codes not mapped are rejected as unsupported_language.",
    )
    text_column: str = Field("text", description="Column holding the document text.")
    id_column: str = Field(
        "id",
        description="Column holding the document id. When absent or null, the id is "
        "'<file>#<row>' (stable for a given input).",
    )
    rows_per_task: int = Field(
        1000,
        ge=1,
        description="Documents per read task. Work is split by row ranges, not by files, "
        "so one large file still feeds every replica.",
    )

    @field_validator("language")
    @classmethod
    def _check_language(cls, v: str | None) -> str | None:
        return None if v is None else normalize_language(v)

    @field_validator("language_map")
    @classmethod
    def _check_map(cls, v: dict[str, str]) -> dict[str, str]:
        return {code: normalize_language(lang) for code, lang in v.items()}


class StorageConfig(Section):
    endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint. Default: AWS_ENDPOINT_URL_S3 or "
        "AWS_ENDPOINT_URL from the environment, else AWS itself.",
    )
    region: str | None = Field(
        None, description="S3 region. Default: AWS_REGION / AWS_DEFAULT_REGION."
    )
    anonymous: bool = Field(False, description="Access object storage without credentials.")
    attempts: int = Field(
        8,
        ge=1,
        description="Tries per file read, write or commit before the run fails "
        "(retried on I/O errors, e.g. a short storage outage).",
    )
    retry_max_backoff_s: float = Field(
        30.0,
        gt=0,
        description="Longest wait between two tries (waits double from 1 s).",
    )


class OutputConfig(Section):
    path: str = Field(
        description="Output folder or URI. Data files go at its top level, "
        "rejected rows under _rejected/, the run report in _report.json."
    )
    if_exists: Literal["resume", "overwrite", "error"] = Field(
        "resume",
        description="When output.path already holds a run: 'resume' continues it (the "
        "same config only; a finished run is left as is), 'overwrite' deletes it and "
        "starts over, 'error' refuses.",
        json_schema_extra=MAY_CHANGE,
    )
    drop_none: bool = Field(
        False,
        description="Drop rows whose output is NONE from the data files (they are then "
        "recorded in _rejected/ with reason none_dropped).",
    )
    max_rows_per_file: int = Field(
        100_000, ge=1, description="Upper bound on rows in one output Parquet file."
    )
    min_rows_per_file: int = Field(
        20_000,
        ge=1,
        description="Rows gathered before a write task commits a file (the last file of "
        "a run may be smaller). Larger means fewer files; a crash re-generates at most "
        "this many rows per write in flight.",
        json_schema_extra=MAY_CHANGE,
    )
    lease_ttl_s: float = Field(
        120.0,
        gt=0,
        description="A running job holds output.path through a lease (_lease.json) that "
        "it renews every quarter of this; another job on the same path is refused while "
        "the lease is live. A job whose driver died is taken over once its lease expires "
        "(at once from the same host).",
        json_schema_extra=MAY_CHANGE,
    )
    compression: Literal["zstd", "snappy", "gzip", "none"] = Field(
        "zstd", description="Parquet compression codec."
    )
