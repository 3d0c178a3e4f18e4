"""A job on S3 (SeaweedFS), submitted with `ray job submit` to a cluster of its own: a
second driver on the same output.path is refused while the first runs; then the head
(and with it the driver) is killed, and the same job submitted to a new cluster resumes
and ends with every row exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pyarrow.fs as pafs

from qcraft_ray.ledger.manifests import read_manifests
from qcraft_ray.ledger.units import merge_units
from qcraft_ray.store import OutputFolder
from tests.conftest import REPO
from tests.integration.conftest import EAGER, base_overrides, read_output, run_cli
from tests.integration.services import S3_BUCKET, start_ray
from tests.integration.test_job import (
    LOCAL,
    SAMPLE,
    check_accounting,
    s3fs_for,
    upload_dir,
    wait_for_job_agent,
)
from tests.integration.test_multinode import expected_keys, output_keys

TYPES = ["query", "title", "keywords"]


def submit_cmd(cluster, sets: list[str]) -> list[str]:
    return [sys.executable, "-m", "ray.scripts.scripts", "job", "submit",
            "--address", cluster.dashboard, "--working-dir", str(REPO), "--",
            "python", "jobs/generate_queries.py", "--config", "configs/local.yaml",
            *sum((["--set", o] for o in sets), [])]


def complete_units(fs, out_key: str) -> int:
    """Units whose rows are all committed, by the manifests written so far: what a resume
    skips (rows reach the writers out of order, so a few manifests may complete none)."""
    found = read_manifests(OutputFolder(out_key, filesystem=fs))
    return sum(c.complete for c in merge_units(m.units for m in found).values())


def test_second_driver_refused_then_head_killed_and_resubmitted(seaweed, tiny_model,
                                                                 tokenizer, tmp_path):
    fs = s3fs_for(seaweed.env)
    upload_dir(SAMPLE, fs, f"{S3_BUCKET}/lease/corpus")
    out_key = f"{S3_BUCKET}/lease/out"
    sets = [*base_overrides(tiny_model, [f"s3://{S3_BUCKET}/lease/corpus"],
                            f"s3://{out_key}")[:-1],
            "output.if_exists=resume", f"generation.types={json.dumps(TYPES)}",
            "input.rows_per_task=5", "generation.batch_size=8", "output.min_rows_per_file=8",
            EAGER, "quality.language_id=false"]
    first_cluster = start_ray(seaweed.env)
    try:
        wait_for_job_agent(first_cluster)
        log = tmp_path / "first.log"
        first = subprocess.Popen(submit_cmd(first_cluster, sets), env=first_cluster.env,
                                 cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while fs.get_file_info(f"{out_key}/_lease.json").type != pafs.FileType.File:
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        held = json.loads(fs.open_input_stream(f"{out_key}/_lease.json").read())
        # a second driver on the same output.path, while the first runs
        second = run_cli(["run", LOCAL, "--address", first_cluster.address,
                          *sum((["--set", o] for o in sets), [])], first_cluster.env)
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"is in use by run {held['run_id']} attempt {held['attempt']}" in second.stderr
        assert "engine replica" not in second.stderr
        while complete_units(fs, out_key) < 1:  # some of the output is committed
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        first_cluster.kill()  # the head, its driver and everything on it
        first.wait(timeout=60)
    finally:
        first_cluster.stop()
    assert fs.get_file_info(f"{out_key}/_SUCCESS").type == pafs.FileType.NotFound
    committed = complete_units(fs, out_key)

    new_cluster = start_ray(seaweed.env)  # the same job, submitted to a new cluster
    try:
        wait_for_job_agent(new_cluster)
        res = subprocess.run(submit_cmd(new_cluster, sets), env=new_cluster.env, cwd=REPO,
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stdout[-5000:] + "\n---\n" + res.stderr[-3000:]
    finally:
        new_cluster.stop()
    out, rej, report = read_output(out_key, fs)
    check_accounting(out, rej, report, 75, TYPES)
    keys = output_keys(out)
    assert max(keys.values()) == 1 and set(keys) == expected_keys(tokenizer, TYPES)
    assert report["resumed"] and len(report["attempts"]) == 2
    assert report["attempts"][0]["attempt"] == held["attempt"]
    assert committed >= 1 and report["resume"]["units_skipped"] >= committed
    assert fs.get_file_info(f"{out_key}/_lease.json").type == pafs.FileType.NotFound
