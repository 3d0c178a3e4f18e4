"""Iceberg manifests staged while the run goes, so that the finalise's commit lists them.

Turning a data file's footer into an Iceberg data file, and writing it into a manifest,
costs about a millisecond of Python a file: minutes for the ~335k files of a FineWeb2-HQ
run when the finalise does it all (bench/RESULTS-bookkeeping.md). Instead, the driver's
checkpoint writer stages the data files folded in since its last staged manifest as one
Iceberg manifest (``_iceberg/`` in the output folder, beside the data files it lists),
recorded in its checkpoint (:class:`StagedManifest`). The finalise's commit adds the
staged manifests as they are, plus one manifest of the files committed after the last
(as Java's ``AppendFiles.appendManifest`` lets Spark's and Flink's sinks do).

The rules that keep the commit exact:

- Staged only for format-version-2 tables. The entries carry no snapshot id and no
  sequence number: they inherit the commit's (the spec's sequence-number inheritance).
- A staged manifest covers a range of the run's data files (``Committed.data_files``,
  in the order they were folded in) and records a digest of their URIs. The commit uses
  the leading staged manifests whose ranges follow one another, whose digests match,
  and whose table, schema and partition spec are still the table's; it converts the
  files after them as it would without.
- A pass that switches manifests (the percentile filter) drops the checkpoints and with
  them what was staged; the finalise deletes the staged files its commit did not use.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from qcraft_ray.config import StorageConfig
from qcraft_ray.config.iceberg import IcebergTable
from qcraft_ray.lake.catalog import load_table
from qcraft_ray.lake.data_files import data_files
from qcraft_ray.store import ICEBERG_DIR, OutputFolder

if TYPE_CHECKING:
    from pyiceberg.manifest import ManifestFile
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import SnapshotSummaryCollector

log = logging.getLogger(__name__)

STAGED_FORMAT_VERSION = 2  # the table format whose entries inherit the commit's ids


class StagedManifest(BaseModel):
    """One staged Iceberg manifest, as a checkpoint records it: what the commit's
    manifest list needs, what the snapshot summary adds up, and what it covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str  # the Avro file's URI
    length: int  # its bytes
    table_uuid: str  # the table, schema and partition spec it was written for
    schema_id: int
    spec_id: int
    first: int  # covers Committed.data_files[first:end]
    end: int
    digest: str  # of those files' URIs
    records: int
    size: int  # the data files' bytes
    partitions: dict[str, tuple[int, int, int]]  # partition path: files, records, bytes
    bounds: list[tuple[bool, bool | None, str | None, str | None]]  # per partition field:
    # contains null, contains NaN, lower and upper bound (hex of Iceberg's binary form)


def digest(uris: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(uris).encode()).hexdigest()


def stage(table: Table, folder: OutputFolder, uris: list[str], first: int) -> StagedManifest:
    """Write the manifest of ``uris`` (the run's data files ``first`` on) for ``table``
    into the output folder; the files' footers are read here."""
    from pyiceberg.manifest import ManifestEntry, ManifestEntryStatus, write_manifest
    from pyiceberg.table import TableProperties

    meta = table.metadata
    spec, schema = meta.spec(), meta.schema()
    rel = f"{ICEBERG_DIR}/{first + len(uris):010d}-{uuid.uuid4().hex[:8]}.avro"
    compression = meta.properties.get(
        TableProperties.WRITE_AVRO_COMPRESSION, TableProperties.WRITE_AVRO_COMPRESSION_DEFAULT
    )
    writer = write_manifest(
        format_version=STAGED_FORMAT_VERSION,
        spec=spec,
        schema=schema,
        output_file=table.io.new_output(folder.uri(rel)),
        snapshot_id=0,  # not written: the entries inherit the commit's snapshot id
        avro_compression=compression,
    )
    partitions: dict[str, tuple[int, int, int]] = {}
    records = size = 0
    with writer:
        for f in data_files(table, uris):
            writer.add_entry(
                ManifestEntry.from_args(
                    status=ManifestEntryStatus.ADDED,
                    snapshot_id=None,
                    sequence_number=None,
                    file_sequence_number=None,
                    data_file=f,
                )
            )
            records += f.record_count
            size += f.file_size_in_bytes
            if len(f.partition):
                path = spec.partition_to_path(f.partition, schema)
                n, r, b = partitions.get(path, (0, 0, 0))
                partitions[path] = (n + 1, r + f.record_count, b + f.file_size_in_bytes)
    written = writer.to_manifest_file()
    return StagedManifest(
        path=written.manifest_path,
        length=written.manifest_length,
        table_uuid=str(meta.table_uuid),
        schema_id=meta.current_schema_id,
        spec_id=spec.spec_id,
        first=first,
        end=first + len(uris),
        digest=digest(uris),
        records=records,
        size=size,
        partitions=partitions,
        bounds=[
            (
                s.contains_null,
                s.contains_nan,
                s.lower_bound.hex() if s.lower_bound is not None else None,
                s.upper_bound.hex() if s.upper_bound is not None else None,
            )
            for s in written.partitions or []
        ],
    )


def usable(table: Table, staged: Sequence[StagedManifest], uris: Sequence[str]) -> int:
    """How many of the leading ``staged`` manifests the commit of ``uris`` (the run's
    data files, in order) to ``table`` can add as they are."""
    meta = table.metadata
    if meta.format_version != STAGED_FORMAT_VERSION:
        return 0
    end = 0
    for i, s in enumerate(staged):
        fits = (
            s.first == end
            and s.end <= len(uris)
            and s.table_uuid == str(meta.table_uuid)
            and s.schema_id == meta.current_schema_id
            and s.spec_id == meta.default_spec_id
            and s.digest == digest(uris[s.first : s.end])
        )
        if not fits:
            log.warning(
                "staged Iceberg manifest %s no longer fits the table or the run's files; "
                "its files and the %d after them are converted at the commit",
                s.path,
                len(uris) - end,
            )
            return i
        end = s.end
    return len(staged)


def manifest_file(s: StagedManifest, snapshot_id: int) -> ManifestFile:
    """``s`` as an entry of the manifest list of the snapshot ``snapshot_id`` adds."""
    from pyiceberg.manifest import (
        UNASSIGNED_SEQ,
        ManifestContent,
        ManifestFile,
        PartitionFieldSummary,
    )

    return ManifestFile.from_args(
        manifest_path=s.path,
        manifest_length=s.length,
        partition_spec_id=s.spec_id,
        content=ManifestContent.DATA,
        sequence_number=UNASSIGNED_SEQ,  # the manifest list assigns the commit's
        min_sequence_number=UNASSIGNED_SEQ,
        added_snapshot_id=snapshot_id,
        added_files_count=s.end - s.first,
        existing_files_count=0,
        deleted_files_count=0,
        added_rows_count=s.records,
        existing_rows_count=0,
        deleted_rows_count=0,
        partitions=[
            PartitionFieldSummary.from_args(
                contains_null=null,
                contains_nan=nan,
                lower_bound=bytes.fromhex(lower) if lower is not None else None,
                upper_bound=bytes.fromhex(upper) if upper is not None else None,
            )
            for null, nan, lower, upper in s.bounds
        ],
        key_metadata=None,
    )


def add_to_summary(collector: SnapshotSummaryCollector, s: StagedManifest) -> None:
    """Count ``s``'s files into a snapshot summary, as ``add_file`` would each."""
    metrics = [(collector.metrics, (s.end - s.first, s.records, s.size))]
    metrics += [(collector.partition_metrics[p], v) for p, v in s.partitions.items()]
    for m, (files, records, size) in metrics:
        m.added_data_files += files
        m.added_records += records
        m.added_file_size += size


class Stager:
    """The checkpoint writer's step for ``output.iceberg``: the staged manifest of the
    run's data files ``first`` on, at most ``most`` of them (a step stays short: a
    writer that has more to stage, after a resume from an output of the version before,
    catches up over its next checkpoints). None when there is nothing to stage or the
    table is not format version 2. A failure is logged and gives None: the commit
    converts those files."""

    def __init__(
        self, cfg: IcebergTable, storage: StorageConfig, folder: OutputFolder, most: int = 8192
    ) -> None:
        self._cfg, self._storage, self._folder, self._most = cfg, storage, folder, most

    def __call__(self, names: list[str], first: int) -> StagedManifest | None:
        names = names[: self._most]
        if not names:
            return None
        try:
            table = load_table(self._cfg, self._storage)
            if table.metadata.format_version != STAGED_FORMAT_VERSION:
                return None
            return stage(table, self._folder, [self._folder.uri(n) for n in names], first)
        except Exception as e:  # the commit converts what was not staged
            log.warning(
                "staging an Iceberg manifest of %d files in %s failed (%s: %s); "
                "the finalise's commit converts them",
                len(names),
                self._folder.path,
                type(e).__name__,
                e,
            )
            return None


def remove_unused(folder: OutputFolder, used: Sequence[StagedManifest]) -> list[str]:
    """Delete the staged files no commit uses (those of a checkpoint dropped, or of a
    writer killed before its checkpoint); return what went."""
    keep = {s.path for s in used}
    gone = [rel for rel in folder.list_files(ICEBERG_DIR) if folder.uri(rel) not in keep]
    for rel in gone:
        folder.delete(rel)
    return gone
