"""Where the run's own actors go: the driver's node, which outlives any worker node."""

from __future__ import annotations

from typing import Any


def on_this_node(cls: type) -> Any:
    """Start ``cls`` as a Ray actor on this process's node (the driver's, usually the
    head): the run's bookkeeping actors (the progress tracker, the replica death counts)
    must outlive any worker node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(cls).options(num_cpus=0, scheduling_strategy=here).remote()
