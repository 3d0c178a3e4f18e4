"""The Ray Data calls whose form changed inside the supported range, made the way the
installed Ray takes them (detected by what the installed Ray has, never by its number)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from typing import Any

from ray.data import ActorPoolStrategy


def _streaming_repartition() -> type | None:
    """Ray Data's logical operator for ``repartition(target_num_rows_per_block=...)``:
    in ``logical.operators`` from Ray 2.54, in its ``map_operator`` module before."""
    for module in (
        "ray.data._internal.logical.operators",
        "ray.data._internal.logical.operators.map_operator",
    ):
        try:
            found = getattr(importlib.import_module(module), "StreamingRepartition", None)
        except ImportError:
            continue
        if isinstance(found, type):
            return found
    return None


STREAMING_REPARTITION = _streaming_repartition()
# Ray 2.59 moved an actor's concurrent calls from its ray_remote_args to the strategy
CALLS_IN_STRATEGY = (
    "max_concurrent_calls_per_actor" in inspect.signature(ActorPoolStrategy).parameters
)


def set_repartition_cpus(ds: Any, cpus: float) -> bool:
    """Make the streaming repartition that ends ``ds`` ask ``cpus`` CPUs a task, so Ray
    Data fuses it into the stage before (``Dataset.repartition`` takes no task options).
    Reaches into Ray Data's logical plan (private); False where the installed Ray's plan
    has another shape (the repartition then runs as its own 1-CPU tasks)."""
    cut = getattr(getattr(ds, "_logical_plan", None), "dag", None)
    if STREAMING_REPARTITION is None or not isinstance(cut, STREAMING_REPARTITION):
        return False
    for name in ("ray_remote_args", "_ray_remote_args"):  # public from Ray 2.5x
        args = getattr(cut, name, None)
        if isinstance(args, dict):
            args["num_cpus"] = cpus
            return True
    return False


def actor_pool(
    min_size: int, max_size: int, tasks_in_flight: int, concurrent_calls: int
) -> tuple[ActorPoolStrategy, dict[str, Any]]:
    """An autoscaling actor pool whose actors run ``concurrent_calls`` calls at once: the
    strategy, and the ``map_batches`` arguments that go with it on the installed Ray."""
    if CALLS_IN_STRATEGY:
        strategy = ActorPoolStrategy(
            min_size=min_size,
            max_size=max_size,
            max_tasks_in_flight_per_actor=tasks_in_flight,
            max_concurrent_calls_per_actor=concurrent_calls,
        )
        return strategy, {}
    strategy = ActorPoolStrategy(
        min_size=min_size, max_size=max_size, max_tasks_in_flight_per_actor=tasks_in_flight
    )
    return strategy, {"max_concurrency": concurrent_calls}


def read_task(
    read_fn: Any,
    *,
    num_rows: int,
    size_bytes: int,
    input_files: tuple[str, ...],
    schema: Any,
    per_task_row_limit: int | None,
) -> Any:
    """A ``ReadTask`` with its metadata, as the installed Ray takes them (the schema moved
    from ``BlockMetadata`` to ``ReadTask`` in Ray 2.45; ``per_task_row_limit`` came in
    2.50)."""
    from ray.data import ReadTask
    from ray.data.block import BlockMetadata

    meta: dict[str, Any] = dict(
        num_rows=num_rows, size_bytes=size_bytes, exec_stats=None, input_files=list(input_files)
    )
    if "schema" in inspect.signature(BlockMetadata).parameters:
        meta["schema"] = schema
    task_params = inspect.signature(ReadTask).parameters
    kwargs: dict[str, Any] = {}
    if "schema" in task_params:
        kwargs["schema"] = schema
    if "per_task_row_limit" in task_params:
        kwargs["per_task_row_limit"] = per_task_row_limit
    return ReadTask(read_fn, BlockMetadata(**meta), **kwargs)


def give_thread_an_event_loop() -> None:
    """Ray Data before 2.55 asks an async UDF actor's main thread for its event loop and
    fails ("There is no current event loop") where the loop policy creates none (uvloop
    0.22 and newer, which vLLM installs). Called in such an actor's constructor: the
    thread gets a loop if it has none; newer Ray makes its own either way."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
