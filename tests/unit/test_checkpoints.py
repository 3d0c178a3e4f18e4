"""Checkpoints of the committed manifests: the fold with one equals the fold without,
a torn or stale checkpoint is passed over, passes remove them, and the driver's writer
takes only what the run accepts. On a real local output folder; no Ray."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from qcraft_ray.ledger.checkpoints import (
    checkpoint_names,
    fold,
    invalidate,
    read_checkpoint,
    write_checkpoint,
)
from qcraft_ray.ledger.committed import Committed
from qcraft_ray.ledger.compactor import Compactor
from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.ledger.lease import acquire
from qcraft_ray.ledger.manifests import Manifest, commit, manifest_names
from qcraft_ray.ledger.state import RunState
from qcraft_ray.ledger.units import UnitCounts, merge_units
from qcraft_ray.mode import Mode
from qcraft_ray.store import CHECKPOINT_DIR, OutputFolder


def manifest(task: int, attempt: str = "a1") -> Manifest:
    langs = ["en", "ja", "de"]
    lang = langs[task % 3]
    counts = RowCounts(
        documents=2,
        passages=3,
        outputs={"ok": 5 + task, "none": 1},
        by_language={lang: {"ok": 5 + task}},
        by_language_type={f"{lang}/query": {"ok": 5 + task, "none": 1}},
        output_tokens=20 * task,
        output_tokens_histogram={f"{lang}/query": {"10-20": task}},
    )
    units = {
        f"s3://b/in/{task // 2:03d}.parquet@{(task % 2) * 1000}": UnitCounts(6, 6, 2, 2),
        f"s3://b/in/shared.parquet@{task % 4}": UnitCounts(1, 2, 1, 3),
    }
    files = [f"part-{attempt}-{task:06d}.parquet", f"_rejected/part-{attempt}-{task:06d}.parquet"]
    return Manifest(attempt, task, files, units, counts)


def folder_with(tmp_path, n: int) -> OutputFolder:
    folder = OutputFolder(str(tmp_path / "out"))
    folder.create()
    for i in range(n):
        commit(folder, manifest(i))
    return folder


def snapshot(c: Committed) -> tuple:
    return (
        sorted(c.names),
        sorted(c.files),
        c.counts.to_json(),
        {u: vars(x) for u, x in sorted(c.units.items())},
        {u: c.files_of([u]) for u, _ in c.units.items()},
    )


def test_the_fold_adds_up_as_the_manifests_do(tmp_path):
    folder = folder_with(tmp_path, 12)
    ms = [manifest(i) for i in range(12)]
    got = fold(folder)
    assert got.counts.to_json() == RowCounts.merge(m.counts for m in ms).to_json()
    assert (
        got.counts.to_json()
        == ms[0].counts.plus(RowCounts.merge(m.counts for m in ms[1:])).to_json()
    )
    assert {u: vars(c) for u, c in got.units.items()} == {
        u: vars(c) for u, c in merge_units(m.units for m in ms).items()
    }
    assert sorted(got.data_files) == sorted(f for m in ms for f in m.data_files)
    shared = "s3://b/in/shared.parquet@1"
    assert got.files_of({shared}) == sorted(f for i in (1, 5, 9) for f in manifest(i).files)
    assert snapshot(Committed.from_json(json.loads(json.dumps(got.to_json())))) == snapshot(got)


def test_a_checkpoint_then_more_commits_folds_to_the_same(tmp_path):
    folder = folder_with(tmp_path, 7)
    first = write_checkpoint(folder, fold(folder))
    for i in range(7, 12):
        commit(folder, manifest(i))
    with_checkpoint = fold(folder)
    assert checkpoint_names(folder) == [first]
    for rel in checkpoint_names(folder):
        folder.delete(rel)
    assert snapshot(with_checkpoint) == snapshot(fold(folder))


def test_a_torn_checkpoint_is_passed_over_for_the_one_before(tmp_path, caplog):
    folder = folder_with(tmp_path, 6)
    expected = snapshot(fold(folder))
    good = write_checkpoint(folder, fold(folder, names=manifest_names(folder)[:4]))
    whole = folder.read_bytes(write_checkpoint(folder, fold(folder)))
    for rel in checkpoint_names(folder)[:1]:
        folder.delete(rel)
    torn = f"{CHECKPOINT_DIR}/{6:010d}-torn0000.ckpt"
    folder.write_bytes(torn, whole[: len(whole) // 2])  # what a non-atomic store could leave
    assert checkpoint_names(folder) == [torn, good]
    with caplog.at_level(logging.WARNING):
        got = fold(folder)
    assert snapshot(got) == expected
    assert "is unreadable" in caplog.text
    newest = write_checkpoint(folder, got)  # the next checkpoint clears the torn one away
    assert checkpoint_names(folder) == [newest, good]


def test_a_reader_of_the_counts_stops_before_the_units(tmp_path):
    folder = folder_with(tmp_path, 6)
    whole = fold(folder)
    rel = write_checkpoint(folder, whole)
    raw = folder.read_bytes(rel)
    lines = gzip.decompress(raw).splitlines()
    assert json.loads(lines[0]) == {"format": 4, "whole": False} and len(lines) == 6
    assert json.loads(lines[4]) == []  # the staged Iceberg manifests (none: no table)
    # torn inside the units: the counts and the files still read, the whole does not
    folder.write_bytes(rel, gzip.compress(b"\n".join(lines[:5]) + b"\n" + lines[5][:20]))
    present = set(manifest_names(folder))
    counts = read_checkpoint(folder, present, upto="counts")
    files = read_checkpoint(folder, present, upto="files")
    assert counts is not None and files is not None
    assert counts.counts.to_json() == whole.counts.to_json() and counts.names == whole.names
    assert sorted(files.data_files) == sorted(whole.data_files)
    assert read_checkpoint(folder, present) is None
    for partial, missing in ((counts, "files"), (files, "units")):
        with pytest.raises(ValueError, match=f"no {missing}"):
            partial.files_of(whole.units.done()) if missing == "units" else partial.data_files
        with pytest.raises(ValueError, match="not whole"):
            write_checkpoint(folder, partial)
    # a manifest committed after the checkpoint is folded into a counts-only read too
    commit(folder, manifest(6))
    assert fold(folder, upto="counts").counts.to_json() == fold(folder).counts.to_json()


def test_a_checkpoint_of_the_format_before_reads_back(tmp_path):
    """Format 3 (an output started by the version before): no staged Iceberg manifests."""
    folder = folder_with(tmp_path, 6)
    whole = fold(folder)
    rel = write_checkpoint(folder, whole)
    lines = gzip.decompress(folder.read_bytes(rel)).splitlines()
    old = [json.dumps({"format": 3, "whole": False}).encode()] + lines[1:4] + lines[5:]
    folder.write_bytes(rel, gzip.compress(b"\n".join(old) + b"\n"))
    got = read_checkpoint(folder, set(manifest_names(folder)))
    assert got is not None and got.lake == [] and snapshot(got) == snapshot(whole)


def test_a_checkpoint_naming_a_manifest_gone_is_not_used(tmp_path, caplog):
    folder = folder_with(tmp_path, 5)
    write_checkpoint(folder, fold(folder))
    folder.delete("_manifests/" + manifest(4).name)
    with caplog.at_level(logging.WARNING):
        assert read_checkpoint(folder, set(manifest_names(folder))) is None
    assert "no longer there" in caplog.text
    assert len(fold(folder).names) == 4


def test_two_checkpoints_are_kept_and_a_pass_removes_them_all(tmp_path):
    folder = folder_with(tmp_path, 4)
    names = manifest_names(folder)
    written = [write_checkpoint(folder, fold(folder, names=names[:k])) for k in (1, 2, 3, 4)]
    assert checkpoint_names(folder) == written[:1:-1]  # the newest two, newest first
    invalidate(folder)
    assert checkpoint_names(folder) == []


def test_the_drivers_writer_takes_only_what_the_run_accepts(tmp_path):
    folder = folder_with(tmp_path, 3)  # an earlier attempt's commits, known at the start
    acquire(folder, "run", "a2", ttl_s=600, settle_s=0)
    state = RunState("run", "a2", Mode.GENERATE, folder, committed=fold(folder))
    state.known_manifests = set(state.committed.names)
    writer = Compactor(state, every=2)
    commit(folder, manifest(3, attempt="a2"))
    assert not writer.step()  # one new manifest: not enough
    commit(folder, manifest(4, attempt="a2"))
    commit(folder, manifest(5, attempt="a1"))  # a killed attempt's late commit
    assert writer.step() and writer.written == 1
    (rel,) = checkpoint_names(folder)
    got = read_checkpoint(folder, set(manifest_names(folder)))
    assert got is not None and sorted(got.names) == sorted(
        [manifest(i).name for i in range(3)] + [manifest(i, "a2").name for i in (3, 4)]
    )
    assert manifest(5).name not in got.names and rel.split("/")[1].startswith("0000000005-")


def test_a_finished_output_is_read_from_its_whole_checkpoint_alone(tmp_path, monkeypatch):
    folder = folder_with(tmp_path, 6)
    whole = fold(folder)
    write_checkpoint(folder, fold(folder, names=manifest_names(folder)[:3]))
    assert fold(folder, finished=True).from_checkpoint == 3  # not whole: listed and folded
    write_checkpoint(folder, whole, whole=True)
    commit(folder, manifest(6))  # a commit after the finish (a zombie's) is not output
    import qcraft_ray.ledger.checkpoints as checkpoints

    def no_listing(_folder):
        raise AssertionError("a finished output's reader listed the manifests")

    with monkeypatch.context() as m:
        m.setattr(checkpoints, "manifest_names", no_listing)
        got = fold(folder, finished=True)
        counts = fold(folder, upto="counts", finished=True)
    assert snapshot(got) == snapshot(whole) and got.whole and got.from_checkpoint == 6
    assert counts.counts.to_json() == whole.counts.to_json()
    assert len(fold(folder).names) == 7  # a resume's fold lists and takes every manifest
    # torn: the reader falls back to the listing and the manifests
    newest = checkpoint_names(folder)[0]
    folder.write_bytes(newest, folder.read_bytes(newest)[:50])
    assert len(fold(folder, finished=True).names) == 7


def test_the_run_ends_after_the_writers_step_however_long(tmp_path, monkeypatch, caplog):
    """A step still running when the run's block ends (a slow store, a large staging) is
    waited for, past the warning: the finalise never reads the state it is changing."""
    import threading
    import time

    import qcraft_ray.ledger.compactor as compactor
    from qcraft_ray.config import OutputConfig

    folder = folder_with(tmp_path, 0)
    acquire(folder, "run", "a1", ttl_s=600, settle_s=0)
    state = RunState("run", "a1", Mode.GENERATE, folder, committed=fold(folder))
    state.known_manifests = set()
    in_step = threading.Event()

    def slow_stage(files, first):
        in_step.set()
        time.sleep(0.6)
        return None

    monkeypatch.setattr(compactor, "SLOW_STEP_S", 0.1)
    output = OutputConfig(path=str(tmp_path), checkpoint_every=1, checkpoint_poll_s=0.05)
    with caplog.at_level(logging.WARNING), compactor.compacting(state, output, slow_stage) as w:
        commit(folder, manifest(0))
        assert in_step.wait(10)
    assert w is not None and w.written == 1  # the step ended before the block did
    assert "runs past 0 s; waiting for it" in caplog.text
