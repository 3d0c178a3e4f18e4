"""Session fixtures: the tiny random Qwen3, a loopback Ray cluster, a SeaweedFS server.

Every integration test is marked ``integration``; select them with ``-m integration``
or skip them with ``-m "not integration"``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

from qcraft_ray.devtools.tiny_model import build_tiny_qwen3
from tests.conftest import REPO
from tests.integration.services import start_ray, start_seaweedfs


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def tiny_model() -> str:
    return str(build_tiny_qwen3(REPO / ".cache" / "tiny-qwen3"))


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ray_cluster(seaweed):
    cluster = start_ray(seaweed.env)
    yield cluster
    cluster.stop()


# vLLM's eager mode (no torch.compile): ~7 s less of each engine start. The tests that
# check the compiled path leave it out: test_job's local and `ray job submit` runs,
# test_lake's shards (the shared compile caches), the oldest pair, plan --measure.
EAGER = "generation.engine.enforce_eager=true"


def base_overrides(model: str, inputs: list[str], output: str) -> list[str]:
    return [f"model.name={model}", f"input.paths={json.dumps(inputs)}",
            f"output.path={output}", "output.if_exists=error"]


def run_cli(args: list[str], env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "qcraft_ray.cli", *args]
    res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=timeout)
    return res


def read_output(path: str, fs: pafs.FileSystem | None = None):
    """(output table, rejected table, report) of a finished run."""
    fs = fs or pafs.LocalFileSystem()
    out = pads.dataset(path, filesystem=fs, format="parquet").to_table()
    rej = pads.dataset(path + "/_rejected", filesystem=fs, format="parquet").to_table()
    with fs.open_input_stream(path + "/_report.json") as f:
        return out, rej, json.loads(f.read())
