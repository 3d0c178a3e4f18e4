"""The output folder: one filesystem and root, every call retried, every write atomic.

Built once from ``output.path`` and ``storage`` (:meth:`OutputFolder.for_run`), and
picklable (write tasks get a copy and build their own filesystem client from their own
environment, so no credential is ever pickled). Paths given to it are relative to the
root; a path that could leave the root (absolute, or with a ``..`` part) is refused.

Writes are atomic: the bytes are made first (Parquet encoded with the configured
compression, JSON serialised), then published in one step: on an object store sent as
one object (visible only once its upload completes), elsewhere (local disks, HDFS,
filesystems reached through fsspec) written under ``_temporary/`` and renamed. Readers
never see a partial file. Every call, reads, listings and deletes included, is retried
on I/O errors by the folder's :class:`RetryPolicy`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import uuid
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from qcraft_ray import schema as S
from qcraft_ray.config import OutputConfig, StorageConfig
from qcraft_ray.store import filesystems
from qcraft_ray.store.retry import RetryPolicy

T = TypeVar("T")

# Names of what the folder holds besides data files (all "_"-prefixed: readers skip them).
REJECTED_DIR = "_rejected"
TEMP_DIR = "_temporary"
MANIFEST_DIR = "_manifests"
CHECKPOINT_DIR = "_checkpoints"
ICEBERG_DIR = "_iceberg"  # Iceberg manifests staged while the run goes (lake/staged.py)
RUN_FILE = "_run.json"
REPORT_FILE = "_report.json"
REPORT_HTML = "_report.html"
SUCCESS_FILE = "_SUCCESS"
THRESHOLDS_FILE = "_thresholds.json"
LEASE_FILE = "_lease.json"
LOG_DIR = "_logs"  # the driver's log of each run's messages kept off the terminal

# Filesystems (pyarrow type names) whose objects appear only once their upload completes:
# written in place. Every other filesystem gets a temporary file and a rename.
_WHOLE_OBJECT_STORES = ("s3", "gcs", "abfs")


def is_inside(rel: str) -> bool:
    """Whether the relative path ``rel`` stays inside the folder it is joined to."""
    return bool(rel) and not rel.startswith("/") and ".." not in rel.split("/")


def check_relative(rel: str) -> str:
    """``rel`` if it stays inside the folder; ``ValueError`` otherwise."""
    if not is_inside(rel):
        raise ValueError(f"{rel!r} is not a path inside the output folder")
    return rel


class _Client:
    """The folder's filesystem and root, resolved on first use; shared by the views of
    one folder (:meth:`OutputFolder.with_retry`, :meth:`OutputFolder.with_compression`),
    so they make one client between them."""

    def __init__(
        self, path: str, storage: StorageConfig, filesystem: pafs.FileSystem | None
    ) -> None:
        self.path = path
        self.storage = storage
        self.given = filesystem
        self._resolved: tuple[pafs.FileSystem, str] | None = (
            (filesystem, path.rstrip("/")) if filesystem is not None else None
        )

    def target(self) -> tuple[pafs.FileSystem, str]:
        if self._resolved is None:
            self._resolved = filesystems.resolve(self.path, self.storage)
        return self._resolved

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.given is None:
            state["_resolved"] = None  # each process builds its own client
        return state


class OutputFolder:
    """``output.path`` as a filesystem, a root, retries and atomic puts."""

    def __init__(
        self,
        path: str,
        storage: StorageConfig | None = None,
        compression: str = "zstd",
        filesystem: pafs.FileSystem | None = None,
    ) -> None:
        """``filesystem``: use this one (``path`` is then a path inside it) instead of
        resolving ``path`` with ``storage``."""
        self.path = path
        self.compression = compression
        self._client = _Client(path, storage or StorageConfig(), filesystem)
        self.retry = RetryPolicy.for_storage(self._client.storage)

    @classmethod
    def for_run(cls, output: OutputConfig, storage: StorageConfig) -> OutputFolder:
        return cls(output.path, storage, output.compression)

    def with_compression(self, compression: str) -> OutputFolder:
        """The same folder (the same filesystem client), writing with ``compression``."""
        view = copy.copy(self)
        view.compression = compression
        return view

    def with_retry(self, retry: RetryPolicy) -> OutputFolder:
        """The same folder (the same filesystem client), its calls retried by ``retry``."""
        view = copy.copy(self)
        view.retry = retry
        return view

    @property
    def _fs(self) -> pafs.FileSystem:
        return self._client.target()[0]

    @property
    def root(self) -> str:
        return self._client.target()[1]

    def _abs(self, rel: str) -> str:
        return filesystems.join(self.root, check_relative(rel))

    def display(self, rel: str = "") -> str:
        """The name users see for ``rel`` (a URI for object stores)."""
        return filesystems.join(self.path, rel) if rel else self.path

    def uri(self, rel: str) -> str:
        """A full URI for ``rel`` that other tools can open (``file://`` when local)."""
        if filesystems.is_uri(self.path) and not self.path.startswith("file://"):
            return self.display(rel)
        return "file://" + self._abs(rel)

    def _call(self, fn: Callable[[], T], what: str, rel: str = "") -> T:
        return self.retry.call(fn, f"{what} {self.display(rel)}")

    # --- the root ---

    def root_kind(self) -> Literal["missing", "file", "folder"]:
        """What ``output.path`` is now."""
        kind = self._call(lambda: self._fs.get_file_info(self.root).type, "reading")
        if kind == pafs.FileType.NotFound:
            return "missing"
        return "folder" if kind == pafs.FileType.Directory else "file"

    def root_entries(self) -> list[str]:
        """Names directly under the root (empty when it does not exist)."""
        infos = self._call(
            lambda: self._fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True)),
            "listing",
        )
        return [i.path.rsplit("/", 1)[-1] for i in infos]

    def create(self) -> None:
        self._call(lambda: self._fs.create_dir(self.root, recursive=True), "creating")

    def remove(self) -> None:
        """Delete the root folder and everything in it; one already gone is fine."""

        def rm() -> None:
            if self._fs.get_file_info(self.root).type == pafs.FileType.Directory:
                self._fs.delete_dir(self.root)

        self._call(rm, "deleting")

    def clear(self) -> None:
        """Delete everything under the root."""
        self._call(lambda: self._fs.delete_dir_contents(self.root, missing_dir_ok=True), "clearing")

    # --- files ---

    def exists(self, rel: str) -> bool:
        path = self._abs(rel)
        kind = self._call(lambda: self._fs.get_file_info(path).type, "reading", rel)
        return bool(kind != pafs.FileType.NotFound)

    def list_files(self, rel_dir: str = "", suffix: str = "", recursive: bool = False) -> list[str]:
        """Files in ``rel_dir`` (and its subfolders when ``recursive``) ending in
        ``suffix``, relative to the root, sorted."""
        folder = self._abs(rel_dir) if rel_dir else self.root
        selector = pafs.FileSelector(folder, allow_not_found=True, recursive=recursive)
        infos = self._call(lambda: self._fs.get_file_info(selector), "listing", rel_dir)
        cut = len(self.root.rstrip("/")) + 1
        return sorted(
            i.path[cut:] for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix)
        )

    def read_bytes(self, rel: str) -> bytes:
        path = self._abs(rel)

        def get() -> bytes:
            with self._fs.open_input_stream(path) as f:
                return bytes(f.read())

        return self._call(get, "reading", rel)

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel).decode("utf-8"))

    def read_parquet(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        """A whole Parquet file; ``columns`` that the file lacks are left out."""
        path = self._abs(rel)

        def get() -> pa.Table:
            with self._fs.open_input_file(path) as f:
                source = pq.ParquetFile(f)
                names = source.schema_arrow.names
                wanted = None if columns is None else [c for c in columns if c in names]
                return source.read(columns=wanted)

        return self._call(get, "reading", rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Publish ``data`` at ``rel`` in one step: readers see all of it or nothing."""
        final = self._abs(rel)
        in_place = self._fs.type_name in _WHOLE_OBJECT_STORES

        def put() -> None:
            if not in_place:
                temp_dir = filesystems.join(self.root, TEMP_DIR)
                self._fs.create_dir(temp_dir, recursive=True)
                self._fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
                temp = filesystems.join(temp_dir, f"{uuid.uuid4().hex[:12]}.tmp")
                with self._fs.open_output_stream(temp) as f:
                    f.write(data)
                self._fs.move(temp, final)
                return
            with self._fs.open_output_stream(final) as f:  # one object, whole or nothing
                f.write(data)

        self._call(put, "writing", rel)

    def write_json(self, rel: str, data: Any) -> None:
        self.write_bytes(rel, json.dumps(data, indent=2, sort_keys=True, default=str).encode())

    def encode_parquet(self, table: pa.Table) -> bytes:
        """``table`` as the bytes of one Parquet file with the folder's compression and
        the output schema's version in its metadata."""
        sink = pa.BufferOutputStream()
        pq.write_table(
            S.versioned(table),
            sink,
            compression=None if self.compression == "none" else self.compression,
        )
        return bytes(sink.getvalue().to_pybytes())

    def write_parquet(self, rel: str, table: pa.Table) -> None:
        """``table`` as one Parquet file with the folder's compression."""
        self.write_bytes(rel, self.encode_parquet(table))

    def delete(self, rel: str) -> None:
        """Delete a file; one already gone is fine."""
        path = self._abs(rel)

        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self._fs.delete_file(path)

        self._call(rm, "deleting", rel)

    def delete_dir(self, rel: str) -> None:
        """Delete a folder and what it holds; one already gone is fine."""
        path = self._abs(rel)

        def rm() -> None:
            if self._fs.get_file_info(path).type == pafs.FileType.Directory:
                self._fs.delete_dir(path)

        self._call(rm, "deleting", rel)
