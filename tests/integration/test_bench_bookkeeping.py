"""bench/bookkeeping.py's whole flow at 10,000 write tasks (the size CI runs; 335,000 by
hand: bench/RESULTS-bookkeeping.md): manifests through the real commit path, then every
phase in its own process, the Iceberg commit of a one-row data file per write task
included. Checks the flow and its accounting, not its times."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_bookkeeping_bench_at_ten_thousand_write_tasks():
    res = subprocess.run(
        [
            sys.executable,
            "bench/bookkeeping.py",
            "--sizes",
            "10000",
            "--batches",
            "200000",
            "--cold",
            "--iceberg",
            "--crashed",
            "20",
            "--no-write",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert row["manifests"] == 10000 and 8000 < row["manifest_bytes"] < 30000
    phases = ("resume_cold", "resume", "finalise", "report", "iceberg", "iceberg_next",
              "percentile_reads", "score_reads")
    for phase in phases:
        assert row[f"{phase}_s"] > 0 and row[f"{phase}_peak_rss_mb"] > 0
    assert row["percentile_reads_manifests"] == row["score_reads_manifests"] == 10000
    assert row["finalise_problems"] == 0 and row["iceberg_files"] == 10000
    assert row["units"] == 715 * 8  # 8 units a task, each spread over 14 tasks (the last 4)
    # 20 tasks died between their 2 files and their manifest: the resume saw the others
    assert row["resume_manifests"] == 9980 and row["finalise_manifests"] == 10000
    assert row["resume_from_checkpoint"] == 8000 - 16  # all but the last round of 2,000
    assert row["resume_orphans"] == 40 and row["resume_units_done"] == 715 * 8 - 20 * 8
    assert row["resume_rows_written"] == 20 * 13 * 2  # the other 13 tasks' files of each
    # the writer staged an Iceberg manifest with each checkpoint; the commit added them as
    # they are and converted the files after the last (the last round, the 20 held)
    assert row["staged_manifests"] == row["iceberg_staged_manifests"] == 4
    assert row["iceberg_staged_files"] == 8000 - 16
    assert row["checkpoints"] == 4 and 0 < row["checkpoint_bytes"] < 10000 * row["manifest_bytes"]
    assert row["tracker_mb"] >= 0 and row["ledger_mb"] >= 0
