"""Models on object storage, staged once per node to a node-local folder.

``model.name`` (or ``model.tokenizer``) may be a URI such as
``s3://bucket/models/query-crafter``. Each process that needs the model calls
:func:`staged` and gets a local folder: the first process on a node copies the files
(under a file lock, so eight replicas on one node make one copy), writing into
``<key>.partial/`` and renaming it when every file is complete and checked (size against
the source; a SHA-256 of each file is recorded); the others wait for the lock and find
the copy ready. A copy cut short (a killed process) is resumed: files already complete
are kept, the rest copied again. Processes that only tokenize stage the files without
the weights. Nothing here calls a model hub.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs as pafs

from qcraft_ray.config import ModelConfig, StorageConfig
from qcraft_ray.store import filesystems
from qcraft_ray.store.retry import RetryPolicy

log = logging.getLogger("qcraft")

MANIFEST = ".qcraft-model.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack")
_CHUNK = 8 << 20


def cache_root(model: ModelConfig) -> Path:
    """The node-local folder staged models go to."""
    root = model.cache_dir or os.environ.get("QCRAFT_MODEL_CACHE") or "~/.cache/qcraft/models"
    return Path(root).expanduser()


def _staged_name(model: ModelConfig) -> bool:
    return filesystems.is_uri(model.name) and not model.name.startswith("file://")


def _staged_tokenizer(model: ModelConfig) -> bool:
    return bool(model.tokenizer) and filesystems.is_uri(model.tokenizer or "")


def needs_staging(model: ModelConfig) -> bool:
    """Whether :func:`staged` copies anything: the model or its tokenizer is a URI."""
    return _staged_name(model) or _staged_tokenizer(model)


def staged(model: ModelConfig, storage: StorageConfig, weights: bool = True) -> ModelConfig:
    """``model`` with object-store locations replaced by node-local copies (``weights``:
    False stages only what a tokenizer needs). Local paths and hub ids pass unchanged."""
    updates = {}
    if _staged_name(model):
        updates["name"] = str(stage(model.name, model, storage, weights))
    if model.tokenizer and _staged_tokenizer(model):
        updates["tokenizer"] = str(stage(model.tokenizer, model, storage, weights=False))
    return model.model_copy(update=updates) if updates else model


def _key(uri: str, weights: bool) -> str:
    digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "model"
    return f"{name}-{digest}" + ("" if weights else "-tokenizer")


def stage(uri: str, model: ModelConfig, storage: StorageConfig, weights: bool = True) -> Path:
    """The local copy of the model folder at ``uri``, made once per node."""
    root = cache_root(model)
    root.mkdir(parents=True, exist_ok=True)
    target = root / _key(uri, weights)
    with locked(root / f"{target.name}.lock"):
        if (target / MANIFEST).exists():
            return target
        fs, inner = filesystems.resolve(uri, storage)
        retry = RetryPolicy.for_storage(storage)
        files = _listing(fs, inner, retry, weights)
        if not files:
            raise FileNotFoundError(f"model {uri}: no files found there")
        partial = root / f"{target.name}.partial"
        partial.mkdir(exist_ok=True)
        record = {}
        for rel, size in sorted(files.items()):
            local = partial / rel
            if not (local.exists() and local.stat().st_size == size):  # resumed: kept
                retry.call(
                    functools.partial(_copy, fs, f"{inner}/{rel}", local), f"staging {uri}/{rel}"
                )
            if local.stat().st_size != size:
                raise OSError(
                    f"staging {uri}/{rel}: {local.stat().st_size} bytes copied, "
                    f"the source has {size}"
                )
            record[rel] = {"size": size, "sha256": _sha256(local)}
        (partial / MANIFEST).write_text(
            json.dumps({"source": uri, "files": record}, indent=2, sort_keys=True)
        )
        if target.exists():
            shutil.rmtree(target)
        partial.rename(target)
        log.info("staged %s to %s (%d files)", uri, target, len(record))
        return target


def model_files(location: str, storage: StorageConfig) -> dict[str, int]:
    """Relative path -> size of every file of the model folder at ``location`` (a local
    path or an object-storage URI); empty when there is none."""
    fs, inner = filesystems.resolve(location, storage)
    return _listing(fs, inner, RetryPolicy(1, 1.0), weights=True)


def _listing(fs: pafs.FileSystem, inner: str, retry: RetryPolicy, weights: bool) -> dict[str, int]:
    infos = retry.call(
        lambda: fs.get_file_info(pafs.FileSelector(inner, recursive=True, allow_not_found=True)),
        f"listing {inner}",
    )
    cut = len(inner.rstrip("/")) + 1
    return {
        i.path[cut:]: i.size
        for i in infos
        if i.type == pafs.FileType.File and (weights or not i.path.endswith(WEIGHT_SUFFIXES))
    }


def _copy(fs: pafs.FileSystem, source: str, local: Path) -> None:
    local.parent.mkdir(parents=True, exist_ok=True)
    with fs.open_input_stream(source) as src, open(local, "wb") as out:
        while chunk := src.read(_CHUNK):
            out.write(chunk)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock among the processes of this node (released if one dies)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
