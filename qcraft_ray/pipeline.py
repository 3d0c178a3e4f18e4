"""Wiring only: the job's stages, top to bottom. No stage logic lives here."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import ray
import ray.data
from ray.data import ActorPoolStrategy, Dataset

from qcraft_ray import schema as S
from qcraft_ray.compat.ray_data import actor_pool, set_repartition_cpus
from qcraft_ray.config import GenerationConfig, RunConfig
from qcraft_ray.io.plan import InputPlan
from qcraft_ray.io.read import FineWebDatasource
from qcraft_ray.io.write import OutputSink
from qcraft_ray.ledger.state import RunState
from qcraft_ray.mode import Mode
from qcraft_ray.placement import on_this_node
from qcraft_ray.progress import RemoteProgress
from qcraft_ray.stages.base import TaskStage, run_task_stage
from qcraft_ray.stages.deaths import RemoteRowDeaths, RowDeaths
from qcraft_ray.stages.generate import Replica
from qcraft_ray.stages.passages import PassageStage
from qcraft_ray.stages.prompts import PromptStage, TypeDraw
from qcraft_ray.stages.quality import QualityStage
from qcraft_ray.stages.score import Scorer
from qcraft_ray.store.layout import Layout

log = logging.getLogger(__name__)


def read(cfg: RunConfig, plan: InputPlan, state: RunState | None = None) -> Dataset:
    done = state.done_units if state else None
    return ray.data.read_datasource(
        FineWebDatasource(plan, cfg.input, cfg.storage, done), num_cpus=cfg.ray.read_cpus
    )


def _cpu_stage(
    ds: Dataset, stage: TaskStage, cfg: RunConfig, block_rows: int | None = None
) -> Dataset:
    """A task stage over whole blocks; with ``block_rows``, its outputs are cut into
    blocks of at most that many rows in the same tasks."""
    out = ds.map_batches(
        functools.partial(run_task_stage, stage=stage),
        batch_format="pyarrow",
        batch_size=None,  # one read block (one work unit) per call
        num_cpus=cfg.ray.passage_cpus,
    )
    if block_rows is None:
        return out
    out = out.repartition(target_num_rows_per_block=block_rows)
    # Dataset.repartition takes no task options, so its tasks ask 1 CPU; Ray Data fuses
    # it into the stage before only when both ask the same. Unfused, every block makes
    # one more task and object-store copy (cost: bench/RESULTS-ceiling.md), and a 1-CPU
    # task can wait forever on a small cluster (test_job checks the fusion).
    if not set_repartition_cpus(out, cfg.ray.passage_cpus):
        log.warning(
            "this Ray's Data plan has another shape: the prompt stage's blocks are cut in "
            "tasks of their own that ask 1 CPU each"
        )
    return out


def prompts(
    cfg: RunConfig,
    plan: InputPlan,
    state: RunState | None = None,
    progress: RemoteProgress | None = None,
) -> Dataset:
    """read -> passages -> prompts (also what ``qcraft plan`` runs)."""
    gen = cfg.generation
    stage = TaskStage(
        PromptStage,
        passages=cfg.passages,
        model=cfg.model,
        types=TypeDraw.of(gen),
        max_prompt_tokens=gen.engine.max_model_len - gen.max_new_tokens,
        written=state.written if state else None,
        samples=gen.samples_per_prompt,
        progress=progress,
        storage=cfg.storage,
    )
    # blocks of at most one batch: a replica task's outputs leave as one block when the
    # task ends, so a large block would hold its outputs back from the stages after
    return _cpu_stage(read(cfg, plan, state), stage, cfg, block_rows=gen.batch_size)


# Ray Data adds a replica when the tasks in flight reach 1.75x (its default threshold) the
# calls the pool can run at once, so each replica takes twice its calls: one set running,
# one queued. With no more than its calls, a pool of replicas=1..4 never grows.
QUEUED_PER_CALL = 2


def replica_pool(gen: GenerationConfig) -> tuple[ActorPoolStrategy, dict[str, Any]]:
    """The engine replicas' actor pool: an async UDF, ``batches_in_flight`` batches
    running at once in each replica and as many queued (the strategy, and the
    ``map_batches`` arguments the installed Ray wants with it)."""
    low, high = gen.replica_range
    return actor_pool(low, high, QUEUED_PER_CALL * gen.batches_in_flight, gen.batches_in_flight)


def generate(ds: Dataset, cfg: RunConfig, progress: RemoteProgress | None = None) -> Dataset:
    """prompts -> generated rows, on an actor pool of engine replicas (restarted by Ray
    when they die; rows that keep killing them are recorded as errors)."""
    gen = cfg.generation
    deaths = RemoteRowDeaths(on_this_node(RowDeaths))
    pool, pool_args = replica_pool(gen)
    return ds.map_batches(
        Replica,
        fn_constructor_kwargs=dict(
            gen=gen,
            model=cfg.model,
            deaths=deaths,
            max_deaths=gen.max_replica_deaths_per_row,
            progress=progress,
            storage=cfg.storage,
        ),
        compute=pool,
        batch_format="pyarrow",
        batch_size=gen.batch_size,
        num_gpus=gen.gpus_per_replica,
        num_cpus=gen.cpus_per_replica,
        runtime_env={"env_vars": gen.replica_env},
        **pool_args,
    )


def score(ds: Dataset, cfg: RunConfig) -> Dataset:
    """generated rows -> scored rows, on an actor pool of embedding models."""
    sc = cfg.score
    return ds.map_batches(
        Scorer,
        fn_constructor_kwargs=dict(cfg=sc),
        compute=ActorPoolStrategy(size=sc.replicas),
        batch_format="pyarrow",
        # whole blocks: a prompt's samples stay in one block, so one write task commits
        # them together (the scorer batches its own encoding)
        batch_size=None,
        num_gpus=sc.gpus_per_replica,
        num_cpus=sc.cpus_per_replica,
    )


def output_sink(cfg: RunConfig, state: RunState, progress: RemoteProgress | None) -> OutputSink:
    schema = state.mode.schema
    layout = Layout.of(cfg.output.partition_by, cfg.input.language_map).for_schema(schema)
    # every passage yields a row per type it gets: a task's rows split over the types
    per_type = cfg.generation.prompts_per_passage if S.TYPE in layout.partition_by else 1
    return OutputSink(
        state.folder,
        cfg.output,
        state.run_id,
        state.attempt,
        schema=schema,
        progress=progress,
        lease_attempt=state.attempt,
        layout=layout,
        rows_per_write=cfg.output.min_rows_per_file * per_type,
        samples=cfg.generation.samples_per_prompt if state.mode.generates else 1,
    )


def write(ds: Dataset, cfg: RunConfig, state: RunState, progress: RemoteProgress | None) -> None:
    sink = output_sink(cfg, state, progress)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": cfg.ray.write_cpus})


def run_passages_pipeline(
    cfg: RunConfig, plan: InputPlan, state: RunState, progress: RemoteProgress | None = None
) -> None:
    """read -> passages -> write: pre-chunk a corpus without generating."""
    stage = TaskStage(
        PassageStage,
        passages=cfg.passages,
        model=cfg.model,
        written=state.written,
        progress=progress,
        storage=cfg.storage,
    )
    write(_cpu_stage(read(cfg, plan, state), stage, cfg), cfg, state, progress)


def check_quality(ds: Dataset, cfg: RunConfig, progress: RemoteProgress | None) -> Dataset:
    """generated rows -> rows with their language and copy signals, on a pool of CPU
    actors that load the language models while the engines load (a task would load
    them in whichever worker it lands on, the run's last block included)."""
    return ds.map_batches(
        QualityStage,
        fn_constructor_kwargs=dict(
            cfg=cfg.quality, model=cfg.model, progress=progress, storage=cfg.storage
        ),
        compute=ActorPoolStrategy(min_size=1, max_size=max(1, cfg.generation.replica_range[1])),
        batch_format="pyarrow",
        batch_size=None,  # one block per call
        num_cpus=cfg.ray.passage_cpus,
    )


def run_pipeline(
    cfg: RunConfig, plan: InputPlan, state: RunState, progress: RemoteProgress | None = None
) -> None:
    """read -> passages -> prompts -> generate (+clean) -> [quality] -> [score] -> write."""
    ds = generate(prompts(cfg, plan, state, progress), cfg, progress)
    if cfg.quality.language_id or cfg.quality.copy_check:
        ds = check_quality(ds, cfg, progress)
    if cfg.score.enabled:
        ds = score(ds, cfg)
    write(ds, cfg, state, progress)


Pipeline = Callable[[RunConfig, InputPlan, RunState, RemoteProgress | None], None]
PIPELINES: dict[Mode, Pipeline] = {
    Mode.GENERATE: run_pipeline,
    Mode.PASSAGES: run_passages_pipeline,
}
