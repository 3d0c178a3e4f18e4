"""Wiring only: the job's stages, top to bottom. No stage logic lives here."""

from __future__ import annotations

import functools
import time

import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data
from ray.data import ActorPoolStrategy, Dataset

from qcraft_ray import schema as S
from qcraft_ray.config import ModelConfig, PassageConfig, RunConfig
from qcraft_ray.io.discover import InputPlan
from qcraft_ray.io.read import FineWebDatasource
from qcraft_ray.io.write import OutputSink
from qcraft_ray.progress import RemoteProgress
from qcraft_ray.resume import RunState
from qcraft_ray.stages.attempts import AttemptLedger, RemoteLedger
from qcraft_ray.stages.generate import Replica
from qcraft_ray.stages.passages import make_passages
from qcraft_ray.stages.render import PromptBuilder
from qcraft_ray.stages.score import Scorer
from qcraft_ray.stages.units import drop_written, with_doc_rows
from qcraft_ray.tokenization import load_tokenizer


@functools.lru_cache(maxsize=4)
def _prompt_builder(model_json: str, types: tuple[str, ...], max_prompt_tokens: int
                    ) -> PromptBuilder:
    """One builder per worker process (keyed by the model config as JSON: pydantic
    models do not hash): it renders the chat template's head and tail for each
    (language, type) once, not once per block."""
    model = ModelConfig.model_validate_json(model_json)
    return PromptBuilder(load_tokenizer(model), list(types), model.name, max_prompt_tokens)


def _pending(rows: pa.Table) -> int:
    return pc.sum(pc.equal(rows[S.STATUS], S.STATUS_PENDING)).as_py() or 0


def passages_udf(docs: pa.Table, passages: PassageConfig, model: ModelConfig,
                 written: pa.Table | None = None, progress: RemoteProgress | None = None
                 ) -> pa.Table:
    """Documents -> passages (tokenizer loaded once per worker); a resumed run drops
    rows it already wrote."""
    t0 = time.perf_counter()
    rows = with_doc_rows(make_passages(docs, passages, load_tokenizer(model)))
    rows = drop_written(rows, written)
    if progress:
        progress.add({"documents_read": docs.num_rows, "passages": _pending(rows),
                      "seconds_passages": time.perf_counter() - t0})
    return rows


def prompts_udf(docs: pa.Table, passages: PassageConfig, model: ModelConfig,
                types: list[str], max_prompt_tokens: int,
                written: pa.Table | None = None, progress: RemoteProgress | None = None
                ) -> pa.Table:
    """Documents -> passages -> prompts, in one task (tokenizer loaded once per worker);
    a resumed run drops rows it already wrote."""
    t0 = time.perf_counter()
    tokenizer = load_tokenizer(model)
    builder = _prompt_builder(model.model_dump_json(), tuple(types), max_prompt_tokens)
    chunks = make_passages(docs, passages, tokenizer)
    rows = drop_written(with_doc_rows(builder(chunks)), written)
    if progress:
        progress.add({"documents_read": docs.num_rows, "passages": _pending(chunks),
                      "prompts": _pending(rows),
                      "seconds_passages_prompts": time.perf_counter() - t0})
    return rows


def read(cfg: RunConfig, plan: InputPlan, state: RunState | None = None) -> Dataset:
    done = state.done_units if state else None
    return ray.data.read_datasource(FineWebDatasource(plan, cfg.input, cfg.storage, done),
                                    num_cpus=cfg.ray.read_cpus)


def prompts(cfg: RunConfig, plan: InputPlan, state: RunState | None = None,
            progress: RemoteProgress | None = None) -> Dataset:
    """read -> passages -> prompts (also what ``qcraft plan`` runs)."""
    gen = cfg.generation
    return read(cfg, plan, state).map_batches(
        prompts_udf,
        batch_format="pyarrow",
        batch_size=None,  # one read block (one unit) per call: see stages.units
        num_cpus=cfg.ray.passage_cpus,
        fn_kwargs=dict(passages=cfg.passages, model=cfg.model, types=gen.types,
                       max_prompt_tokens=gen.engine.max_model_len - gen.max_new_tokens,
                       written=state.written if state else None, progress=progress),
    )


def generate(ds: Dataset, cfg: RunConfig, progress: RemoteProgress | None = None) -> Dataset:
    """prompts -> generated rows, on an actor pool of engine replicas (restarted by Ray
    when they die; rows that keep killing them are recorded as errors)."""
    gen = cfg.generation
    low, high = gen.replica_range
    ledger = RemoteLedger(ray.remote(AttemptLedger).options(num_cpus=0).remote())
    return ds.map_batches(
        Replica,
        fn_constructor_kwargs=dict(gen=gen, model=cfg.model, ledger=ledger,
                                   max_attempts=gen.max_replica_deaths_per_row,
                                   progress=progress),
        compute=ActorPoolStrategy(min_size=low, max_size=high,
                                  max_tasks_in_flight_per_actor=gen.batches_in_flight),
        batch_format="pyarrow",
        batch_size=gen.batch_size,
        num_gpus=gen.gpus_per_replica,
        num_cpus=gen.cpus_per_replica,
        runtime_env={"env_vars": dict(gen.engine.env)} if gen.engine.env else None,
    )


def score(ds: Dataset, cfg: RunConfig) -> Dataset:
    """generated rows -> scored rows, on an actor pool of embedding models."""
    sc = cfg.score
    return ds.map_batches(
        Scorer, fn_constructor_kwargs=dict(cfg=sc),
        compute=ActorPoolStrategy(size=sc.replicas), batch_format="pyarrow",
        batch_size=sc.batch_size * 4, num_gpus=sc.gpus_per_replica, num_cpus=sc.cpus_per_replica)


def run_passages_pipeline(cfg: RunConfig, plan: InputPlan, state: RunState,
                          progress: RemoteProgress | None = None) -> None:
    """read -> passages -> write: pre-chunk a corpus without generating."""
    ds = read(cfg, plan, state).map_batches(
        passages_udf, batch_format="pyarrow", batch_size=None, num_cpus=cfg.ray.passage_cpus,
        fn_kwargs=dict(passages=cfg.passages, model=cfg.model, written=state.written,
                       progress=progress))
    sink = OutputSink(cfg.output, cfg.storage, state.run_id, state.attempt, None,
                      schema=S.PASSAGES_SCHEMA, progress=progress)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": cfg.ray.write_cpus})


def run_pipeline(cfg: RunConfig, plan: InputPlan, state: RunState,
                 progress: RemoteProgress | None = None) -> None:
    """read -> passages -> prompts -> generate (+clean) -> [score] -> write."""
    ds = generate(prompts(cfg, plan, state, progress), cfg, progress)
    if cfg.score.enabled:
        ds = score(ds, cfg)
    sink = OutputSink(cfg.output, cfg.storage, state.run_id, state.attempt,
                      cfg.generation.types[0], progress=progress)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": cfg.ray.write_cpus})
