"""The output sink: data files, rejected rows, counters; and output-folder preparation.

One Ray Data write task per incoming bundle splits rows into generated rows (written
to ``output.path`` with :data:`~qcraft_ray.schema.OUTPUT_SCHEMA`) and rejected rows
(``output.path/_rejected/`` with :data:`~qcraft_ray.schema.REJECTED_SCHEMA`), and
returns its counters. A file becomes visible only when complete: on local disks it is
written under ``_temporary/`` and renamed; object stores publish an object atomically
when its upload completes. File names come from the run id and the task index, so a
retried task overwrites its own files instead of adding duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from ray.data import Datasink
from ray.data.datasource.datasink import WriteResult

from qcraft_ray import schema as S
from qcraft_ray.config import OutputConfig, StorageConfig
from qcraft_ray.io import filesystems
from qcraft_ray.report import Counts, count_rows, merge_counts

REJECTED_DIR = "_rejected"
TEMP_DIR = "_temporary"
REPORT_FILE = "_report.json"


class OutputExistsError(RuntimeError):
    """output.path already holds a run and the config does not allow replacing it."""


def prepare_output(out: OutputConfig, storage: StorageConfig) -> None:
    """Check that output.path can be used; clear it when ``if_exists: overwrite``."""
    fs, root = filesystems.resolve(out.path, storage)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.File:
        raise OutputExistsError(f"output.path {out.path} is a file, not a folder")
    if info.type == pafs.FileType.Directory:
        entries = fs.get_file_info(pafs.FileSelector(root, recursive=False))
        if entries:
            if out.if_exists == "error":
                raise OutputExistsError(
                    f"output.path {out.path} is not empty; set output.if_exists=overwrite "
                    "to replace it, or choose another path"
                )
            fs.delete_dir_contents(root)
    fs.create_dir(root, recursive=True)


def _finalize(table: pa.Table, target: pa.Schema) -> pa.Table:
    return table.select(target.names).cast(target)


class OutputSink(Datasink[Counts]):
    """Writes stream rows as output and rejected Parquet; returns counters per task."""

    def __init__(self, out: OutputConfig, storage: StorageConfig, run_id: str,
                 first_type: str | None, schema: pa.Schema = S.OUTPUT_SCHEMA) -> None:
        self._out = out
        self._storage = storage
        self._run_id = run_id
        self._first_type = first_type  # None: passage rows (no type fan-out)
        self._schema = schema
        self.counts: Counts | None = None

    def get_name(self) -> str:
        return "WriteQcraft"

    def _write(self, fs: pafs.FileSystem, root: str, sub: str | None, name: str,
               table: pa.Table) -> None:
        folder = filesystems.join(root, sub) if sub else root
        final = filesystems.join(folder, name)
        local = isinstance(fs, pafs.LocalFileSystem)
        target = filesystems.join(root, TEMP_DIR, name + (f".{sub}" if sub else "")) if local \
            else final
        if local:
            fs.create_dir(filesystems.join(root, TEMP_DIR), recursive=True)
            fs.create_dir(folder, recursive=True)
        compression = None if self._out.compression == "none" else self._out.compression
        with fs.open_output_stream(target) as f:
            pq.write_table(table, f, compression=compression)
        if local:
            fs.move(target, final)

    def write(self, blocks: Iterable[pa.Table], ctx) -> Counts:
        tables = [b if isinstance(b, pa.Table) else pa.Table.from_pandas(b) for b in blocks]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return merge_counts([])
        table = pa.concat_tables([_finalize(t, S.STREAM_SCHEMA) for t in tables])
        if self._out.drop_none:
            is_none = pc.equal(table[S.STATUS], S.STATUS_NONE)
            table = table.set_column(
                table.schema.get_field_index(S.REASON), S.REASON,
                pc.if_else(is_none, S.REASON_NONE_DROPPED, table[S.REASON]))
            table = table.set_column(
                table.schema.get_field_index(S.STATUS), S.STATUS,
                pc.if_else(is_none, S.STATUS_REJECTED, table[S.STATUS]))
        counts = count_rows(table, self._first_type)
        rejected_mask = pc.equal(table[S.STATUS], S.STATUS_REJECTED)
        outputs = table.filter(pc.invert(rejected_mask))
        rejected = table.filter(rejected_mask)
        fs, root = filesystems.resolve(self._out.path, self._storage)
        stem = f"part-{self._run_id}-{ctx.task_idx:06d}"
        per_file = self._out.max_rows_per_file
        for i in range(0, outputs.num_rows, per_file):
            chunk = _finalize(outputs.slice(i, per_file), self._schema)
            self._write(fs, root, None, f"{stem}-{i // per_file:04d}.parquet", chunk)
        if rejected.num_rows:
            self._write(fs, root, REJECTED_DIR, f"{stem}.parquet",
                        _finalize(rejected, S.REJECTED_SCHEMA))
        return counts

    def on_write_complete(self, write_result: WriteResult[Counts]) -> None:
        self.counts = merge_counts(list(write_result.write_returns))
        fs, root = filesystems.resolve(self._out.path, self._storage)
        temp = filesystems.join(root, TEMP_DIR)
        if fs.get_file_info(temp).type == pafs.FileType.Directory:
            fs.delete_dir(temp)
