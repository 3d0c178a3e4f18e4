"""The cluster the run would join: its Ray release against this driver's, and its GPUs
(per node, and their memory) against ``generation.gpus_per_replica``, ``replicas`` and
the model. Without an address, this machine's GPUs (``ray.local_num_gpus`` or
``nvidia-smi``)."""

from __future__ import annotations

import json
import math
import re
import subprocess
from typing import Any

from qcraft_ray.compat.versions import same_ray
from qcraft_ray.config import RunConfig
from qcraft_ray.doctor.findings import Finding, fail, ok, warn

_HOST_PORT = re.compile(r"^[\w.\-]+:\d+$")


def cluster_ray_version(address: str) -> str | None:
    """The Ray release the cluster at ``address`` (its GCS, host:port) was started with,
    read from the cluster's metadata without joining it; None where it cannot be read
    (Ray's GCS client is private: a Ray that moved it gives None, not a crash)."""
    if not _HOST_PORT.match(address):
        return None
    try:
        from ray._raylet import GcsClient  # type: ignore[attr-defined]

        raw = GcsClient(address=address).internal_kv_get(b"CLUSTER_METADATA", b"cluster")
    except Exception:  # private API, or the GCS does not answer: the version is unknown
        return None
    return json.loads(raw).get("ray_version") if raw else None


def version_finding(address: str) -> Finding:
    import ray

    verdict, detail = same_ray(ray.__version__, cluster_ray_version(address))
    fix = "" if verdict.value == "OK" else "match the driver's Ray to the cluster's"
    return Finding("cluster-ray", verdict, detail, fix)


def gpu_findings(cfg: RunConfig, nodes: list[dict[str, Any]], weights_bytes: int) -> list[Finding]:
    """``nodes``: ``{"name", "gpus", "gpu_memory_bytes"}`` of each alive node (memory of
    one GPU, or None when unknown). A pure function of what was found."""
    gen = cfg.generation
    per = gen.gpus_per_replica
    if per <= 0:
        return [ok("gpus", "generation.gpus_per_replica is 0: the engine needs no GPU")]
    fits = {n["name"]: math.floor(n["gpus"] / per + 1e-9) for n in nodes}
    seen = ", ".join(f"{n['name']}: {n['gpus']:g}" for n in nodes) or "no nodes"
    possible = sum(fits.values())
    low, _ = gen.replica_range
    if possible == 0:
        return [
            fail(
                "gpus",
                f"no node has the {per:g} GPU(s) a replica asks (GPUs per node: {seen})",
                "run on GPU nodes, or lower generation.gpus_per_replica",
            )
        ]
    out = [
        (ok if possible >= low else warn)(
            "gpus",
            f"room for {possible} replica(s) of {per:g} GPU(s) (GPUs per node: {seen}); "
            f"generation.replicas asks {gen.replicas}",
            "add GPU nodes (an autoscaler may) or lower generation.replicas",
        )
    ]
    memory = [n["gpu_memory_bytes"] for n in nodes if fits[n["name"]] and n["gpu_memory_bytes"]]
    if not memory or not weights_bytes:
        return out
    usable = min(memory) * gen.engine.gpu_memory_utilization * per
    need = weights_bytes * 1.1  # weights plus activations; the KV cache takes the rest
    verdict = ok if need < usable else fail
    out.append(
        verdict(
            "gpu-memory",
            f"{weights_bytes / 1e9:.1f} GB of weights against {usable / 1e9:.1f} GB usable per "
            f"replica ({min(memory) / 1e9:.0f} GB a GPU x gpu_memory_utilization "
            f"{gen.engine.gpu_memory_utilization} x {per:g} GPU(s))",
            "raise generation.gpus_per_replica or gpu_memory_utilization",
        )
    )
    return out


def local_nodes(cfg: RunConfig) -> list[dict[str, Any]]:
    """This machine as the one node of a local run."""
    if cfg.ray.local_num_gpus is not None:
        return [
            {
                "name": "local (ray.local_num_gpus)",
                "gpus": cfg.ray.local_num_gpus,
                "gpu_memory_bytes": None,
            }
        ]
    memory = _nvidia_smi_memory()
    return [{"name": "local", "gpus": len(memory), "gpu_memory_bytes": min(memory, default=None)}]


def _nvidia_smi_memory() -> list[int]:
    """Each visible GPU's memory in bytes ([] without nvidia-smi or GPUs)."""
    try:
        res = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if res.returncode != 0:
        return []
    return [int(float(x)) * 2**20 for x in res.stdout.split() if x.strip()]


def _one_gpu_memory() -> int | None:
    """The smallest visible GPU's memory in bytes (None without GPUs): what the task on
    each GPU node runs (qcraft_ray is installed where the job runs)."""
    return min(_nvidia_smi_memory(), default=None)


def cluster_nodes(cfg: RunConfig) -> list[dict[str, Any]]:
    """The alive nodes of the cluster this process has joined, with one GPU's memory
    read by a short task on each GPU node (None where it cannot be read)."""
    import ray

    out = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        gpus = n.get("Resources", {}).get("GPU", 0)
        name = f"{n.get('NodeManagerAddress')}:{n.get('NodeManagerPort')}"
        memory = _remote_gpu_memory(n["NodeID"]) if gpus else None
        out.append({"name": name, "gpus": gpus, "gpu_memory_bytes": memory})
    return out


def _remote_gpu_memory(node_id: str) -> int | None:
    """One GPU's memory on ``node_id``, by a task that asks one GPU there (None when no
    GPU is free within 20 s: a run is using them)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ref = (
        ray.remote(num_gpus=1, num_cpus=0)(_one_gpu_memory)
        .options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
        .remote()
    )
    ready, _ = ray.wait([ref], timeout=20)
    if not ready:
        ray.cancel(ref, force=True)
        return None
    return ray.get(ref)
