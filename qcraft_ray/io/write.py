"""The output sink: data files, rejected rows, per-unit commits and counters.

Each Ray Data write task gets at least ``output.min_rows_per_file`` rows (fewer at the
end), splits them into generated rows (``output.path``, :data:`~qcraft_ray.schema.
OUTPUT_SCHEMA`) and rejected rows (``_rejected/``, :data:`~qcraft_ray.schema.
REJECTED_SCHEMA`), writes them, then commits a manifest (see :mod:`qcraft_ray.io.commit`).
File names carry the run id, the attempt and the task index: a task that Ray retries
overwrites its own files, and a resumed run never collides with an earlier attempt.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from ray.data import Datasink

from qcraft_ray import schema as S
from qcraft_ray.config import OutputConfig, StorageConfig
from qcraft_ray.io import filesystems
from qcraft_ray.io.commit import REJECTED_DIR, TEMP_DIR, Manifest, with_retries, write_manifest
from qcraft_ray.progress import RemoteProgress
from qcraft_ray.report import Counts, count_rows, merge_counts
from qcraft_ray.stages.units import count_units


def mark_none_dropped(table: pa.Table) -> pa.Table:
    """Turn NONE outputs into rejected rows with reason ``none_dropped``."""
    is_none = pc.equal(table[S.STATUS], S.STATUS_NONE)
    table = table.set_column(table.schema.get_field_index(S.REASON), S.REASON,
                             pc.if_else(is_none, S.REASON_NONE_DROPPED, table[S.REASON]))
    return table.set_column(table.schema.get_field_index(S.STATUS), S.STATUS,
                            pc.if_else(is_none, S.STATUS_REJECTED, table[S.STATUS]))


class OutputSink(Datasink[Counts]):
    """Writes stream rows as output and rejected Parquet; commits; returns counters."""

    def __init__(self, out: OutputConfig, storage: StorageConfig, run_id: str, attempt: str,
                 first_type: str | None, schema: pa.Schema = S.OUTPUT_SCHEMA,
                 progress: RemoteProgress | None = None) -> None:
        self._out = out
        self._storage = storage
        self._stem = f"part-{run_id}-{attempt}"
        self._attempt = attempt
        self._first_type = first_type  # None: passage rows (no type fan-out)
        self._schema = schema
        self._progress = progress

    def get_name(self) -> str:
        return "WriteQcraft"

    @property
    def min_rows_per_write(self) -> int:
        return self._out.min_rows_per_file

    def _retry(self, fn, what: str):
        return with_retries(fn, what, self._storage.attempts, self._storage.retry_max_backoff_s)

    def _write_file(self, fs: pafs.FileSystem, root: str, rel: str, table: pa.Table) -> None:
        final = filesystems.join(root, rel)
        local = isinstance(fs, pafs.LocalFileSystem)
        target = filesystems.join(root, TEMP_DIR, rel.replace("/", ".")) if local else final
        compression = None if self._out.compression == "none" else self._out.compression

        def put() -> None:
            if local:
                fs.create_dir(filesystems.join(root, TEMP_DIR), recursive=True)
                fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
            with fs.open_output_stream(target) as f:
                pq.write_table(table, f, compression=compression)
            if local:
                fs.move(target, final)

        self._retry(put, f"writing {filesystems.join(self._out.path, rel)}")

    def write(self, blocks: Iterable[pa.Table], ctx) -> Counts:
        t0 = time.perf_counter()
        tables = [b if isinstance(b, pa.Table) else pa.Table.from_pandas(b) for b in blocks]
        tables = [S.conform(t, S.STREAM_SCHEMA) for t in tables if t.num_rows]
        if not tables:
            return merge_counts([])
        table = pa.concat_tables(tables)
        if self._out.drop_none:
            table = mark_none_dropped(table)
        counts = count_rows(table, self._first_type)
        rejected_mask = pc.equal(table[S.STATUS], S.STATUS_REJECTED)
        outputs = table.filter(pc.invert(rejected_mask))
        rejected = table.filter(rejected_mask)
        fs, root = filesystems.resolve(self._out.path, self._storage)
        stem = f"{self._stem}-{ctx.task_idx:06d}"
        files = []
        per_file = self._out.max_rows_per_file
        for i in range(0, outputs.num_rows, per_file):
            files.append(f"{stem}-{i // per_file:04d}.parquet")
            self._write_file(fs, root, files[-1],
                             S.conform(outputs.slice(i, per_file), self._schema))
        if rejected.num_rows:
            files.append(f"{REJECTED_DIR}/{stem}.parquet")
            self._write_file(fs, root, files[-1], S.conform(rejected, S.REJECTED_SCHEMA))
        manifest = Manifest(self._attempt, ctx.task_idx, files,
                            count_units(table, self._first_type), counts)
        self._retry(lambda: write_manifest(fs, root, manifest),
                    f"committing {manifest.name} in {self._out.path}")
        if self._progress:
            self._progress.add({"documents_done": counts["documents"],
                                "rejected": rejected.num_rows,
                                "seconds_write": time.perf_counter() - t0})
        return counts
