"""An Iceberg table as the input: the data files of one pinned snapshot."""

from __future__ import annotations

from qcraft_ray.config import StorageConfig
from qcraft_ray.config.iceberg import IcebergInput
from qcraft_ray.errors import InputError
from qcraft_ray.lake.catalog import load_table


class IcebergInputError(InputError):
    """The input table cannot be read as configured."""


def snapshot_files(
    cfg: IcebergInput, storage: StorageConfig, pinned: int | None = None
) -> tuple[int, list[str]]:
    """``(snapshot id, data file URIs)`` of the configured snapshot, else ``pinned``
    (the one an earlier attempt of the run read), else the table's current one."""
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.manifest import FileFormat

    try:
        table = load_table(cfg, storage)
    except NoSuchTableError as e:
        raise IcebergInputError(f"input.iceberg: no table {cfg.table!r} in the catalog") from e
    snapshot_id = cfg.snapshot_id or pinned
    if snapshot_id is None:
        current = table.current_snapshot()
        if current is None:
            raise IcebergInputError(f"input.iceberg: table {cfg.table} has no snapshot (no rows)")
        snapshot_id = current.snapshot_id
    elif table.snapshot_by_id(snapshot_id) is None:
        raise IcebergInputError(
            f"input.iceberg: table {cfg.table} has no snapshot {snapshot_id} (expired?)"
        )
    tasks = list(table.scan(snapshot_id=snapshot_id).plan_files())
    with_deletes = [t.file.file_path for t in tasks if t.delete_files]
    if with_deletes:
        raise IcebergInputError(
            f"input.iceberg: table {cfg.table} snapshot {snapshot_id} has row-level deletes "
            f"(first file: {with_deletes[0]}); compact it first"
        )
    bad = [t.file.file_path for t in tasks if t.file.file_format != FileFormat.PARQUET]
    if bad:
        raise IcebergInputError(f"input.iceberg: only Parquet data files are read; got {bad[0]}")
    return snapshot_id, sorted(t.file.file_path for t in tasks)
