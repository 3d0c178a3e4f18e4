"""A run's Parquet files as Iceberg data files.

What pyiceberg's ``Table.add_files`` does, without its per-file repeats: it converts the
table's schema to a statistics plan and a column mapping, and checks the file's Arrow
schema against the table's, for every file (half its time a file). Here the plan and the
mapping are made once and each distinct Arrow schema is checked once (a run's files
share one); footers are read by a pool of threads (object-store reads wait on the
network), and a large run's files are split over a pool of processes (the conversion is
Python). Each data file carries the same statistics, partition values and size as
``add_files`` gives it (a unit test compares them). Measured: bench/RESULTS-bookkeeping.md.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata

READ_THREADS = 16  # footer reads in flight a process
PROCESSES_FROM = 4096  # files; fewer are converted in this process
MAX_PROCESSES = 16


def data_files(table: Table, file_uris: list[str], threads: int = READ_THREADS) -> list[DataFile]:
    """The Iceberg data file of each of ``file_uris`` (read from its footer), in order.
    From :data:`PROCESSES_FROM` files on, the work is split over a pool of processes (one
    a CPU of this machine, up to :data:`MAX_PROCESSES`), each with its thread pool."""
    workers = min(os.cpu_count() or 1, MAX_PROCESSES)
    if len(file_uris) < PROCESSES_FROM or workers < 2:
        return _convert(table.io, table.metadata, file_uris, threads)
    size = -(-len(file_uris) // (workers * 4))  # chunks: a slow one does not hold the rest
    chunks = [file_uris[i : i + size] for i in range(0, len(file_uris), size)]
    spawn = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
        n = len(chunks)
        parts = pool.map(_convert, [table.io] * n, [table.metadata] * n, chunks, [threads] * n)
        return [f for part in parts for f in part]


def _convert(io: FileIO, meta: TableMetadata, file_uris: list[str], threads: int) -> list[DataFile]:
    from pyiceberg.io.pyarrow import (
        _check_pyarrow_schema_compatible,
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

    schema, spec = meta.schema(), meta.spec()
    plan = compute_statistics_plan(schema, meta.properties)
    mapping = parquet_path_to_id_mapping(schema)
    checked: set[str] = set()
    lock = threading.Lock()

    def one(uri: str) -> DataFile:
        with io.new_input(uri).open() as stream:
            footer = pq.read_metadata(stream)
            size = stream.size()
        arrow = footer.schema.to_arrow_schema()
        key = arrow.to_string(show_schema_metadata=False)
        if key not in checked:
            _check_pyarrow_schema_compatible(schema, arrow, format_version=meta.format_version)
            with lock:
                checked.add(key)
        stats = data_file_statistics_from_parquet_metadata(
            parquet_metadata=footer, stats_columns=plan, parquet_column_mapping=mapping
        )
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=uri,
            file_format=FileFormat.PARQUET,
            partition=stats.partition(spec, schema),
            file_size_in_bytes=size,
            sort_order_id=None,
            spec_id=meta.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **stats.to_serialized_dict(),
        )

    with ThreadPoolExecutor(max(1, min(threads, len(file_uris)))) as pool:
        return list(pool.map(one, file_uris))
