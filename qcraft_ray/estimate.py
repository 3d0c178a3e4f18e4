"""What a run would cost: engine-hours from the plan's tokens, at an assumed or a measured
rate (``qcraft plan``, ``qcraft plan --measure N``).

An engine's rate is counted in tokens, prompt and generated together: the prefill of
~550-token prompts dominates this model's work, so tokens say more than prompts do. The
assumed rate (``estimate.tokens_per_gpu_second``) comes from one H200 run; ``--measure``
starts one engine replica as the run would (its GPUs, CPUs and environment), hands it
``N`` prompts sampled from the input at once, and times that one call, without the load.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.stages.backends import make_engine
from qcraft_ray.stages.engine import Generated


class PromptSample:
    """A seeded uniform sample of ``size`` pending prompts' token ids (reservoir)."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.prompts: list[list[int]] = []
        self._seen = 0
        self._rng = random.Random(seed)

    def add(self, batch: pa.Table) -> None:
        if not self.size:
            return
        pending = batch.filter(pc.equal(batch[S.STATUS], S.STATUS_PENDING))
        for ids in pending[S.PROMPT_TOKEN_IDS].to_pylist():
            self._seen += 1
            if len(self.prompts) < self.size:
                self.prompts.append(ids)
            else:
                k = self._rng.randrange(self._seen)
                if k < self.size:
                    self.prompts[k] = ids


@dataclass(frozen=True)
class MeasuredRate:
    """One engine replica's rate on a sample of the input's prompts."""

    prompts: int
    prompt_tokens: int
    generated_tokens: int
    seconds: float  # the one generate call, without the engine's load
    load_s: float
    gpus: float  # the replica's GPUs (0: a CPU engine)

    @property
    def tokens_per_second(self) -> float:
        return (self.prompt_tokens + self.generated_tokens) / self.seconds


class EngineProbe:
    """Builds the configured engine (a Ray actor with a replica's resources) and times
    one call over the prompts it is handed."""

    def __init__(self, cfg: RunConfig) -> None:
        from qcraft_ray.compile_cache import publish_quietly, shared_for
        from qcraft_ray.stages.generate import stage_for_engine

        t0 = time.monotonic()
        gen = cfg.generation
        self._gpus = gen.gpus_per_replica
        self._samples = gen.samples_per_prompt
        shared = shared_for(gen, cfg.model, cfg.storage)
        model, _ = stage_for_engine(cfg.model, cfg.storage, shared)
        self._engine = make_engine(gen, model)
        self._load_s = time.monotonic() - t0
        if shared is not None:  # what it compiled, for the run's replicas
            publish_quietly(shared, time.time())

    def measure(self, prompts: list[list[int]]) -> MeasuredRate:
        t0 = time.perf_counter()
        done = self._engine.generate(prompts)
        seconds = time.perf_counter() - t0
        return MeasuredRate(
            prompts=len(prompts),
            prompt_tokens=sum(len(p) for p in prompts),  # prefilled once, whatever the samples
            generated_tokens=sum(_tokens(g) for g in done),
            seconds=seconds,
            load_s=self._load_s,
            gpus=self._gpus,
        )


def _tokens(g: Generated) -> int:
    return g.tokens + sum(m.tokens for m in g.more)


def measure_rate(cfg: RunConfig, prompts: list[list[int]]) -> MeasuredRate:
    """Start one replica's engine on the cluster, as the run would, and time it on
    ``prompts`` (needs Ray initialised)."""
    import ray

    gen = cfg.generation
    # vLLM logs to stdout, which Ray forwards to the driver's: keep it off the plan's JSON
    env = {"VLLM_LOGGING_STREAM": "ext://sys.stderr", **gen.replica_env}
    probe: Any = (
        ray.remote(EngineProbe)
        .options(
            num_gpus=gen.gpus_per_replica,
            num_cpus=gen.cpus_per_replica,
            runtime_env={"env_vars": env},
        )
        .remote(cfg)
    )
    try:
        return ray.get(probe.measure.remote(prompts))
    finally:
        ray.kill(probe)


def estimate(
    counts: RowCounts, cfg: RunConfig, measured: MeasuredRate | None, asked: bool = False
) -> dict[str, Any]:
    """Generated tokens, engine-hours and GPU-hours for the plan's prompts (and the cost,
    with ``estimate.gpu_hour_price``), at the measured rate or the configured one
    (``asked``: a measurement was asked for)."""
    est, gen = cfg.estimate, cfg.generation
    prompts = counts.outputs.get(S.STATUS_PENDING, 0)
    if measured is not None:
        per_prompt = measured.generated_tokens / max(measured.prompts * gen.samples_per_prompt, 1)
        rate, source = measured.tokens_per_second, "measured"
        gpus = measured.gpus
    else:
        per_prompt = est.output_tokens_per_prompt
        gpus = gen.gpus_per_replica
        rate = est.tokens_per_gpu_second * max(gpus, 1)  # a replica: its GPUs' rate
        source = "estimate.* settings"
    generated = round(prompts * gen.samples_per_prompt * per_prompt)
    engine_hours = (counts.prompt_tokens + generated) / rate / 3600
    out: dict[str, Any] = {
        "note": f"ESTIMATE: engine time at the rate from {source}",
        "source": "measured" if measured is not None else "config",
        "generated_tokens": generated,
        "output_tokens_per_prompt": round(per_prompt, 2),
        "tokens_per_replica_second": round(rate, 1),
        "engine_hours": round(engine_hours, 4),
        "gpu_hours": round(engine_hours * gpus, 4),
        "prompts_per_replica_second": round(prompts / (engine_hours * 3600), 2)
        if engine_hours
        else None,
    }
    if est.gpu_hour_price is not None:
        out["cost"] = round(out["gpu_hours"] * est.gpu_hour_price, 2)
    if measured is None and asked:
        out["note"] += " (--measure: the input has no prompt to measure on)"
    if measured is not None:
        out["measured"] = {**asdict(measured), "tokens_per_second": round(rate, 1)}
    return out
