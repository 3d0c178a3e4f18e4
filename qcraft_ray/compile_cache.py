"""vLLM's and torch's compile caches, shared by a cluster's replicas through a folder on
object storage (``generation.engine.compile_cache``).

An engine's first start on a node compiles the model (torch.compile: seconds on a CPU,
tens of seconds on a GPU) unless the node's caches already hold the result. With a shared
folder, the replicas publish what they compiled and fetch what others published before
their engine starts, so a cluster compiles once per (vLLM, torch, device) and every
other node loads.

At the shared folder, per model, vLLM and torch release and device (the key):
``<key>/<publish>/<file>`` and ``<key>/<publish>.done``, a JSON
list of that publish's files (relative path -> size), written after them: a fetch reads
complete publishes only. The files are the caches' own, which name their entries by
hashes of what they hold, so the publishes of several nodes merge into one folder.

On a node: ``<model cache>/compile-<key>/vllm`` and ``.../inductor`` are the replica
process's ``VLLM_CACHE_ROOT`` and ``TORCHINDUCTOR_CACHE_DIR`` (the engine-core process
vLLM starts inherits them; triton's kernels go under inductor's folder). A file lock
lets one process of the node fetch or publish at a time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from qcraft_ray.compat.versions import VLLM, installed
from qcraft_ray.config import GenerationConfig, ModelConfig, StorageConfig
from qcraft_ray.model_cache import cache_root, locked
from qcraft_ray.store import OutputFolder, filesystems
from qcraft_ray.store.folder import is_inside
from qcraft_ray.store.retry import RetryPolicy

log = logging.getLogger("qcraft")

DONE = ".done"
# what the caches write that another node must not take: inductor's lock files, files
# being written (inductor writes ``.<pid>.<thread>.tmp`` and renames)
_SKIPPED_DIRS = ("locks",)
_SKIPPED_SUFFIXES = (".lock", ".tmp", ".qcraft-partial")


@dataclass(frozen=True)
class Fetched:
    """What a replica took from the shared folder before its engine started."""

    files: int
    bytes: int
    publishes: int  # complete publishes found there


def cache_key(device: str, model: str) -> str:
    """The caches' key: the model (as configured), the vLLM and torch releases and the
    device kind (the caches key their entries by the hardware and the engine's settings
    within)."""

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "none"

    name = model.rstrip("/").rsplit("/", 1)[-1] or "model"
    digest = hashlib.sha256(model.encode()).hexdigest()[:8]
    raw = f"{name}-{digest}-vllm-{installed(VLLM) or 'none'}-torch-{version('torch')}-{device}"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in raw)


def local_folder(model: ModelConfig, key: str) -> Path:
    """The node-local folder of the caches for ``key``."""
    return cache_root(model) / f"compile-{key}"


def use_local_caches(folder: Path) -> None:
    """Point this process's vLLM and torch caches into ``folder`` (before vLLM's import:
    the replica's process belongs to its engine, and the engine core inherits them)."""
    (folder / "vllm").mkdir(parents=True, exist_ok=True)
    (folder / "inductor").mkdir(parents=True, exist_ok=True)
    os.environ["VLLM_CACHE_ROOT"] = str(folder / "vllm")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")


def local_files(folder: Path, settled_before: float | None = None) -> dict[str, int]:
    """Relative path -> size of the cache files in ``folder`` (``settled_before``: only
    those last modified before it)."""
    out: dict[str, int] = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if (
            not path.is_file()
            or any(part in _SKIPPED_DIRS for part in rel.parts)
            or path.name.endswith(_SKIPPED_SUFFIXES)
        ):
            continue
        stat = path.stat()
        if settled_before is not None and stat.st_mtime > settled_before:
            continue
        out[rel.as_posix()] = stat.st_size
    return out


class SharedCompileCache:
    """The shared folder at ``uri`` for the caches ``key`` names, and this node's copy in
    ``folder``."""

    def __init__(self, uri: str, key: str, folder: Path, storage: StorageConfig) -> None:
        self.uri = uri
        self.folder = folder
        self._lock = folder.with_name(folder.name + ".lock")  # one process of the node at a time
        # the store's folder client (atomic puts); tried twice at most: a replica waiting
        # on a store that does not answer compiles sooner
        self._shared = OutputFolder(filesystems.join(uri, key), storage).with_retry(
            RetryPolicy(2, 1.0)
        )

    def publishes(self) -> dict[str, dict[str, int]]:
        """Every complete publish: its name -> its files (relative path -> size)."""
        return {
            done[: -len(DONE)]: self._shared.read_json(done)
            for done in self._shared.list_files(suffix=DONE)
        }

    def fetch(self) -> Fetched:
        """Copy to this node every published file it lacks (same path and size kept; of
        two publishes with different sizes for a path, the later one). A listed path
        that would land outside the node's folder is refused, logged."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with locked(self._lock):
            publishes = self.publishes()
            have = local_files(self.folder)
            files = size = 0
            for name, listed in publishes.items():
                for rel, length in listed.items():
                    if have.get(rel) == length:
                        continue
                    if not is_inside(rel):
                        log.warning("compile cache %s/%s: refused path %r", self.uri, name, rel)
                        continue
                    data = self._shared.read_bytes(f"{name}/{rel}")
                    if len(data) != length:  # not what was listed: left out
                        continue
                    target = self.folder / rel
                    partial = target.with_name(target.name + ".qcraft-partial")
                    partial.parent.mkdir(parents=True, exist_ok=True)
                    partial.write_bytes(data)
                    partial.replace(target)
                    have[rel] = length
                    files, size = files + 1, size + length
        return Fetched(files, size, len(publishes))

    def publish(self, settled_before: float) -> int:
        """Publish the node's cache files last modified before ``settled_before`` (epoch
        seconds: when this process's engine was ready) that no complete publish holds;
        the count. A file still being written by another engine of the node is left to
        a later publish; one that changed since it was listed is left out."""
        with locked(self._lock):
            published: dict[str, int] = {}
            for listed in self.publishes().values():
                published.update(listed)
            local = local_files(self.folder, settled_before)
            new = {r: n for r, n in local.items() if published.get(r) != n}
            if not new:
                return 0
            # named by time first: the publishes list in the order they were made
            name = f"{int(time.time() * 1000):013d}-{socket.gethostname()}-{os.getpid()}"
            sent = {}
            for rel in sorted(new):
                data = (self.folder / rel).read_bytes()
                if len(data) == new[rel]:  # else it changed: a later publish takes it
                    self._shared.write_bytes(f"{name}/{rel}", data)
                    sent[rel] = len(data)
            self._shared.write_json(f"{name}{DONE}", sent)  # after its files
            return len(sent)


def shared_for(
    gen: GenerationConfig, model: ModelConfig, storage: StorageConfig
) -> SharedCompileCache | None:
    """The shared caches ``generation.engine.compile_cache`` names, for a vLLM replica,
    with this process's caches pointed at the node's copy (None: not configured)."""
    uri = gen.engine.compile_cache
    if not uri or gen.engine.backend != "vllm":
        return None
    key = cache_key(gen.device, model.name)
    folder = local_folder(model, key)
    use_local_caches(folder)
    return SharedCompileCache(uri, key, folder, storage)


def fetch_quietly(shared: SharedCompileCache) -> Fetched | str:
    """:meth:`SharedCompileCache.fetch`; a failure is logged and returned as its line
    (the engine compiles)."""
    try:
        return shared.fetch()
    except Exception as e:  # the caches only save time: never fail the replica
        log.warning("compile cache %s: fetch failed, compiling here: %r", shared.uri, e)
        return f"{type(e).__name__}: {e}"


def publish_quietly(shared: SharedCompileCache, settled_before: float) -> None:
    """:meth:`SharedCompileCache.publish`, logged (a failure too: only time is lost)."""
    try:
        count = shared.publish(settled_before)
    except Exception as e:
        log.warning("compile cache %s: publish failed: %r", shared.uri, e)
        return
    if count:
        log.info("compile cache %s: published %d files", shared.uri, count)


def inductor_lookups() -> tuple[int | None, int | None]:
    """(hits, misses) of torch's compiled-graph cache in this process; (None, None) when
    nothing was looked up here (no torch.compile, or the engine core's own process)."""
    utils = sys.modules.get("torch._dynamo.utils")
    counts = getattr(utils, "counters", {}).get("inductor", {}) if utils else {}
    hits, misses = counts.get("fxgraph_cache_hit", 0), counts.get("fxgraph_cache_miss", 0)
    return (hits, misses) if hits or misses else (None, None)
