"""Wiring only: the job's stages, top to bottom. No stage logic lives here."""

from __future__ import annotations

import pyarrow as pa
import ray.data
from ray.data import ActorPoolStrategy, Dataset

from qcraft_ray import schema as S
from qcraft_ray.config import ModelConfig, PassageConfig, RunConfig
from qcraft_ray.io.discover import InputPlan
from qcraft_ray.io.read import FineWebDatasource
from qcraft_ray.io.write import OutputSink
from qcraft_ray.stages.generate import Replica
from qcraft_ray.stages.passages import make_passages
from qcraft_ray.stages.render import PromptBuilder
from qcraft_ray.tokenization import load_tokenizer


def passages_udf(docs: pa.Table, passages: PassageConfig, model: ModelConfig) -> pa.Table:
    """Documents -> passages (tokenizer loaded once per worker)."""
    return make_passages(docs, passages, load_tokenizer(model))


def prompts_udf(docs: pa.Table, passages: PassageConfig, model: ModelConfig,
                types: list[str], max_prompt_tokens: int) -> pa.Table:
    """Documents -> passages -> prompts, in one task (tokenizer loaded once per worker)."""
    tokenizer = load_tokenizer(model)
    builder = PromptBuilder(tokenizer, types, model.name, max_prompt_tokens)
    return builder(make_passages(docs, passages, tokenizer))


def read(cfg: RunConfig, plan: InputPlan) -> Dataset:
    return ray.data.read_datasource(FineWebDatasource(plan, cfg.input, cfg.storage),
                                    num_cpus=cfg.ray.read_cpus)


def prompts(cfg: RunConfig, plan: InputPlan) -> Dataset:
    """read -> passages -> prompts (also what ``qcraft plan`` runs)."""
    gen = cfg.generation
    return read(cfg, plan).map_batches(
        prompts_udf,
        batch_format="pyarrow",
        batch_size=None,
        num_cpus=cfg.ray.passage_cpus,
        fn_kwargs=dict(passages=cfg.passages, model=cfg.model, types=gen.types,
                       max_prompt_tokens=gen.engine.max_model_len - gen.max_new_tokens),
    )


def generate(ds: Dataset, cfg: RunConfig) -> Dataset:
    """prompts -> generated rows, on an actor pool of engine replicas."""
    gen = cfg.generation
    low, high = gen.replica_range
    return ds.map_batches(
        Replica,
        fn_constructor_kwargs=dict(gen=gen, model=cfg.model),
        compute=ActorPoolStrategy(min_size=low, max_size=high,
                                  max_tasks_in_flight_per_actor=gen.batches_in_flight),
        batch_format="pyarrow",
        batch_size=gen.batch_size,
        num_gpus=gen.gpus_per_replica,
        num_cpus=gen.cpus_per_replica,
        runtime_env={"env_vars": dict(gen.engine.env)} if gen.engine.env else None,
    )


def run_passages_pipeline(cfg: RunConfig, plan: InputPlan, run_id: str) -> OutputSink:
    """read -> passages -> write: pre-chunk a corpus without generating."""
    ds = read(cfg, plan).map_batches(
        passages_udf, batch_format="pyarrow", batch_size=None, num_cpus=cfg.ray.passage_cpus,
        fn_kwargs=dict(passages=cfg.passages, model=cfg.model))
    sink = OutputSink(cfg.output, cfg.storage, run_id, None, schema=S.PASSAGES_SCHEMA)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": cfg.ray.write_cpus})
    return sink


def run_pipeline(cfg: RunConfig, plan: InputPlan, run_id: str) -> OutputSink:
    """read -> passages -> prompts -> generate (+clean) -> write. Returns the sink."""
    ds = prompts(cfg, plan)
    ds = generate(ds, cfg)
    sink = OutputSink(cfg.output, cfg.storage, run_id, cfg.generation.types[0])
    ds.write_datasink(sink, ray_remote_args={"num_cpus": cfg.ray.write_cpus})
    return sink
