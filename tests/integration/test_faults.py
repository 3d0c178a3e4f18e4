"""Faults on the real path: a driver killed at several points and resumed, a replica
process killed mid-run, the S3 server restarted mid-run. Each ends with every expected
row exactly once, compared with an uninterrupted run of the same input."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from qcraft_ray import schema as S
from qcraft_ray.store import CHECKPOINT_DIR
from tests.conftest import REPO
from tests.integration.conftest import EAGER, base_overrides, read_output, run_cli
from tests.integration.test_job import LOCAL, SAMPLE, check_accounting

TYPES = ["query"]


def overrides(model: str, inputs: list[str], out: str) -> list[str]:
    """Small blocks and files, so a run has many units and many commits."""
    sets = [*base_overrides(model, inputs, out)[:-1], "output.if_exists=resume",
            f"generation.types={json.dumps(TYPES)}", "input.rows_per_task=5",
            "generation.batch_size=8", "output.min_rows_per_file=8",
            # eager engines start in 4.6 s instead of 11.3 s (no graph compile)
            EAGER,
            # language ID is tested elsewhere; the quality stage still runs (copy check)
            "quality.language_id=false"]
    return sum((["--set", o] for o in sets), [])


def start_cli(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qcraft_ray.cli", *args], env=env,
                            cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def wait_for(what: str, predicate, proc: subprocess.Popen, log: Path, timeout=300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {what}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} after {timeout}s:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)


def manifests(out_dir: str) -> int:
    folder = Path(out_dir) / "_manifests"
    return len(list(folder.glob("*.json"))) if folder.exists() else 0


def rows_by_key(out, rej):
    keys = collections.Counter()
    for t in (out, rej):
        keys.update(zip(t[S.DOC_ID].to_pylist(), t[S.CHUNK_INDEX].to_pylist(),
                        t[S.TYPE].to_pylist(), strict=False))
    return keys


@pytest.fixture(scope="module")
def reference(ray_cluster, tiny_model, tmp_path_factory):
    """An uninterrupted run of the sample corpus with the same settings."""
    out_dir = str(tmp_path_factory.mktemp("ref") / "out")
    res = run_cli(["run", LOCAL, "--address", ray_cluster.address,
                   *overrides(tiny_model, [SAMPLE], out_dir)], ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    out, rej, report = read_output(out_dir)
    check_accounting(out, rej, report, 75, TYPES)
    return out, rej


def check_same_as_reference(out_dir: str, reference, fs=None) -> dict:
    out, rej, report = read_output(out_dir, fs)
    check_accounting(out, rej, report, 75, TYPES)
    keys = rows_by_key(out, rej)
    assert max(keys.values()) == 1, "duplicated rows"
    assert keys == rows_by_key(*reference), "missing or extra rows"
    ref_out = {(r[S.DOC_ID], r[S.CHUNK_INDEX]): r[S.OUTPUT] for r in reference[0].to_pylist()}
    got = {(r[S.DOC_ID], r[S.CHUNK_INDEX]): r[S.OUTPUT] for r in out.to_pylist()}
    assert got == ref_out  # greedy: the resumed rows are the same text
    return report


KILL_POINTS = {
    # an engine replica is up; nothing committed yet (a kill while reading, before any
    # engine, leaves the same: nothing committed)
    "generating": lambda log, out: "engine replica" in log.read_text(),
    # some write tasks have committed, others have not; the driver has written a
    # checkpoint of them (output.checkpoint_every=1: it writes one at every poll)
    "writing": lambda log, out: manifests(out) >= 3 and checkpoints(out) >= 1,
}
CHECKPOINTING = ["--set", "output.checkpoint_every=1", "--set", "output.checkpoint_poll_s=0.2"]


def checkpoints(out_dir: str) -> int:
    return len(list((Path(out_dir) / CHECKPOINT_DIR).glob("*.ckpt")))


def tear_a_checkpoint(out_dir: str) -> None:
    """What a driver killed while writing a checkpoint leaves: here, a temporary file;
    on a store without atomic publication, a torn object under a checkpoint's name (one
    covering more manifests than any, so it would be read first)."""
    (newest,) = sorted((Path(out_dir) / CHECKPOINT_DIR).glob("*.ckpt"))[-1:]
    whole = newest.read_bytes()
    torn = Path(out_dir) / CHECKPOINT_DIR / f"{10**9:010d}-torn.ckpt"
    torn.write_bytes(whole[: len(whole) // 2])
    temp = Path(out_dir) / "_temporary"
    temp.mkdir(exist_ok=True)
    (temp / "checkpoint.tmp").write_bytes(whole[:100])


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_driver_killed_then_resumed(point, reference, ray_cluster, tiny_model, tmp_path):
    out_dir = str(tmp_path / "out")
    args = ["run", LOCAL, "--address", ray_cluster.address,
            *overrides(tiny_model, [SAMPLE], out_dir)]
    if point == "writing":
        args += CHECKPOINTING
    log = tmp_path / "first.log"
    proc = start_cli(args, ray_cluster.env, log)
    wait_for(point, lambda: KILL_POINTS[point](log, out_dir), proc, log)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (Path(out_dir) / "_SUCCESS").exists()
    committed = manifests(out_dir)
    if point == "writing":
        tear_a_checkpoint(out_dir)
    res = run_cli(args, ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    report = check_same_as_reference(out_dir, reference)
    assert report["resumed"] and len(report["attempts"]) == 2
    if point != "writing":
        return
    assert committed >= 3  # the resume really had work to skip
    # it started from the last whole checkpoint, past the torn one
    assert report["resume"]["from_checkpoint"] >= 1 and "is unreadable" in res.stderr
    assert not (Path(out_dir) / CHECKPOINT_DIR / f"{10**9:010d}-torn.ckpt").exists()
    # a finished run is left alone, and says so
    again = run_cli(args, ray_cluster.env)
    assert again.returncode == 0 and "already complete" in again.stderr
    # a changed config against the same output is refused, naming the key
    changed = run_cli([*args, "--set", "generation.max_new_tokens=5"], ray_cluster.env)
    assert changed.returncode == 2 and "generation.max_new_tokens: 16 -> 5" in changed.stderr


def test_driver_killed_mid_write_one_large_file(ray_cluster, tiny_model, tmp_path):
    """One file with one row group: units are row ranges inside it, so a resume still
    skips what was written."""
    from tests.integration.test_job import one_file_corpus

    corpus, texts = one_file_corpus(tmp_path)
    out_dir = str(tmp_path / "out")
    args = ["run", LOCAL, "--address", ray_cluster.address,
            *overrides(tiny_model, [corpus], out_dir)]
    ref_dir = str(tmp_path / "ref")
    ref = run_cli(["run", LOCAL, "--address", ray_cluster.address,
                   *overrides(tiny_model, [corpus], ref_dir)], ray_cluster.env)
    assert ref.returncode == 0, ref.stderr[-5000:]
    log = tmp_path / "first.log"
    proc = start_cli(args, ray_cluster.env, log)
    # half the commits: batches run at once, so the first few complete no unit yet
    half = manifests(ref_dir) // 2
    wait_for("commits", lambda: manifests(out_dir) >= half, proc, log)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    res = run_cli(args, ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    out, rej, report = read_output(out_dir)
    check_accounting(out, rej, report, len(texts), TYPES)
    assert report["resume"]["units_skipped"] >= 1
    ref_out, ref_rej, _ = read_output(ref_dir)
    assert rows_by_key(out, rej) == rows_by_key(ref_out, ref_rej)
    assert max(rows_by_key(out, rej).values()) == 1


def test_replica_killed_mid_run(reference, ray_cluster, tiny_model, tmp_path):
    """SIGKILL the engine replica's process while it generates: Ray restarts the actor,
    its batch is retried, and the output is the same as an uninterrupted run."""
    import re

    out_dir = str(tmp_path / "out")
    log = tmp_path / "run.log"
    proc = start_cli(["run", LOCAL, "--address", ray_cluster.address,
                      *overrides(tiny_model, [SAMPLE], out_dir)], ray_cluster.env, log)
    ready = re.compile(r"engine replica [^:\s]+:(\d+) ready")
    wait_for("a replica", lambda: ready.search(log.read_text()), proc, log)
    # kill it as soon as it is up: its first batches are queued or running (the sample
    # is small enough that waiting longer could find the work already done)
    os.kill(int(ready.search(log.read_text()).group(1)), signal.SIGKILL)
    assert proc.wait(timeout=600) == 0, log.read_text()[-5000:]
    check_same_as_reference(out_dir, reference)
    # Ray started a second replica process, which did the work
    assert len(set(ready.findall(log.read_text()))) >= 2


def test_s3_outage_mid_run(reference, ray_cluster, seaweed, tiny_model, tmp_path):
    """Restart the SeaweedFS server while the job writes to it: writes are retried, and
    the output is every row exactly once."""
    from tests.integration.services import S3_BUCKET
    from tests.integration.test_job import s3fs_for, upload_dir

    fs = s3fs_for(seaweed.env)
    upload_dir(SAMPLE, fs, f"{S3_BUCKET}/outage/corpus")
    out_key = f"{S3_BUCKET}/outage/out"
    log = tmp_path / "run.log"
    proc = start_cli(["run", LOCAL, "--address", ray_cluster.address,
                      *overrides(tiny_model, [f"s3://{S3_BUCKET}/outage/corpus"],
                                 f"s3://{out_key}")], ray_cluster.env, log)

    wait_for("an engine replica", lambda: "engine replica" in log.read_text(), proc, log)
    seaweed.restart(down_seconds=6)  # the first writes land in the outage
    assert proc.wait(timeout=600) == 0, log.read_text()[-5000:]
    assert "retrying in" in log.read_text()  # the outage really hit the run
    assert seaweed.env["AWS_SECRET_ACCESS_KEY"] not in log.read_text()
    check_same_as_reference(out_key, reference, fs)
    assert fs.get_file_info(f"{out_key}/_SUCCESS").type == pafs.FileType.File
