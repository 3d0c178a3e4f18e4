"""Committing output: atomic small files, write-task manifests, orphan clean-up, retries.

The commit protocol of one write task:

1. write its data files (each visible only when complete: local files are written
   under ``_temporary/`` and renamed; an object store publishes an object when its
   upload completes);
2. write its manifest, ``_manifests/<attempt>-<task>.json``: the files, the rows it
   committed per work unit, and its counters.

A data file that no manifest names was left by a task that died between the two steps;
:func:`remove_orphans` deletes such files before a resume and before a run is marked
complete, so they are never counted or read as output. Every storage call goes through
:func:`with_retries`, which rides out short outages (``OSError`` is what pyarrow
filesystems raise for I/O and network failures).
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from qcraft_ray.config import StorageConfig
from qcraft_ray.io import filesystems

log = logging.getLogger("qcraft")

REJECTED_DIR = "_rejected"
TEMP_DIR = "_temporary"
MANIFEST_DIR = "_manifests"
RUN_FILE = "_run.json"
REPORT_FILE = "_report.json"
SUCCESS_FILE = "_SUCCESS"

T = TypeVar("T")


@dataclass
class Manifest:
    """What one write task committed."""

    attempt: str
    task: int
    files: list[str]  # relative to output.path
    units: dict[str, list] = field(default_factory=dict)  # see stages.units.UnitCounts
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.attempt}-{self.task:06d}.json"


def with_retries(fn: Callable[[], T], what: str, attempts: int, max_backoff: float) -> T:
    """Call ``fn``; on ``OSError`` wait (1, 2, 4, ... s, capped) and try again."""
    for i in range(attempts):
        try:
            return fn()
        except OSError as e:
            if i == attempts - 1:
                raise OSError(f"{what}: failed {attempts} times; last error: {e}") from e
            wait = min(2.0 ** i, max_backoff)
            log.warning("%s: %s; retrying in %.0f s (try %d of %d)", what, e, wait, i + 2,
                        attempts)
            time.sleep(wait)
    raise AssertionError("unreachable")


def retrying(storage: StorageConfig) -> Callable[[Callable[[], T], str], T]:
    """``with_retries`` bound to the storage settings."""
    return lambda fn, what: with_retries(fn, what, storage.attempts,
                                         storage.retry_max_backoff_s)


def put_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write a small file so that readers see all of it or nothing."""
    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
        return
    with fs.open_output_stream(path) as f:  # one PUT: atomic on object stores
        f.write(data)


def put_json(fs: pafs.FileSystem, path: str, data: dict) -> None:
    put_bytes(fs, path, json.dumps(data, indent=2, sort_keys=True, default=str).encode())


def get_json(fs: pafs.FileSystem, path: str) -> dict:
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode("utf-8"))


def put_parquet(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    """Write a whole Parquet file (zstd) so that readers see all of it or nothing."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    put_bytes(fs, path, sink.getvalue())


def get_parquet(fs: pafs.FileSystem, path: str) -> pa.Table:
    with fs.open_input_file(path) as f:
        return pq.read_table(f)


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def write_manifest(fs: pafs.FileSystem, root: str, manifest: Manifest) -> None:
    put_json(fs, filesystems.join(root, MANIFEST_DIR, manifest.name), asdict(manifest))


def read_manifests(fs: pafs.FileSystem, root: str, max_workers: int = 32) -> list[Manifest]:
    """Every committed manifest under ``root`` (read in parallel threads)."""
    folder = filesystems.join(root, MANIFEST_DIR)
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    paths = sorted(i.path for i in infos
                   if i.type == pafs.FileType.File and i.path.endswith(".json"))
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        manifests = [Manifest(**d) for d in pool.map(lambda p: get_json(fs, p), paths)]
    for m in manifests:  # names are ours; refuse anything that could leave output.path
        bad = [f for f in m.files if f.startswith("/") or ".." in f.split("/")]
        if bad:
            raise ValueError(f"manifest {m.name} in {root} names files outside the output "
                             f"folder: {bad}")
    return manifests


def data_files(fs: pafs.FileSystem, root: str) -> list[str]:
    """Parquet files of the output and of ``_rejected/``, relative to ``root``."""
    found = []
    for sub in ("", REJECTED_DIR):
        folder = filesystems.join(root, sub) if sub else root
        for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
            if info.type == pafs.FileType.File and info.path.endswith(".parquet"):
                found.append(info.path[len(root.rstrip("/")) + 1:])
    return sorted(found)


def remove_manifest(fs: pafs.FileSystem, root: str, manifest: Manifest) -> None:
    fs.delete_file(filesystems.join(root, MANIFEST_DIR, manifest.name))


def remove_orphans(fs: pafs.FileSystem, root: str, manifests: list[Manifest]) -> list[str]:
    """Delete data files that none of ``manifests`` commits, and ``_temporary/``;
    return what went."""
    committed = {f for m in manifests for f in m.files}
    orphans = [f for f in data_files(fs, root) if f not in committed]
    for rel in orphans:
        fs.delete_file(filesystems.join(root, rel))
    temp = filesystems.join(root, TEMP_DIR)
    if fs.get_file_info(temp).type == pafs.FileType.Directory:
        fs.delete_dir(temp)
    return orphans
