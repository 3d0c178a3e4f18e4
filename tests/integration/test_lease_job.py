"""Two drivers on the same output.path, on S3 (SeaweedFS): the second is refused while the
first runs, naming it; the first finishes and gives the lease up."""

from __future__ import annotations

import subprocess
import sys
import time

import pyarrow.fs as pafs

from qcraft_ray import schema as S
from tests.conftest import REPO
from tests.integration.conftest import base_overrides, read_output, run_cli
from tests.integration.services import S3_BUCKET
from tests.integration.test_job import LOCAL, SAMPLE, check_accounting, s3fs_for, upload_dir


def test_second_driver_refused_on_s3(ray_cluster, seaweed, tiny_model, tmp_path):
    fs = s3fs_for(seaweed.env)
    upload_dir(SAMPLE, fs, f"{S3_BUCKET}/lease/corpus")
    out_key = f"{S3_BUCKET}/lease/out"
    args = ["run", LOCAL, "--address", ray_cluster.address,
            *sum((["--set", o] for o in [
                *base_overrides(tiny_model, [f"s3://{S3_BUCKET}/lease/corpus"],
                                f"s3://{out_key}")[:-1],
                "output.if_exists=resume", "generation.types=[query]"]), [])]
    log = tmp_path / "first.log"
    first = subprocess.Popen([sys.executable, "-m", "qcraft_ray.cli", *args],
                             env=ray_cluster.env, cwd=REPO, stdout=open(log, "w"),
                             stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while fs.get_file_info(f"{out_key}/_lease.json").type != pafs.FileType.File:
        assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    lease = fs.open_input_stream(f"{out_key}/_lease.json").read().decode()
    second = run_cli(args, ray_cluster.env)
    assert second.returncode == 2, second.stderr[-3000:]
    assert "is in use by run" in second.stderr and "engine replica" not in second.stderr
    import json

    held = json.loads(lease)
    assert f"attempt {held['attempt']}" in second.stderr
    assert first.wait(timeout=600) == 0, log.read_text()[-5000:]
    out, rej, report = read_output(out_key, fs)
    check_accounting(out, rej, report, 75, ["query"])
    assert report["attempts"][-1]["attempt"] == held["attempt"]
    assert fs.get_file_info(f"{out_key}/_lease.json").type == pafs.FileType.NotFound
    assert out.num_rows == len(set(zip(out[S.DOC_ID].to_pylist(),
                                       out[S.CHUNK_INDEX].to_pylist(), strict=True)))
