"""Add a finished run's data files to an Iceberg table, exactly once.

Called by finalise once the run reconciles and before ``_SUCCESS``. The table is
created when missing (the output schema; ``partition_by`` as identity partitions). The
files are added in one commit whose snapshot carries the run id
(:data:`RUN_ID_PROPERTY`): a run that crashed after its commit and before ``_SUCCESS``
finds that snapshot when it resumes and adds nothing; pyiceberg also refuses files the
table already references. Another run (another slice or shard of the corpus) appends
its own commit. A commit that loses a race with another writer is retried on the
refreshed table. The manifests the checkpoint writer staged while the run went are
added as they are (:mod:`qcraft_ray.lake.staged`); the footers of the files after them
are read once per commit (:mod:`qcraft_ray.lake.data_files`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from qcraft_ray import schema as S
from qcraft_ray.config import StorageConfig
from qcraft_ray.config.iceberg import IcebergTable
from qcraft_ray.errors import TableMismatchError
from qcraft_ray.lake.append import append_files
from qcraft_ray.lake.catalog import load
from qcraft_ray.lake.data_files import data_files
from qcraft_ray.lake.staged import StagedManifest, usable

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

RUN_ID_PROPERTY = "qcraft.run-id"
COMMIT_ATTEMPTS = 5
# A table this creates keeps column bounds (min/max, for file pruning) only on the columns
# queries filter on, and value and null counts on the others: bounds of long text (the
# passage, the output) prune nothing, and serialising them is most of a commit's work
# per file. A table that exists keeps its own settings.
BOUNDED_COLUMNS = (
    S.DOC_ID, S.TYPE, S.LANGUAGE, S.SOURCE_LANGUAGE, S.STATUS, S.SCORE, S.OUTPUT_TOKENS,
    S.PASSAGE_TOKENS, S.MODEL, S.DUMP, S.DATE, S.WRONG_LANGUAGE, S.COPIED, S.QUALITY_SCORE,
)  # fmt: skip
TABLE_PROPERTIES = {
    "write.metadata.metrics.default": "counts",
    **{f"write.metadata.metrics.column.{c}": "truncate(16)" for c in BOUNDED_COLUMNS},
}


class IcebergCommit(BaseModel):
    """What the run added to its table (in ``_report.json``)."""

    model_config = ConfigDict(extra="forbid")

    table: str
    snapshot_id: int | None  # None: the run had no data file to add
    files: int
    already_committed: bool = False  # found from an earlier attempt of the run
    staged_manifests: int = 0  # of the checkpoint writer's staged manifests, how many it added
    staged_files: int = 0  # the files they list (the rest were converted at the commit)


def committed_snapshot(table: Table, run_id: str) -> int | None:
    """The id of the snapshot that added ``run_id``'s files, if the table has one."""
    for snap in table.snapshots():
        if snap.summary is not None and snap.summary[RUN_ID_PROPERTY] == run_id:
            return int(snap.snapshot_id)
    return None


def ensure_table(
    catalog: Catalog, cfg: IcebergTable, schema: pa.Schema, partition_by: Sequence[str]
) -> Table:
    """The table, created (with its partition spec) when missing; otherwise checked, and
    given the columns a newer output schema added."""
    from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError

    catalog.create_namespace_if_not_exists(cfg.namespace)
    try:
        table = catalog.load_table(cfg.table)
    except NoSuchTableError:
        try:
            table = catalog.create_table(cfg.table, schema=schema, properties=TABLE_PROPERTIES)
        except TableAlreadyExistsError:  # another run created it meanwhile
            table = catalog.load_table(cfg.table)
    missing = [f.name for f in schema if f.name not in table.schema().column_names]
    if missing:  # a table made by an older schema version: add the new (nullable) columns
        with table.update_schema() as update:
            update.union_by_name(schema)
        table = catalog.load_table(cfg.table)
    spec = [table.schema().find_column_name(f.source_id) for f in table.spec().fields]
    if not spec and partition_by and table.current_snapshot() is None:
        with table.update_spec() as update:
            for column in partition_by:
                update.add_identity(column)
        table = catalog.load_table(cfg.table)
        spec = [table.schema().find_column_name(f.source_id) for f in table.spec().fields]
    extra = [c for c in spec if c not in partition_by]
    if extra:
        raise TableMismatchError(
            f"output.iceberg: table {cfg.table} is partitioned by {spec}, but this run's "
            f"files are partitioned by {list(partition_by)}: each file must hold one value "
            f"of {extra}; add them to output.partition_by"
        )
    return table


def check_table(
    cfg: IcebergTable, storage: StorageConfig, schema: pa.Schema, partition_by: Sequence[str]
) -> None:
    """Before any engine starts: the catalog answers and the table (created when
    missing) can take this run's files."""
    ensure_table(load(cfg, storage), cfg, schema, partition_by)


def commit_run(
    cfg: IcebergTable,
    storage: StorageConfig,
    run_id: str,
    file_uris: list[str],
    schema: pa.Schema,
    partition_by: Sequence[str],
    staged: Sequence[StagedManifest] = (),
) -> IcebergCommit:
    """Add ``file_uris`` to the table in one commit tagged with ``run_id``, unless a
    commit of that run is already there. ``staged``: the manifests staged for the
    leading files of ``file_uris``, added as they are where they still fit."""
    from pyiceberg.exceptions import CommitFailedException

    catalog = load(cfg, storage)
    table = ensure_table(catalog, cfg, schema, partition_by)
    if not file_uris:
        return IcebergCommit(table=cfg.table, snapshot_id=None, files=0)
    use: list[StagedManifest] = []  # the staged manifests of the last commit tried
    covered = 0  # the files they list
    converted: tuple[int, list] = (-1, [])  # (covered, the data files of the rest): read once
    for attempt in range(COMMIT_ATTEMPTS + 1):
        found = committed_snapshot(table, run_id)
        if found is not None:
            return IcebergCommit(
                table=cfg.table,
                snapshot_id=found,
                files=len(file_uris),
                already_committed=attempt == 0,
                staged_manifests=len(use),
                staged_files=covered,
            )
        if attempt == COMMIT_ATTEMPTS:
            break
        use = list(staged[: usable(table, staged, file_uris)])
        covered = use[-1].end if use else 0
        try:
            if converted[0] != covered:
                converted = (covered, data_files(table, file_uris[covered:]))
            append_files(table, file_uris, converted[1], {RUN_ID_PROPERTY: run_id}, use)
        except CommitFailedException:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
        table = catalog.load_table(cfg.table)
    raise RuntimeError(f"output.iceberg: the commit of run {run_id} is not in {cfg.table}")
