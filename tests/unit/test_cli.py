"""CLI errors are one clear line, exit code 2, and come before Ray or an engine starts."""

import subprocess
import sys

from jobs.generate_queries import to_cli_args
from tests.conftest import REPO

LOCAL = str(REPO / "configs/local.yaml")


def qcraft(*args):
    return subprocess.run([sys.executable, "-m", "qcraft_ray.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_unknown_key():
    res = qcraft("run", LOCAL, "--set", "generation.replica=2")
    assert res.returncode == 2
    assert "unknown config key 'generation.replica'" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_input_named_before_ray_starts(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    res = qcraft("run", LOCAL, "--set", f"input.paths=[{tmp_path}]",
                 "--set", f"output.path={tmp_path / 'out'}")
    assert res.returncode == 2
    assert f"{bad}: not a readable Parquet file" in res.stderr
    assert "Ray" not in res.stderr and not (tmp_path / "out").exists()


def test_job_entry_translates_to_cli():
    assert to_cli_args(["--config", "c.yaml", "--set", "a.b=1", "--set", "c=[x]", "--dry-run"]) \
        == ["run", "c.yaml", "--set", "a.b=1", "--set", "c=[x]", "--dry-run"]
    assert to_cli_args(["--config", "c.yaml", "--dry-run", "--measure", "64"]) \
        == ["run", "c.yaml", "--dry-run", "--measure", "64"]
    assert to_cli_args(["--config", "c.yaml", "--verbose", "--json"]) \
        == ["run", "c.yaml", "--json", "--verbose"]


def test_measure_needs_a_plan_and_a_count():
    for args in (["run", LOCAL, "--measure", "8"], ["plan", LOCAL, "--measure", "-1"]):
        res = qcraft(*args)
        assert res.returncode == 2 and "--measure" in res.stderr, res.stderr[-2000:]
        assert "Traceback" not in res.stderr
