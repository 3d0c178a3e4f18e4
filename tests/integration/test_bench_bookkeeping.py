"""bench/bookkeeping.py's whole flow at 3,000 write tasks (the size CI runs; 335,000 by
hand: bench/RESULTS-bookkeeping.md): manifests through the real commit path, then every
phase in its own process, the Iceberg commit of a one-row data file per write task
included. Checks the flow and its accounting, not its times."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

TASKS, EVERY, CRASHED = 3000, 1000, 6  # a checkpoint every 1,000 commits; 6 tasks die
UNITS = -(-TASKS // 14) * 8  # 8 units a task, each spread over 14 tasks (the last fewer)


def test_bookkeeping_bench_at_three_thousand_write_tasks():
    res = subprocess.run(
        [
            sys.executable,
            "bench/bookkeeping.py",
            "--sizes",
            str(TASKS),
            "--batches",
            str(TASKS * 20),
            "--checkpoint-every",
            str(EVERY),
            "--cold",
            "--iceberg",
            "--crashed",
            str(CRASHED),
            "--no-write",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert row["manifests"] == TASKS and 8000 < row["manifest_bytes"] < 30000
    phases = ("resume_cold", "resume", "finalise", "report", "iceberg", "iceberg_next",
              "percentile_reads", "score_reads")
    for phase in phases:
        assert row[f"{phase}_s"] > 0 and row[f"{phase}_peak_rss_mb"] > 0
    assert row["percentile_reads_manifests"] == row["score_reads_manifests"] == TASKS
    assert row["finalise_problems"] == 0 and row["iceberg_files"] == TASKS
    assert row["units"] == UNITS
    # the dead tasks (one every TASKS / CRASHED) died between their 2 files and their
    # manifest: the resume saw the others
    assert row["resume_manifests"] == TASKS - CRASHED and row["finalise_manifests"] == TASKS
    covered = TASKS - EVERY  # all but the last round, less the dead tasks in it
    dead_before = CRASHED * covered // TASKS
    assert row["resume_from_checkpoint"] == covered - dead_before
    assert row["resume_orphans"] == 2 * CRASHED
    assert row["resume_units_done"] == UNITS - CRASHED * 8
    assert row["resume_rows_written"] == CRASHED * 13 * 2  # the other 13 tasks' files of each
    # the writer staged an Iceberg manifest with each checkpoint; the commit added them as
    # they are and converted the files after the last (the last round, the dead tasks')
    rounds = covered // EVERY
    assert row["staged_manifests"] == row["iceberg_staged_manifests"] == rounds
    assert row["iceberg_staged_files"] == covered - dead_before
    assert row["checkpoints"] == rounds and 0 < row["checkpoint_bytes"] < TASKS * row[
        "manifest_bytes"]
    assert row["tracker_mb"] >= 0 and row["ledger_mb"] >= 0
