"""What the engine replicas tell the driver about themselves, typed once.

A replica sends :class:`ReplicaReady` when its engine is up and :class:`EngineReport`
(its :class:`OccupancySnapshot`) after each batch; the progress tracker keeps the latest
of each and sums them up (:func:`engine_occupancy`) into the :class:`EngineOccupancy`
that the run report carries as its ``engine`` section. The stages, the tracker and the
report all use these types; none of them declares the shape again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


@dataclass(frozen=True)
class OccupancySnapshot:
    """An engine's totals since its first request (seconds; sequence-seconds)."""

    max_num_seqs: int
    span_s: float = 0.0
    running_seq_s: float = 0.0  # the integral of running sequences over time
    queue_empty_s: float = 0.0
    idle_s: float = 0.0
    steps: int = 0
    first_output_at: float | None = None  # epoch seconds of the engine's first finished output
    first_step_at: float | None = None  # epoch seconds of the engine's first step

    @property
    def occupancy(self) -> float | None:
        if self.span_s <= 0:
            return None
        return self.running_seq_s / (self.span_s * self.max_num_seqs)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EngineReport:
    """A replica's engine occupancy so far (None: its engine keeps no scheduler stats)."""

    replica: str
    occupancy: OccupancySnapshot | None


class StartupPhases(BaseModel):
    """Where a replica's start-up went, in seconds (null: not known for this engine or
    vLLM version). ``process_s`` comes before the replica's constructor; the others but
    ``first_step_s`` add up to ``load_s`` (``other_s`` is what no phase explains);
    ``first_step_s`` runs from the engine ready to its first step (the first batch's
    wait included)."""

    model_config = ConfigDict(extra="forbid")

    process_s: float | None = None  # the actor's process started -> its constructor
    # a model on object storage copied to this node and the shared compile caches
    # fetched, vLLM's import running beside them (until both are done): what is left of
    # the import then counts in imports_s
    staging_s: float | None = None
    imports_s: float | None = None  # importing vLLM
    configure_s: float | None = None  # vLLM's engine configuration
    # vLLM's engine configured -> its engine core running: with a core process of its
    # own (vLLM on GPUs), that process started and importing vLLM; in the replica's
    # process (the CPU config), the frontend's own set-up
    engine_core_start_s: float | None = None
    executor_init_s: float | None = None  # the core's workers and devices set up
    weights_s: float | None = None  # the model built and its weights loaded
    compile_s: float | None = None  # torch.compile, as vLLM counts it (0 on CPU builds)
    warmup_s: float | None = None  # memory profile, KV cache, warm-up, graphs (less compile)
    other_s: float | None = None  # the rest of load_s
    first_step_s: float | None = None  # engine ready -> its first step


class CompileCacheUse(BaseModel):
    """A replica and the shared compile caches (``generation.engine.compile_cache``): what
    it fetched before its engine started, and torch's compiled-graph cache lookups in its
    process (null where its engine compiles in a process of its own, as vLLM on GPUs)."""

    model_config = ConfigDict(extra="forbid")

    fetched_files: int = 0
    fetched_bytes: int = 0
    publishes: int = 0  # complete publishes found in the shared folder
    hits: int | None = None
    misses: int | None = None
    fetch_error: str | None = None  # the fetch failed (the engine compiled): why


@dataclass(frozen=True)
class ReplicaReady:
    """A replica whose engine came up: where, when it started, how long it took to load."""

    replica: str
    load_s: float
    started_at: float  # epoch seconds: the replica's constructor began
    node_id: str | None = None
    node_address: str | None = None
    startup: StartupPhases | None = None
    compile_cache: CompileCacheUse | None = None


class _Legacy(BaseModel):
    """Reads reports of earlier versions, whose engine section counted time inside
    engine calls (``busy_s``, ``busy_fraction``): those keys are dropped."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_busy(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in ("busy_s", "busy_fraction")}
        return data


class ReplicaEngine(_Legacy):
    """One replica: where it ran, its start-up, and how full its engine was kept, from
    the engine's own scheduler counts (nulls: no work, or an engine without them)."""

    node_id: str | None = None  # the Ray node the replica ran on
    node_address: str | None = None  # that node's IP address
    load_s: float | None = None  # from the replica's start to its engine being ready
    first_output_s: float | None = None  # from the replica's start to its first output
    span_s: float | None = None  # from its engine's first request to its last step
    occupancy: float | None = None  # mean running sequences / max_num_seqs over the span
    mean_running: float | None = None  # mean running sequences over the span
    queue_empty_fraction: float | None = None  # share of the span no request waited
    idle_fraction: float | None = None  # share of the span nothing ran
    steps: int | None = None  # engine steps
    startup: StartupPhases | None = None  # where load_s went, and the first step
    compile_cache: CompileCacheUse | None = None  # with generation.engine.compile_cache


class EngineOccupancy(_Legacy):
    """How full the pipeline kept the engines, and how soon they produced."""

    occupancy: float | None = None  # over every replica's span
    first_output_at: float | None = None  # epoch seconds: the first output of any replica
    first_output_s: float | None = None  # from the run's start to that first output
    replicas: dict[str, ReplicaEngine] = {}


def replica_summary(ready: ReplicaReady, occ: OccupancySnapshot | None) -> ReplicaEngine:
    """Where a replica ran, how long its engine took to load, and how full it was kept
    from its first request to its last step (nulls: no work, or no scheduler stats)."""
    startup = ready.startup
    if startup is not None and occ is not None and occ.first_step_at is not None:
        engine_ready = ready.started_at + ready.load_s
        first_step_s = round(max(0.0, occ.first_step_at - engine_ready), 3)
        startup = startup.model_copy(update={"first_step_s": first_step_s})
    out = ReplicaEngine(
        node_id=ready.node_id,
        node_address=ready.node_address,
        load_s=round(ready.load_s, 3),
        startup=startup,
        compile_cache=ready.compile_cache,
    )
    if occ is None or occ.span_s <= 0:
        return out
    return out.model_copy(
        update=dict(
            first_output_s=round(occ.first_output_at - ready.started_at, 3)
            if occ.first_output_at is not None
            else None,
            span_s=round(occ.span_s, 3),
            occupancy=round(occ.running_seq_s / (occ.span_s * occ.max_num_seqs), 4),
            mean_running=round(occ.running_seq_s / occ.span_s, 2),
            queue_empty_fraction=round(occ.queue_empty_s / occ.span_s, 4),
            idle_fraction=round(occ.idle_s / occ.span_s, 4),
            steps=occ.steps,
        )
    )


def engine_occupancy(
    ready: dict[str, ReplicaReady], engines: dict[str, OccupancySnapshot | None]
) -> EngineOccupancy:
    """Per replica that came up, :func:`replica_summary`; overall, the occupancy over
    every replica's span and the first output of any replica (epoch seconds)."""
    seen = [o for o in engines.values() if o is not None and o.span_s > 0]
    capacity = sum(o.span_s * o.max_num_seqs for o in seen)
    firsts = [o.first_output_at for o in seen if o.first_output_at is not None]
    return EngineOccupancy(
        occupancy=round(sum(o.running_seq_s for o in seen) / capacity, 4) if capacity else None,
        first_output_at=min(firsts) if firsts else None,
        replicas={name: replica_summary(r, engines.get(name)) for name, r in sorted(ready.items())},
    )
