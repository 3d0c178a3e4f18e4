"""Staging a model from object storage (fsspec's in-memory filesystem stands in for the
bucket here; tests/integration/test_multinode.py stages from SeaweedFS on real nodes)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid

import fsspec
import pytest

from qcraft_ray.config import ModelConfig, StorageConfig
from qcraft_ray.model_cache import MANIFEST, staged

FILES = {"config.json": b'{"a": 1}', "tokenizer.json": b"t" * 5000,
         "model.safetensors": os.urandom(300_000), "sub/extra.txt": b"x"}


@pytest.fixture
def bucket():
    root = f"memory://models-{uuid.uuid4().hex[:8]}/tiny"
    fs = fsspec.filesystem("memory")
    for rel, data in FILES.items():
        with fs.open(f"{root}/{rel}", "wb") as f:
            f.write(data)
    return root


def model(root, tmp_path):
    return ModelConfig(name=root, cache_dir=str(tmp_path / "cache"))


def test_staged_once_with_checksums(bucket, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="qcraft")
    local = staged(model(bucket, tmp_path), StorageConfig())
    assert local.name != bucket and os.path.isdir(local.name)
    record = json.loads(open(os.path.join(local.name, MANIFEST)).read())
    assert record["source"] == bucket
    assert record["files"] == {rel: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                               for rel, d in FILES.items()}
    for rel, data in FILES.items():
        assert open(os.path.join(local.name, rel), "rb").read() == data
    again = staged(model(bucket, tmp_path), StorageConfig())
    assert again.name == local.name
    assert sum("staged" in r.message for r in caplog.records) == 1  # copied once


def test_one_copy_for_many_replicas_on_a_node(bucket, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="qcraft")
    got = []
    threads = [threading.Thread(target=lambda: got.append(
        staged(model(bucket, tmp_path), StorageConfig()).name)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and len(got) == 8
    assert sum("staged" in r.message for r in caplog.records) == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()
                  if not p.name.endswith(".lock")) == [os.path.basename(got[0])]


def test_half_copy_is_resumed(bucket, tmp_path):
    first = staged(model(bucket, tmp_path), StorageConfig()).name
    partial = first + ".partial"
    os.rename(first, partial)  # as if the copier died before its rename
    os.remove(os.path.join(partial, MANIFEST))
    with open(os.path.join(partial, "model.safetensors"), "r+b") as f:
        f.truncate(1000)  # cut short
    kept = os.stat(os.path.join(partial, "tokenizer.json")).st_mtime_ns
    again = staged(model(bucket, tmp_path), StorageConfig()).name
    assert again == first and not os.path.exists(partial)
    assert open(os.path.join(again, "model.safetensors"), "rb").read() == \
        FILES["model.safetensors"]
    assert os.stat(os.path.join(again, "tokenizer.json")).st_mtime_ns == kept  # resumed


def test_tokenizer_only_and_local_names_untouched(bucket, tmp_path):
    tok = staged(model(bucket, tmp_path), StorageConfig(), weights=False).name
    assert sorted(os.listdir(tok)) == sorted([MANIFEST, "config.json", "tokenizer.json",
                                              "sub"])
    local = ModelConfig(name=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert staged(local, StorageConfig()) is local
    with pytest.raises(FileNotFoundError, match="no files found"):
        staged(model(bucket + "-missing", tmp_path), StorageConfig())
