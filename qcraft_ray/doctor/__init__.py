"""``qcraft doctor``: what a run would need, checked in seconds without writing data,
one line each (OK / WARN / FAIL and the fix). ``qcraft run`` makes the cheap ones
(:func:`preflight`: Python, Ray and vLLM versions) before anything else."""

from __future__ import annotations

from collections.abc import Callable

from qcraft_ray.config import RunConfig
from qcraft_ray.doctor.findings import Finding, failed, guarded, render
from qcraft_ray.doctor.versions import preflight

__all__ = ["Finding", "diagnose", "failed", "preflight", "render"]


def diagnose(
    cfg: RunConfig, address: str | None, join: Callable[[str], None] | None = None
) -> list[Finding]:
    """Every check, in the order a run meets them. ``address``: the cluster to check,
    which ``join`` joins as the run would (the CLI's; this package never starts Ray);
    None checks this machine as a local run's one node."""
    from qcraft_ray.doctor import cluster, storage
    from qcraft_ray.doctor.versions import torch_findings

    found = [*preflight(cfg), *guarded("torch", lambda: torch_findings(cfg))]
    found += guarded("input", lambda: storage.input_findings(cfg))
    found += guarded("output", lambda: storage.output_findings(cfg))
    found += storage.credential_findings(cfg)
    found += guarded("iceberg", lambda: storage.iceberg_findings(cfg))
    found += guarded("compile-cache", lambda: storage.compile_cache_findings(cfg))
    models = guarded("model", lambda: storage.model_findings(cfg))
    found += models
    weights = storage.weights_bytes(cfg) if not failed(models) else 0
    if address and join is not None:
        found.append(cluster.version_finding(address))
        if failed(found[-1:]):
            return found  # joining would fail the same way
        join(address)
        nodes = cluster.cluster_nodes(cfg)
    else:
        nodes = cluster.local_nodes(cfg)
    found += guarded("gpus", lambda: cluster.gpu_findings(cfg, nodes, weights))
    return found
