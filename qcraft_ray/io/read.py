"""Read FineWeb-style Parquet into document tables, split by row groups, not files.

Each read task covers a run of row groups of one file (about ``rows_per_task`` rows) and
yields blocks of at most ``rows_per_task`` documents, so a single large file (even one
with a single row group) becomes many blocks that spread over every replica.
Documents leave the reader in :data:`qcraft_ray.schema.DOCUMENT_SCHEMA`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from qcraft_ray import schema as S
from qcraft_ray.config import InputConfig, StorageConfig
from qcraft_ray.io import filesystems
from qcraft_ray.io.discover import InputFile, InputPlan
from qcraft_ray.languages import language_for_code, source_code
from qcraft_ray.stages.units import unit_id

log = logging.getLogger("qcraft")


@dataclass(frozen=True)
class Fragment:
    """Consecutive row groups of one file, read by one task."""

    file: InputFile
    row_groups: tuple[int, ...]
    first_row: int  # index in the file of the fragment's first row
    num_rows: int


def plan_fragments(plan: InputPlan, rows_per_task: int) -> list[Fragment]:
    fragments: list[Fragment] = []
    for f in plan.files:
        start, groups, rows = 0, [], 0
        for i, n in enumerate(f.row_groups):
            groups.append(i)
            rows += n
            if rows >= rows_per_task:
                fragments.append(Fragment(f, tuple(groups), start, rows))
                start, groups, rows = start + rows, [], 0
        if groups and rows:
            fragments.append(Fragment(f, tuple(groups), start, rows))
    return fragments


def _as_string(col: pa.ChunkedArray | None, n: int) -> pa.Array:
    if col is None:
        return pa.nulls(n, pa.string())
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    return col.combine_chunks()


def to_documents(
    raw: pa.Table, file: InputFile, first_row: int, cfg: InputConfig
) -> pa.Table:
    """Turn a slice of a source file into a document table (pure; unit-tested)."""
    n = raw.num_rows
    rows = pa.array(range(first_row, first_row + n), pa.int64())
    get = lambda name: raw.column(name) if name in raw.column_names else None  # noqa: E731
    ids = get(cfg.id_column)
    fallback = [f"{file.display}#{r}" for r in range(first_row, first_row + n)]
    if ids is None:
        doc_ids = pa.array(fallback, pa.string())
    else:
        doc_ids = pc.coalesce(_as_string(ids, n), pa.array(fallback, pa.string()))

    langs = get("language")
    scripts = get("language_script")
    lang_values = langs.to_pylist() if langs is not None else [None] * n
    script_values = scripts.to_pylist() if scripts is not None else [None] * n
    codes, models = [], []
    for lang, script in zip(lang_values, script_values):
        code = source_code(lang, script) or file.path_code
        if cfg.language is not None:
            model_lang = cfg.language
        else:
            model_lang = language_for_code(code, cfg.language_map)
        codes.append(code)
        models.append(model_lang)

    quality = get(S.QUALITY_SCORE) if get(S.QUALITY_SCORE) is not None else get("score")
    quality_arr = (pa.nulls(n, pa.float64()) if quality is None
                   else pc.cast(quality, pa.float64()).combine_chunks())
    columns = {
        S.DOC_ID: doc_ids,
        S.TEXT: _as_string(get(cfg.text_column), n),
        S.LANGUAGE: pa.array(models, pa.string()),
        S.SOURCE_LANGUAGE: pa.array(codes, pa.string()),
        S.SOURCE_FILE: pa.array([file.display] * n, pa.string()),
        S.SOURCE_ROW: rows,
        S.URL: _as_string(get(S.URL), n),
        S.DUMP: _as_string(get(S.DUMP), n),
        S.DATE: _as_string(get(S.DATE), n),
        S.QUALITY_SCORE: quality_arr,
        S.UNIT: pa.array([unit_id(file.display, first_row)] * n, pa.string()),
        S.UNIT_DOCS: pa.array([n] * n, pa.int64()),
    }
    return pa.table(columns, schema=S.DOCUMENT_SCHEMA)


def fragment_units(fragment: Fragment, rows_per_task: int) -> list[str]:
    """The units (blocks) a fragment yields: pyarrow's ``iter_batches`` cuts exactly
    every ``rows_per_task`` rows, across row-group boundaries."""
    return [unit_id(fragment.file.display, fragment.first_row + k)
            for k in range(0, fragment.num_rows, rows_per_task)]


def read_fragment(
    fragment: Fragment, cfg: InputConfig, storage: StorageConfig,
    skip: frozenset[str] = frozenset(),
) -> Iterator[pa.Table]:
    """Yield the fragment's blocks as document tables, except units in ``skip``.

    An I/O error (e.g. a storage outage) reopens the file and goes on after the last
    block yielded, up to ``storage.attempts`` tries.
    """
    fs, _ = filesystems.resolve(fragment.file.display, storage)
    yielded = 0
    for attempt in range(storage.attempts):
        try:
            row = fragment.first_row
            with fs.open_input_file(fragment.file.path) as f:
                for k, batch in enumerate(pq.ParquetFile(f).iter_batches(
                        batch_size=cfg.rows_per_task, row_groups=list(fragment.row_groups),
                        columns=list(fragment.file.columns))):
                    if k >= yielded and unit_id(fragment.file.display, row) not in skip:
                        yield to_documents(pa.Table.from_batches([batch]), fragment.file,
                                           row, cfg)
                    yielded = max(yielded, k + 1)
                    row += batch.num_rows
            return
        except OSError as e:
            if attempt == storage.attempts - 1:
                raise OSError(f"reading {fragment.file.display} rows {fragment.first_row}.."
                              f"{fragment.first_row + fragment.num_rows}: {e}") from e
            wait = min(2.0 ** attempt, storage.retry_max_backoff_s)
            log.warning("reading %s: %s; retrying in %.0f s", fragment.file.display, e, wait)
            time.sleep(wait)


class FineWebDatasource(Datasource):
    """A Ray Data datasource over an :class:`InputPlan` (discovered up front).

    ``done_units`` (unit -> documents) are units a resumed run already wrote: a fragment
    made only of such units gets no read task at all; others skip those blocks.
    """

    def __init__(self, plan: InputPlan, cfg: InputConfig, storage: StorageConfig,
                 done_units: dict[str, int] | None = None) -> None:
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
        for frag in plan_fragments(self._plan, self._cfg.rows_per_task):
            skip = frozenset(u for u in fragment_units(frag, self._cfg.rows_per_task)
                             if u in self._done)
            if sum(self._done[u] for u in skip) == frag.num_rows:
                continue
            share = frag.num_rows / max(frag.file.num_rows, 1)
            meta = BlockMetadata(
                num_rows=frag.num_rows,
                size_bytes=int(frag.file.text_bytes * share),
                exec_stats=None,
                input_files=(frag.file.display,),
            )
            read_fn = functools.partial(read_fragment, frag, self._cfg, self._storage, skip)
            tasks.append(ReadTask(read_fn, meta, schema=S.DOCUMENT_SCHEMA,
                                  per_task_row_limit=per_task_row_limit))
        return tasks
