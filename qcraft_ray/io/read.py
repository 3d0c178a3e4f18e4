"""Read FineWeb-style Parquet into document tables, split by row groups, not files.

Each read task covers a run of row groups of one file (about ``rows_per_task`` rows) and
yields blocks of at most ``rows_per_task`` documents, so a single large file (even one
with a single row group) becomes many blocks that spread over every replica.
Documents leave the reader in :data:`qcraft_ray.schema.DOCUMENT_SCHEMA`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from ray.data import Datasource

from qcraft_ray import schema as S
from qcraft_ray.compat.ray_data import read_task
from qcraft_ray.config import InputConfig, StorageConfig
from qcraft_ray.io.documents import to_documents, unreadable_documents
from qcraft_ray.io.plan import Fragment, InputPlan, fragments_to_read
from qcraft_ray.ledger.units import unit_id
from qcraft_ray.store import RetryPolicy, filesystems

log = logging.getLogger("qcraft")

__all__ = ["FineWebDatasource", "Fragment", "fragments_to_read", "read_fragment"]


def fragment_units(fragment: Fragment, rows_per_task: int) -> list[str]:
    """The units (blocks) a fragment yields: pyarrow's ``iter_batches`` cuts exactly
    every ``rows_per_task`` rows, across row-group boundaries."""
    return [
        unit_id(fragment.file.display, fragment.first_row + k)
        for k in range(0, fragment.num_rows, rows_per_task)
    ]


def read_fragment(
    fragment: Fragment,
    cfg: InputConfig,
    storage: StorageConfig,
    skip: frozenset[str] = frozenset(),
) -> Iterator[pa.Table]:
    """Yield the fragment's blocks as document tables, except units in ``skip``.

    On an I/O or decoding error the file is probed. Storage unreachable: wait and reopen
    it, going on after the last block yielded, up to ``storage.attempts`` tries, then
    fail naming the file and rows. Storage fine but the same data fails twice: the
    file is corrupt there, and the fragment's remaining rows become ``unreadable``
    rejections with the error, so one bad file does not stop a long run.
    """
    fs, _ = filesystems.resolve(fragment.file.display, storage)
    retry = RetryPolicy.for_storage(storage)
    done_rows, data_errors, outages = 0, 0, 0  # done_rows: rows of the fragment handled
    while True:
        try:
            yield from _read_from(fs, fragment, cfg, skip, done_rows)
            return
        except _ProgressError as p:
            done_rows, error = p.done_rows, p.error
        if _reachable(fs, fragment.file.path):
            data_errors += 1
            if data_errors >= 2:
                log.warning(
                    "%s: unreadable from row %d (%s); recorded as rejected rows",
                    fragment.file.display,
                    fragment.first_row + done_rows,
                    error,
                )
                yield from _unreadable(fragment, cfg, skip, done_rows, error)
                return
            continue
        outages += 1
        if outages >= retry.tries:
            raise OSError(
                f"reading {fragment.file.display} rows {fragment.first_row}.."
                f"{fragment.first_row + fragment.num_rows}: {error}"
            ) from error
        retry.pause(f"reading {fragment.file.display}", error, outages)


class _ProgressError(Exception):
    def __init__(self, done_rows: int, error: BaseException) -> None:
        super().__init__(str(error))
        self.done_rows, self.error = done_rows, error


def _read_from(
    fs, fragment: Fragment, cfg: InputConfig, skip: frozenset[str], start: int
) -> Iterator[pa.Table]:
    """Blocks from ``start`` rows into the fragment on; errors carry the progress."""
    done = 0
    try:
        with fs.open_input_file(fragment.file.path) as f:
            for batch in pq.ParquetFile(f).iter_batches(
                batch_size=cfg.rows_per_task,
                row_groups=list(fragment.row_groups),
                columns=list(fragment.file.columns),
            ):
                row = fragment.first_row + done
                if done >= start and unit_id(fragment.file.display, row) not in skip:
                    yield to_documents(pa.Table.from_batches([batch]), fragment.file, row, cfg)
                done += batch.num_rows
    except (OSError, pa.ArrowException) as e:
        raise _ProgressError(max(done, start), e) from e


def _reachable(fs, path: str) -> bool:
    try:
        with fs.open_input_file(path) as f:
            pq.ParquetFile(f)  # the footer still reads: storage is up
        return True
    except (OSError, pa.ArrowException):
        return False


def _unreadable(
    fragment: Fragment, cfg: InputConfig, skip: frozenset[str], start: int, error: BaseException
) -> Iterator[pa.Table]:
    """Rejected placeholder documents for the fragment's rows from ``start`` on."""
    step = cfg.rows_per_task
    for k in range(0, fragment.num_rows, step):
        n = min(step, fragment.num_rows - k)
        if k + n <= start or unit_id(fragment.file.display, fragment.first_row + k) in skip:
            continue
        yield unreadable_documents(fragment.file, fragment.first_row + k, n, cfg, error)


class FineWebDatasource(Datasource):
    """A Ray Data datasource over an :class:`InputPlan` (discovered up front).

    ``done_units`` (unit -> documents) are units a resumed run already wrote: a fragment
    made only of such units gets no read task at all; others skip those blocks.
    """

    def __init__(
        self,
        plan: InputPlan,
        cfg: InputConfig,
        storage: StorageConfig,
        done_units: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self._plan = plan
        self._cfg = cfg
        self._storage = storage
        self._done = done_units or {}

    def get_name(self) -> str:
        return "ReadFineWeb"

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(f.text_bytes for f in self._plan.files) or None

    def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
        tasks = []
        for frag in fragments_to_read(self._plan, self._cfg.rows_per_task):
            skip = frozenset(
                u for u in fragment_units(frag, self._cfg.rows_per_task) if u in self._done
            )
            if sum(self._done[u] for u in skip) == frag.num_rows:
                continue
            share = frag.num_rows / max(frag.file.num_rows, 1)
            read_fn = functools.partial(read_fragment, frag, self._cfg, self._storage, skip)
            tasks.append(
                read_task(
                    read_fn,
                    num_rows=frag.num_rows,
                    size_bytes=int(frag.file.text_bytes * share),
                    input_files=(frag.file.display,),
                    schema=S.DOCUMENT_SCHEMA,
                    per_task_row_limit=per_task_row_limit,
                )
            )
        return tasks
