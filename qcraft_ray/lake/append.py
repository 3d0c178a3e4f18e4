"""A run's data files added to a table in one snapshot: its staged manifests as they
are (:mod:`qcraft_ray.lake.staged`), the files after them as data files, in the one
manifest the commit writes.

pyiceberg has no public call that adds a manifest written beforehand, so the snapshot
is made by a fast append (pyiceberg's ``_FastAppendFiles``) that lists the staged
manifests beside its own and counts them into the snapshot summary.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qcraft_ray.lake.staged import StagedManifest, add_to_summary, manifest_file

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

NAME_MAPPING = "schema.name-mapping.default"  # pyiceberg's TableProperties.DEFAULT_NAME_MAPPING


def append_files(
    table: Table,
    uris: list[str],
    files: list[DataFile],
    properties: dict[str, str],
    staged: Sequence[StagedManifest] = (),
) -> None:
    """Add the run's data files (``uris``, all of them) to ``table`` in one snapshot
    carrying ``properties``: ``staged`` manifests as they are, ``files`` (the data files
    of the rest, from :func:`~qcraft_ray.lake.data_files.data_files`) in a new one.
    Files the table already references are refused (ValueError), as ``add_files``
    refuses them."""
    if len(uris) != len(set(uris)):
        raise ValueError("File paths must be unique")
    if sum(s.end - s.first for s in staged) + len(files) != len(uris):
        raise ValueError(f"{len(uris)} files to add, but {len(files)} given and the rest staged")
    with table.transaction() as tx:
        already = tx._find_referenced_data_files(uris)
        if already:
            raise ValueError(
                "Cannot add files that are already referenced by table, files: "
                + ", ".join(already[:5])
                + (f" and {len(already) - 5} more" if len(already) > 5 else "")
            )
        if tx.table_metadata.name_mapping() is None:
            tx.set_properties(**{NAME_MAPPING: schema_mapping_json(table)})
        with _staged_append()(tx, properties, staged) as append:
            for f in files:
                append.append_data_file(f)


def schema_mapping_json(table: Table) -> str:
    return table.metadata.schema().name_mapping.model_dump_json()


@functools.cache
def _staged_append() -> Any:
    """The snapshot producer (a class made on first use: pyiceberg is an optional extra)."""
    from pyiceberg.table import TableProperties, Transaction
    from pyiceberg.table.snapshots import (
        Operation,
        SnapshotSummaryCollector,
        Summary,
        update_snapshot_summaries,
    )
    from pyiceberg.table.update.snapshot import _FastAppendFiles
    from pyiceberg.typedef import EMPTY_DICT

    class StagedAppend(_FastAppendFiles):
        def __init__(
            self, tx: Transaction, properties: dict[str, str], staged: Sequence[StagedManifest]
        ) -> None:
            super().__init__(Operation.APPEND, tx, tx._table.io, snapshot_properties=properties)
            self._staged = list(staged)

        def _manifests(self) -> list[Any]:
            staged = [manifest_file(s, self._snapshot_id) for s in self._staged]
            return staged + list(super()._manifests())

        def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
            meta = self._transaction.table_metadata
            limit = int(
                meta.properties.get(
                    TableProperties.WRITE_PARTITION_SUMMARY_LIMIT,
                    TableProperties.WRITE_PARTITION_SUMMARY_LIMIT_DEFAULT,
                )
            )
            collector = SnapshotSummaryCollector(partition_summary_limit=limit)
            schema, spec = meta.schema(), meta.spec()
            for f in self._added_data_files:
                collector.add_file(data_file=f, partition_spec=spec, schema=schema)
            for s in self._staged:
                add_to_summary(collector, s)
            parent = self._parent_snapshot_id
            previous = meta.snapshot_by_id(parent) if parent is not None else None
            return update_snapshot_summaries(
                summary=Summary(
                    operation=self._operation, **collector.build(), **snapshot_properties
                ),
                previous_summary=previous.summary if previous is not None else None,
            )

    return StagedAppend
