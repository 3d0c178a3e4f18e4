"""Manifests: what each write task committed. The accepted manifests are the output.

The commit protocol of one write task:

1. write its data files (each published atomically by the output folder);
2. write its manifest, ``_manifests/<attempt>-<task>.json``: the files, the rows it
   committed per work unit, and its counters.

A data file that no manifest names was left by a task that died between the two steps;
:func:`remove_orphans` deletes such files before a resume and before a run is marked
complete, so they are never counted or read as output.

Passes over committed output (the percentile filter, ``qcraft score``) change files by
the same protocol (:func:`replace_files`): write new files under new names, switch the
manifest in one write, then delete the old files. A crash at any point leaves either the
old manifest with its old files or the new one with its new files, plus orphans.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.ledger.units import UnitCounts
from qcraft_ray.store import MANIFEST_DIR, REJECTED_DIR, TEMP_DIR, OutputFolder
from qcraft_ray.store.folder import is_inside


def manifest_name(attempt: str, task: int) -> str:
    """The name of the manifest write task ``task`` of ``attempt`` commits."""
    return f"{attempt}-{task:06d}.json"


@dataclass
class Manifest:
    """What one write task committed, and what later passes made of it."""

    attempt: str
    task: int
    files: list[str]  # relative to output.path
    units: dict[str, UnitCounts] = field(default_factory=dict)
    counts: RowCounts = field(default_factory=RowCounts)
    revision: int = 0  # times its files were replaced since the task committed
    scored_with: str | None = None  # the model `qcraft score` last scored its files with

    @property
    def name(self) -> str:
        return manifest_name(self.attempt, self.task)

    @property
    def data_files(self) -> list[str]:
        return [f for f in self.files if not f.startswith(REJECTED_DIR + "/")]

    def to_json(self) -> dict:
        return {
            "attempt": self.attempt,
            "task": self.task,
            "files": self.files,
            "units": {u: vars(c) for u, c in self.units.items()},
            "counts": self.counts.to_json(),
            "revision": self.revision,
            "scored_with": self.scored_with,
        }

    @classmethod
    def from_json(cls, data: dict, where: str) -> Manifest:
        bad = [f for f in data["files"] if not is_inside(f)]
        if bad:  # names are ours; refuse anything that could leave output.path
            raise ValueError(f"manifest {where} names files outside the output folder: {bad}")
        return cls(
            data["attempt"],
            data["task"],
            list(data["files"]),
            {u: UnitCounts(**c) for u, c in data.get("units", {}).items()},
            RowCounts.from_json(data.get("counts", {})),
            data.get("revision", 0),
            data.get("scored_with"),
        )


def commit(folder: OutputFolder, manifest: Manifest) -> None:
    """Write (or switch) a manifest: one atomic write."""
    folder.write_json(f"{MANIFEST_DIR}/{manifest.name}", manifest.to_json())


def manifest_names(folder: OutputFolder) -> list[str]:
    """The names of the committed manifests (a listing: nothing read)."""
    return [rel.rsplit("/", 1)[-1] for rel in folder.list_files(MANIFEST_DIR, ".json")]


def read_manifest(folder: OutputFolder, name: str) -> Manifest:
    rel = f"{MANIFEST_DIR}/{name}"
    return Manifest.from_json(folder.read_json(rel), folder.display(rel))


def iter_manifests(
    folder: OutputFolder, names: list[str], max_workers: int = 32, window: int = 512
) -> Iterator[Manifest]:
    """The manifests ``names``, read in parallel threads and handed out in order, at most
    ``window`` read ahead (the caller folds each and lets it go)."""
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        ahead: deque[Future[Manifest]] = deque()
        for name in names:
            ahead.append(pool.submit(read_manifest, folder, name))
            if len(ahead) >= window:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def read_manifests(folder: OutputFolder, max_workers: int = 32) -> list[Manifest]:
    """Every committed manifest in the folder, all held at once (passes that rewrite
    every file use this; the run's bookkeeping folds them: ledger.checkpoints.fold)."""
    return list(iter_manifests(folder, manifest_names(folder), max_workers))


def remove(folder: OutputFolder, manifest: Manifest) -> None:
    folder.delete(f"{MANIFEST_DIR}/{manifest.name}")


def _output_files(found: list[str]) -> list[str]:
    """The data and rejected files among ``found``: Parquet files in the folder and its
    partition folders, and in ``_rejected/`` (other ``_``- and ``.``-prefixed folders
    are bookkeeping)."""
    return [
        f
        for f in found
        if f.endswith(".parquet")
        and (not f.startswith(("_", ".")) or f.startswith(REJECTED_DIR + "/"))
    ]


def data_and_rejected_files(folder: OutputFolder) -> list[str]:
    """Parquet files in the folder and its partition folders, and in ``_rejected/``,
    relative."""
    return _output_files(folder.list_files("", ".parquet", recursive=True))


@dataclass(frozen=True)
class OutputListing:
    """One listing of the whole output folder: the manifests' names and the data and
    rejected files (a resume and the finalise need both; on an object store a listing
    costs a request per thousand objects)."""

    manifests: list[str]
    files: list[str]


def list_output(folder: OutputFolder) -> OutputListing:
    found = folder.list_files("", "", recursive=True)
    prefix = MANIFEST_DIR + "/"
    manifests = [
        rel[len(prefix) :]
        for rel in found
        if rel.startswith(prefix) and rel.endswith(".json") and "/" not in rel[len(prefix) :]
    ]
    return OutputListing(manifests, _output_files(found))


def remove_orphans(folder: OutputFolder, manifests: list[Manifest]) -> list[str]:
    """Delete data files that none of ``manifests`` commits, and ``_temporary/``;
    return what went."""
    return remove_uncommitted(folder, {f for m in manifests for f in m.files})


def remove_uncommitted(
    folder: OutputFolder, committed: set[str], found: list[str] | None = None
) -> list[str]:
    """Delete data files not in ``committed``, and ``_temporary/``; return what went.
    ``found``: the data and rejected files a listing found (default: listed here)."""
    found = data_and_rejected_files(folder) if found is None else found
    orphans = [f for f in found if f not in committed]
    for rel in orphans:
        folder.delete(rel)
    folder.delete_dir(TEMP_DIR)
    return orphans


_REVISION = re.compile(r"-r\d+$")


def revised_name(rel: str, revision: int) -> str:
    """The name of ``rel``'s replacement at ``revision``: ``<stem>-r<revision>.parquet``."""
    stem = _REVISION.sub("", rel.rsplit(".", 1)[0])
    return f"{stem}-r{revision}.parquet"


def replace_files(
    folder: OutputFolder,
    manifest: Manifest,
    new_files: dict[str, pa.Table],
    replaced: list[str],
    counts: RowCounts,
    scored_with: str | None = None,
) -> Manifest:
    """Commit ``new_files`` (relative name -> rows) in place of ``replaced``.

    New files are written first, then the manifest is switched in one write, then the
    replaced files are deleted. Names carry the manifest's next revision, so a pass
    repeated after a crash writes the same names again."""
    for rel, table in new_files.items():
        folder.write_parquet(rel, table)
    kept = [f for f in manifest.files if f not in set(replaced)]
    new = Manifest(
        manifest.attempt,
        manifest.task,
        kept + list(new_files),
        manifest.units,
        counts,
        manifest.revision + 1,
        scored_with if scored_with is not None else manifest.scored_with,
    )
    commit(folder, new)
    for rel in replaced:
        folder.delete(rel)
    return new
