"""The output sink: data files, rejected rows, per-unit commits and counters.

Each Ray Data write task gets at least ``rows_per_write`` rows (fewer at the end),
splits them into generated rows (``output.path``, :data:`~qcraft_ray.schema.
OUTPUT_SCHEMA`) and rejected rows (``_rejected/``, :data:`~qcraft_ray.schema.
REJECTED_SCHEMA`), writes one file per partition it holds (more only past
``output.max_rows_per_file`` or ``output.target_file_mb``; see
:mod:`qcraft_ray.store.layout`), then commits a manifest (see
:mod:`qcraft_ray.ledger.manifests`). File names carry the run id, the attempt and the
task index: a task that Ray retries overwrites its own files, and a resumed run never
collides with an earlier attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from ray.data import Datasink

from qcraft_ray import schema as S
from qcraft_ray.config import OutputConfig
from qcraft_ray.ledger import lease
from qcraft_ray.ledger.counts import RowCounts, count_rows
from qcraft_ray.ledger.manifests import Manifest, commit, manifest_name
from qcraft_ray.ledger.units import count_units
from qcraft_ray.rows import reject
from qcraft_ray.stages.base import Progress, timed
from qcraft_ray.store import OutputFolder
from qcraft_ray.store.layout import Layout, sized_files


def mark_none_dropped(table: pa.Table) -> pa.Table:
    """Turn NONE outputs into rejected rows with reason ``none_dropped``."""
    return reject(table, pc.equal(table[S.STATUS], S.STATUS_NONE), S.REASON_NONE_DROPPED)


def check_samples_together(table: pa.Table, samples: int) -> None:
    """Every generated prompt in ``table`` has all its ``samples`` rows: a prompt's
    samples are committed together, which exactly-once resume relies on."""
    generated = table.filter(pc.is_valid(table[S.SAMPLE_INDEX]))
    keys = [S.SOURCE_FILE, S.SOURCE_ROW, S.CHUNK_INDEX, S.TYPE]
    sizes = generated.select(keys).group_by(keys).aggregate([([], "count_all")])
    split = sizes.filter(pc.not_equal(sizes["count_all"], samples))
    if split.num_rows:
        first = split.slice(0, 1).to_pylist()[0]
        raise RuntimeError(
            f"a write task got {first.pop('count_all')} of the {samples} samples of a "
            f"prompt ({first}): a prompt's samples must stay in one block"
        )


class OutputSink(Datasink[RowCounts]):
    """Writes stream rows as output and rejected Parquet; commits; returns counters."""

    def __init__(
        self,
        folder: OutputFolder,
        out: OutputConfig,
        run_id: str,
        attempt: str,
        schema: pa.Schema = S.OUTPUT_SCHEMA,
        progress: Progress | None = None,
        lease_attempt: str | None = None,
        layout: Layout | None = None,
        rows_per_write: int | None = None,
        samples: int = 1,
    ) -> None:
        """``lease_attempt``: the attempt that must hold the folder's lease for a commit;
        ``rows_per_write``: rows a write task gathers (default output.min_rows_per_file)."""
        self._folder = folder
        self._stem = f"part-{run_id}-{attempt}"
        self._attempt = attempt
        self._max_rows = out.max_rows_per_file
        self._max_bytes = int(out.target_file_mb * 1024 * 1024)
        self._min_rows = rows_per_write or out.min_rows_per_file
        self._drop_none = out.drop_none
        self._schema = schema
        self._layout = (layout or Layout()).for_schema(schema)
        self._progress = progress
        self._lease_attempt = lease_attempt
        self._samples = samples

    def get_name(self) -> str:
        return "WriteQcraft"

    @property
    def min_rows_per_write(self) -> int:
        return self._min_rows

    def write(self, blocks: Iterable[Any], ctx: Any) -> RowCounts:
        # counted once per commit: a task that Ray runs again commits the same manifest
        once = f"commit:{manifest_name(self._attempt, ctx.task_idx)}"
        with timed(self._progress, "write", once=once) as counters:
            tables = [b if isinstance(b, pa.Table) else pa.Table.from_pandas(b) for b in blocks]
            tables = [S.conform(t, S.STREAM_SCHEMA) for t in tables if t.num_rows]
            if not tables:
                return RowCounts()
            table = pa.concat_tables(tables)
            counts, rejected = self._write_and_commit(table, ctx.task_idx)
            counters.update(documents_done=counts.documents, rejected=rejected)
        return counts

    def _write_and_commit(self, table: pa.Table, task: int) -> tuple[RowCounts, int]:
        """Write ``table``'s data and rejected files, then commit their manifest; the
        counters, and how many rows were rejected."""
        if self._drop_none:
            table = mark_none_dropped(table)
        if self._samples > 1:
            check_samples_together(table, self._samples)
        counts = count_rows(table)
        rejected_mask = pc.equal(table[S.STATUS], S.STATUS_REJECTED)
        outputs = table.filter(pc.invert(rejected_mask))
        rejected = table.filter(rejected_mask)
        stem = f"{self._stem}-{task:06d}"
        files: list[str] = []
        for folder, rows in self._layout.data_groups(outputs):
            self._write(files, folder, stem, S.conform(rows, self._schema), number=len(files))
        for folder, rows in self._layout.rejected_groups(rejected):
            self._write(files, folder, stem, S.conform(rows, S.REJECTED_SCHEMA))
        manifest = Manifest(self._attempt, task, files, count_units(table), counts)
        if self._lease_attempt is not None:  # a driver that lost its lease commits nothing
            lease.check(self._folder, self._lease_attempt)
        commit(self._folder, manifest)
        return counts, rejected.num_rows

    def _write(
        self, files: list[str], folder: str, stem: str, rows: pa.Table, number: int | None = None
    ) -> None:
        """Write ``rows`` as files of a sane size in ``folder``; add their names.
        Data files are numbered from ``number``; a rejected file is ``<stem>.parquet``
        unless its rows need several."""
        encoded = sized_files(rows, self._folder.encode_parquet, self._max_rows, self._max_bytes)
        for i, data in enumerate(encoded):
            if number is not None:
                name = f"{stem}-{number + i:04d}.parquet"
            else:
                name = f"{stem}.parquet" if len(encoded) == 1 else f"{stem}-{i:04d}.parquet"
            files.append(f"{folder}/{name}" if folder else name)
            self._folder.write_bytes(files[-1], data)
