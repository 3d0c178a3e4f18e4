"""What a person sees running the sample job: in a pseudo-terminal (``script``) a live
bar and the short summary naming the page; with output to files, plain progress lines
and, with ``--json``, the JSON summary (checked on test_job.py's two-replica run); in
both, none of the known-harmless messages (they are in the run's log, ``_logs/``), while
an injected real error still shows."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.integration.conftest import EAGER, base_overrides

SAMPLE = str(REPO / "data/sample")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# the messages the sample job used to print, each a known-harmless one
QUOTED = ["FutureWarning", "Triton not available", "Triton is not installed", "NUMA binding",
          "has constructor arguments in the object store", "Execution plan of Dataset",
          "Resolved architecture"]
SITECUSTOMIZE = '''
import os, sys
if os.environ.get("QCRAFT_TEST_INJECT"):
    print("ERROR injected-real-error: a worker says so", file=sys.stderr, flush=True)
'''


def command(tiny_model: str, out: str, address: str, *extra: str) -> list[str]:
    sets = [*base_overrides(tiny_model, [SAMPLE], out), "report.progress_interval_s=2",
            "quality.language_id=false", EAGER]
    return [sys.executable, "-m", "qcraft_ray.cli", "run", str(REPO / "configs/local.yaml"),
            "--address", address, *sum((["--set", s] for s in sets), []), *extra]


def test_in_a_terminal_a_bar_and_the_summary(ray_cluster, tiny_model, tmp_path):
    out = str(tmp_path / "tty")
    cmd = shlex.join(command(tiny_model, out, ray_cluster.address))
    typescript = tmp_path / "typescript"
    res = subprocess.run(["script", "-qec", cmd, str(typescript)], env=ray_cluster.env,
                         cwd=REPO, capture_output=True, text=True, timeout=900,
                         stdin=subprocess.DEVNULL)
    seen = ANSI.sub("", typescript.read_text(errors="replace")).replace("\r", "\n")
    assert res.returncode == 0, seen[-5000:]
    assert "━" in seen and re.search(r"documents\s+\S+\s+75/75", seen), seen[-3000:]
    assert "replicas 1 up" in seen and "qcraft progress:" not in seen
    summary = seen[seen.index("qcraft: run "):]
    assert f"report: {out}/_report.html" in summary and (Path(out) / "_report.html").exists()
    assert "wrote 308 rows" in summary and f"qcraft inspect {out} --lowest 20" in summary
    for quoted in QUOTED:
        assert quoted not in seen, quoted
    (log,) = (Path(out) / "_logs").glob("driver-*.log")
    kept = log.read_text()
    assert "Execution plan of Dataset" in kept and str(log) in summary


def inject_error(tmp_path: Path) -> list[str]:
    """Settings that make each replica's process print a real error as it starts."""
    inject = tmp_path / "inject"
    inject.mkdir(exist_ok=True)
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return ["--set", f"generation.engine.env.PYTHONPATH={inject}{os.pathsep}{REPO}",
            "--set", 'generation.engine.env.QCRAFT_TEST_INJECT="1"']


def check_plain_terminal(res: subprocess.CompletedProcess, out: str) -> None:
    """A run with output to files and ``--json`` (test_job.py's two-replica run): plain
    progress lines, the JSON summary, the real error shown, no known-harmless message."""
    assert "injected-real-error" in res.stderr  # a real error is never kept off
    assert "qcraft progress: documents" in res.stderr and "━" not in res.stderr
    for quoted in QUOTED:
        assert quoted not in res.stderr + res.stdout, quoted
    summary = json.loads(res.stdout)
    assert summary["status"] == "complete" and summary["output"]["path"] == out
    assert summary["log"].startswith(f"{out}/_logs/driver-")
    assert "Resolved architecture" in Path(summary["log"]).read_text()
