"""qcraft doctor against a real loopback Ray cluster, SeaweedFS and the tiny model: a
good setup passes, and each bad one it names fails with its line and the fix."""

from __future__ import annotations

import pyarrow.fs as pafs

from qcraft_ray.ledger.lease import acquire
from qcraft_ray.store import OutputFolder
from tests.integration.conftest import base_overrides, run_cli
from tests.integration.services import S3_BUCKET
from tests.integration.test_job import LOCAL, SAMPLE, s3fs_for


def doctor(sets: list[str], env: dict, address: str | None = None):
    args = ["doctor", LOCAL, *sum((["--set", s] for s in sets), [])]
    res = run_cli([*args, *(["--address", address] if address else [])], env, timeout=300)
    lines = {line[6:18].strip(): line for line in res.stdout.splitlines() if line[:4].strip()}
    return res, lines


def test_a_good_setup_passes_and_writes_nothing(ray_cluster, seaweed, tiny_model):
    """The cluster, the sample corpus, the tiny model, an output on S3."""
    out = f"s3://{S3_BUCKET}/doctor/good"
    res, lines = doctor(
        base_overrides(tiny_model, [SAMPLE], out), ray_cluster.env, ray_cluster.address
    )
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    for check in (
        "python",
        "ray",
        "vllm",
        "torch",
        "input",
        "output",
        "lease",
        "credentials",
        "model",
        "cluster-ray",
        "gpus",
    ):
        assert lines[check].startswith("OK"), res.stdout
    assert "75 documents" in lines["input"] and "values not shown" in lines["credentials"]
    assert "qcraft-test-secret" not in res.stdout + res.stderr  # credentials never printed
    assert "the cluster runs Ray" in lines["cluster-ray"]
    fs = s3fs_for(seaweed.env)
    assert fs.get_file_info(pafs.FileSelector(f"{S3_BUCKET}/doctor", allow_not_found=True)) == []


def test_missing_input_and_model_a_held_output_and_no_gpu_on_the_cluster(
    ray_cluster, tiny_model, tmp_path
):
    out = tmp_path / "held"
    folder = OutputFolder(str(out))
    folder.create()
    held = acquire(folder, "run-1", "a1", ttl_s=600, settle_s=0)  # a live run's lease
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    sets = [
        *base_overrides("/nonexistent/model", [str(tmp_path / "none" / "*.parquet")], str(out)),
        "generation.gpus_per_replica=1",
    ]
    res, lines = doctor(sets, ray_cluster.env, ray_cluster.address)
    assert res.returncode == 1, res.stdout + res.stderr[-3000:]
    assert lines["input"].startswith("FAIL") and "matches no Parquet file" in lines["input"]
    assert (
        lines["model"].startswith("FAIL")
        and "/nonexistent/model: no such folder" in (lines["model"])
    )
    assert lines["lease"].startswith("FAIL")
    assert f"in use by run {held.run_id} attempt {held.attempt}" in lines["lease"]
    assert lines["gpus"].startswith("FAIL") and "no node has the 1 GPU(s)" in lines["gpus"]
    assert "->" in lines["gpus"]  # the fix
    assert lines["output"].startswith("OK")  # writable, though held
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # the probe is gone


def test_an_unwritable_output_and_no_local_gpu(tiny_model, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / "out"
    sets = [*base_overrides(tiny_model, [SAMPLE], str(out)), "generation.gpus_per_replica=1"]
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    res, lines = doctor(sets, env)
    assert res.returncode == 1, res.stdout + res.stderr[-3000:]
    assert lines["output"].startswith("FAIL") and "cannot write to" in lines["output"]
    assert lines["gpus"].startswith("FAIL") and "GPUs per node: local: 0" in lines["gpus"]
    assert lines["input"].startswith("OK") and lines["model"].startswith("OK")
