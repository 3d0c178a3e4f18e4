"""Where the run reads from and writes to: input, storage, output."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from qcraft_ray.config.base import MAY_CHANGE, Section
from qcraft_ray.config.iceberg import IcebergInput, IcebergTable
from qcraft_ray.languages import normalize_language

# Columns the output may be partitioned by: each takes values from a fixed set only.
Partition = Literal["language", "type", "source_language"]
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_CODE = re.compile(r"^[a-z]{2,3}(_[A-Z][a-z]{3})?$")


def parse_shard(value: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; ``ValueError`` otherwise."""
    m = _SHARD.match(value)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"a shard is 'i/n' with 0 <= i < n, e.g. '0/4'; got {value!r}")
    return int(m.group(1)), int(m.group(2))


class InputConfig(Section):
    paths: list[str] = Field(
        default_factory=list,
        description="Parquet files, folders, globs or URIs (s3://, gs://, ...) to read. "
        "Folders are searched recursively for *.parquet. Either this or input.iceberg.",
    )
    iceberg: IcebergInput | None = Field(
        None,
        description="Read an Iceberg table's data files instead of paths (a pinned "
        "snapshot; tables with delete files are refused).",
    )
    shard: str | None = Field(
        None,
        description="'i/n': this job's share of the input, one of n. The input's read "
        "units are cut into n contiguous runs balanced by rows, the same for every job "
        "given the same input, so n jobs cover it exactly once with no coordination. "
        "Also --shard i/n.",
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
        bad = sorted(code for code in v if not _CODE.match(code))
        if bad:
            raise ValueError(f"language_map codes must look like 'zho_Hans' or 'en'; got {bad}")
        return {code: normalize_language(lang) for code, lang in v.items()}

    @field_validator("shard")
    @classmethod
    def _check_shard(cls, v: str | None) -> str | None:
        if v is None:
            return None
        i, n = parse_shard(v)
        return f"{i}/{n}"

    @model_validator(mode="after")
    def _one_source(self) -> InputConfig:
        if bool(self.paths) == (self.iceberg is not None):
            raise ValueError("set exactly one of input.paths and input.iceberg")
        return self

    @property
    def shard_of(self) -> tuple[int, int] | None:
        """``(index, count)`` of this job's shard, or None for the whole input."""
        return parse_shard(self.shard) if self.shard else None


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
        description="Output folder or URI. Data files go at its top level (or in "
        "partition folders), rejected rows under _rejected/, the run report in "
        "_report.json."
    )
    partition_by: list[Partition] = Field(
        default_factory=list,
        description="Hive-style partition folders, in this order, e.g. [language, type] "
        "gives language=japanese/type=query/part-*.parquet; _rejected/ is then "
        "partitioned by reason. Values come from fixed sets, never raw data: a "
        "source_language outside the known codes goes to __HIVE_DEFAULT_PARTITION__, as "
        "do nulls.",
    )
    target_file_mb: float = Field(
        256.0,
        gt=0,
        description="Largest data file, in MB of compressed Parquet: a write task's rows "
        "of one partition go to one file unless it would be larger (or hold more than "
        "max_rows_per_file rows).",
        json_schema_extra=MAY_CHANGE,
    )
    iceberg: IcebergTable | None = Field(
        None,
        description="Add the run's data files to this Iceberg table in one commit once "
        "the run is complete and reconciled (the table is created, with the output "
        "schema and partition_by as its partition spec, when missing). Exactly once: "
        "the snapshot records the run id.",
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
        description="Rows gathered before a write task commits (the last one of a run "
        "may be smaller); times the number of types when partition_by has type, so each "
        "type's file still gets about this many. Larger means fewer files; a crash "
        "re-generates at most this many rows per write in flight.",
        json_schema_extra=MAY_CHANGE,
    )
    checkpoint_every: int = Field(
        2000,
        ge=0,
        description="While a run goes, the driver writes a checkpoint of the committed "
        "manifests (_checkpoints/: their counters and work units, merged) once this many "
        "were committed since the last; a resume, the finalise and qcraft report read it "
        "and only the manifests after it. With output.iceberg, each checkpoint also stages "
        "an Iceberg manifest of its new data files (_iceberg/), which the run's commit adds "
        "as it is. 0: only the finalise writes one.",
        json_schema_extra=MAY_CHANGE,
    )
    checkpoint_poll_s: float = Field(
        30.0,
        gt=0,
        description="How often the driver counts the manifests committed since the last "
        "checkpoint (a listing of _manifests/).",
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

    @field_validator("partition_by")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"output.partition_by has duplicates: {v}")
        return v
