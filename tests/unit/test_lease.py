"""The output folder's lease on a local disk (on S3: tests/integration/test_lease_job.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from types import SimpleNamespace

import pyarrow as pa
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.errors import OutputPathError
from qcraft_ray.io.plan import InputFile, InputPlan
from qcraft_ray.io.write import OutputSink
from qcraft_ray.ledger import lease
from qcraft_ray.ledger.manifests import read_manifests
from qcraft_ray.ledger.state import open_run
from qcraft_ray.mode import Mode
from qcraft_ray.store import LEASE_FILE, OutputFolder


def cfg(out, **output):
    return RunConfig.model_validate({"input": {"paths": ["f"]},
                                     "output": {"path": str(out), **output}})


PLAN = InputPlan(files=(InputFile("f", "f", 1, (1,), ("text",), None, 1),))


def test_second_driver_is_refused_naming_the_first(tmp_path):
    first = open_run(cfg(tmp_path / "out"), PLAN, Mode.GENERATE)
    for if_exists in ("resume", "overwrite"):  # a live run is neither resumed nor deleted
        with pytest.raises(OutputPathError, match=f"in use by run {first.run_id} attempt "
                           f"{first.attempt}"):
            open_run(cfg(tmp_path / "out", if_exists=if_exists), PLAN, Mode.GENERATE)
    assert (tmp_path / "out" / LEASE_FILE).exists()


def test_expired_or_dead_holder_is_taken_over(tmp_path):
    folder = OutputFolder(str(tmp_path / "out"))
    old = lease.acquire(folder, "run", "a1", ttl_s=0.5, settle_s=0)
    time.sleep(0.6)  # not renewed in time
    assert lease.acquire(folder, "run", "a2", ttl_s=60, settle_s=0).attempt == "a2"
    # a holder on this host whose process is gone is dead at once, whatever its TTL
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    data = json.loads((tmp_path / "out" / LEASE_FILE).read_text())
    (tmp_path / "out" / LEASE_FILE).write_text(json.dumps({**data, "pid": int(dead)}))
    assert lease.acquire(folder, "run", "a3", ttl_s=60, settle_s=0).attempt == "a3"
    assert old.attempt == "a1"


def test_renewal_and_a_lost_lease_stops_commits(tmp_path):
    c = cfg(tmp_path / "out", lease_ttl_s=0.4, min_rows_per_file=1)
    state = open_run(c, PLAN, Mode.GENERATE)
    folder = state.folder
    with lease.renewing(folder, state.lease) as lost:
        time.sleep(1.0)  # 2.5 TTLs: alive only because it is renewed
        assert lease.holder(folder).live(time.time()) and not lost.is_set()
        # another attempt took the folder over (as after this driver stalled past its TTL)
        folder.write_json(LEASE_FILE, {**json.loads((tmp_path / "out" / LEASE_FILE)
                                                    .read_text()), "attempt": "other"})
        time.sleep(0.3)
        assert lost.is_set()
    row = {S.DOC_ID: "d", S.CHUNK_INDEX: 0, S.TYPE: "query", S.SAMPLE_INDEX: 0,
           S.STATUS: "ok", S.OUTPUT: "q",
           S.LANGUAGE: "english", S.SOURCE_FILE: "f", S.SOURCE_ROW: 0, S.UNIT: "f@0",
           S.UNIT_DOCS: 1, S.DOC_ROWS: 1, S.CHUNK_START: 0, S.CHUNK_END: 1, S.PASSAGE: "p",
           S.PASSAGE_TOKENS: 80, S.MODEL: "m", S.COUNTS_DOCUMENT: True}
    sink = OutputSink(folder, c.output, state.run_id, state.attempt,
                      lease_attempt=state.attempt)
    with pytest.raises(lease.LeaseLost, match=f"attempt {state.attempt} lost its lease"):
        sink.write([pa.Table.from_pylist([row], schema=S.STREAM_SCHEMA)],
                   SimpleNamespace(task_idx=0))
    assert read_manifests(folder) == []  # nothing committed
    lease.release(folder, state.attempt)  # not ours any more: left alone
    assert lease.holder(folder).attempt == "other"


def test_a_driver_that_died_before_its_run_file_left_no_run(tmp_path):
    folder = OutputFolder(str(tmp_path / "out"))
    folder.create()
    lease.acquire(folder, "run", "dead", ttl_s=0.1, settle_s=0)
    time.sleep(0.2)  # expired: its driver is gone
    state = open_run(cfg(tmp_path / "out"), PLAN, Mode.GENERATE)
    assert not state.resumed and state.lease.attempt == state.attempt


def test_a_lease_read_half_written_is_read_again(tmp_path, monkeypatch):
    folder = OutputFolder(str(tmp_path / "out"))
    folder.create()
    mine = lease.acquire(folder, "run1", "a1", 60, settle_s=0)
    whole = folder.read_bytes(LEASE_FILE)
    real_read = OutputFolder.read_bytes
    torn = iter([whole[:40], whole[:80]])  # what a store served mid-renewal

    def read(self, rel):
        return next(torn, None) or real_read(self, rel)

    monkeypatch.setattr(OutputFolder, "read_bytes", read)
    monkeypatch.setattr(lease, "TORN_PAUSE_S", 0)
    lease.check(folder, "a1")  # two torn reads, then the whole lease
    assert lease.holder(folder).attempt == mine.attempt
    torn = iter([whole[:40]] * lease.TORN_READS)
    with pytest.raises(json.JSONDecodeError):
        lease.holder(folder)
