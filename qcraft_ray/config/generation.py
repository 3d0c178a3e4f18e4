"""Generation: the engine replicas and how they decode."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from qcraft_ray.config.base import MAY_CHANGE, Section
from qcraft_ray.output_types import normalize_type


class PacedConfig(Section):
    prefill_tokens_per_s: float = Field(
        150_000,
        gt=0,
        description="Prompt tokens the paced engine prefills per second (default: one H200 "
        "on the 1.7B model, bench/RESULTS-gpu.md).",
        json_schema_extra=MAY_CHANGE,
    )
    decode_step_ms: float = Field(
        0.6,
        ge=0,
        description="What a step with decoding sequences costs on top of its prefill "
        "tokens, in ms (default: fitted to the same H200 run).",
        json_schema_extra=MAY_CHANGE,
    )


class EngineConfig(Section):
    backend: Literal["vllm", "instant", "paced"] = Field(
        "vllm",
        description="'vllm': the model, on vLLM. 'instant': no model; every prompt is "
        "answered at once with a span of the prompt itself (seeded lengths, mean 20 "
        "tokens), to measure what the pipeline alone can do (bench/ceiling.py) or test it "
        "without an engine. 'paced': the instant engine's outputs at a GPU engine's pace "
        "(engine.paced: vLLM's scheduling, max_num_seqs, a step time from its tokens), to "
        "measure and test feeding at GPU rates without a GPU.",
    )
    paced: PacedConfig = Field(
        default_factory=PacedConfig, description="The paced engine's rates (backend: paced)."
    )
    dtype: str = Field("auto", description="vLLM dtype. 'float32' on CPU (bf16 is slow there).")
    max_model_len: int = Field(
        4096, ge=256, description="Context length per sequence (prompt + output)."
    )
    gpu_memory_utilization: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Fraction of accelerator memory vLLM may use.",
        json_schema_extra=MAY_CHANGE,
    )
    max_num_seqs: int = Field(
        256, ge=1, description="Sequences the engine batches at once.", json_schema_extra=MAY_CHANGE
    )
    max_num_batched_tokens: int | None = Field(
        None,
        ge=1,
        description="Token budget per engine step. null: vLLM's default.",
        json_schema_extra=MAY_CHANGE,
    )
    enable_prefix_caching: bool = Field(
        True, description="Reuse KV cache of shared prompt prefixes (system message)."
    )
    enforce_eager: bool = Field(
        False,
        description="vLLM's eager mode: no torch.compile, no CUDA graphs (a shorter start, "
        "a slower engine). The outputs mean the same either way.",
        json_schema_extra=MAY_CHANGE,
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Further vllm.LLM arguments, passed through."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables for the replica processes (e.g. "
        "VLLM_CPU_KVCACHE_SPACE on CPU).",
        json_schema_extra=MAY_CHANGE,
    )
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto",
        description="Where the engine runs: 'cuda' (the vllm build) or 'cpu' (vllm-cpu). "
        "'auto': cuda when generation.gpus_per_replica > 0, else cpu. 'cpu' with "
        "gpus_per_replica > 0 runs a CPU engine in a replica that holds a (logical) GPU, "
        "one replica per GPU: a GPU cluster's layout without GPUs, for tests.",
    )
    cpu_threads: int | None = Field(
        None,
        ge=1,
        description="Threads of a CPU engine (device cpu). null: every "
        "core the replica process may run on (Ray otherwise gives a fractional-CPU actor "
        "OMP_NUM_THREADS=1, one thread). An OMP_NUM_THREADS in env wins.",
    )
    compile_cache: str | None = Field(
        None,
        description="A folder (s3://..., gs://..., or a path every node shares) where the "
        "replicas share vLLM's and torch's compile caches: before its engine starts, a "
        "replica fetches what others published (per vLLM and torch release and device), "
        "and once its engine is ready it publishes what it compiled, so a cluster "
        "compiles the model once instead of once per node. The node's copy is kept in "
        "model.cache_dir. null: each node's own caches.",
        json_schema_extra=MAY_CHANGE,
    )

    @model_validator(mode="after")
    def _own_cache_folders(self) -> EngineConfig:
        taken = sorted({"VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR"} & set(self.env))
        if self.compile_cache and taken:
            raise ValueError(
                f"generation.engine.compile_cache sets {', '.join(taken)} itself (to the "
                "node's copy of the shared caches): remove it from generation.engine.env, "
                "or compile_cache"
            )
        return self


_RANGE_RE = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+)\s*$")


class GenerationConfig(Section):
    types: list[str] = Field(
        default_factory=lambda: ["query"],
        min_length=1,
        description="Output types to generate per passage: query, alt_query, keywords, "
        "synonym_keywords, title, faq, summary.",
    )
    types_per_passage: Literal["all"] | int = Field(
        "all",
        description="'all': every passage gets every type. A number k: each passage gets k "
        "of the types, drawn without replacement (weighted by type_weights) from a hash of "
        "(doc id, chunk index, types_seed), so a resumed run, a shard and a re-run draw the "
        "same types. The model was trained on one type per passage.",
    )
    type_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Relative weights of the types for the draw (types_per_passage = k); "
        "types not listed weigh 1.",
    )
    types_seed: int = Field(0, description="Seed of the per-passage type draw.")
    samples_per_prompt: int = Field(
        1,
        ge=1,
        description="Outputs sampled per prompt (vLLM's own n: one prefill, n decodes). "
        "Each is a row with its sample_index; a sample that repeats an earlier one of its "
        "prompt (case and whitespace aside) gets status duplicate and is not scored. "
        "More than 1 needs temperature > 0.",
    )
    replicas: int | str = Field(
        1,
        description="Engine replicas: a number, or a range 'MIN..MAX' that Ray Data "
        "autoscales within.",
        json_schema_extra=MAY_CHANGE,
    )
    gpus_per_replica: float = Field(
        1,
        ge=0,
        description="GPUs per replica; above 1 it is the tensor-parallel size. "
        "0 runs on CPU (vllm-cpu).",
    )
    cpus_per_replica: float = Field(
        1, gt=0, description="CPUs reserved per replica.", json_schema_extra=MAY_CHANGE
    )
    replica_niceness: int = Field(
        0,
        ge=0,
        le=19,
        description="Niceness of the replicas' processes (and the engine processes they "
        "start). Ray starts every worker process at niceness 15, the CPU stages' too, so "
        "at 0 an engine gets a core first whenever both want one. 15: Ray's default.",
        json_schema_extra=MAY_CHANGE,
    )
    batch_size: int = Field(
        256, ge=1, description="Prompts per engine call.", json_schema_extra=MAY_CHANGE
    )
    batches_in_flight: int = Field(
        16,
        ge=1,
        description="Batches each replica runs at once, all feeding its one engine: while "
        "one batch's last sequences run, the next ones' prompts take the freed slots. A "
        "batch holds its place until its longest output ends (max_new_tokens engine steps "
        "after its last prompt starts), so batch_size x batches_in_flight must cover what "
        "the engine does meanwhile: about 8-16x engine.max_num_seqs (bench/RESULTS-paced.md).",
        json_schema_extra=MAY_CHANGE,
    )
    max_replica_deaths_per_row: int = Field(
        3,
        ge=1,
        description="A row whose engine replica died this many times while "
        "generating it is recorded with status 'error' instead of being retried again.",
        json_schema_extra=MAY_CHANGE,
    )
    call_timeout_s: float = Field(
        600.0,
        gt=0,
        description="An engine call (one batch, from its submission to its last output) "
        "running longer than this is hung (a stuck accelerator call never returns): its "
        "replica is ended, Ray restarts it and retries the batch, and a row that hangs "
        "every time becomes an error row after max_replica_deaths_per_row. A batch shares "
        "the engine with batches_in_flight - 1 others: keep it well above that many "
        "batches' time (seconds on a GPU, up to minutes on CPU).",
        json_schema_extra=MAY_CHANGE,
    )
    max_new_tokens: int = Field(128, ge=1, description="Most tokens generated per output.")
    temperature: float = Field(0.0, ge=0, description="0 is greedy (the model card's setting).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (temperature > 0).")
    seed: int | None = Field(
        0,
        description="Sampling seed (temperature > 0), per request. Not applied on CPU "
        "engines: vllm-cpu crashes on a seeded request whose prompt is prefilled in "
        "several steps.",
    )
    engine: EngineConfig = Field(default_factory=EngineConfig, description="vLLM engine.")

    @field_validator("types")
    @classmethod
    def _check_types(cls, v: list[str]) -> list[str]:
        out = [normalize_type(t) for t in v]
        if len(set(out)) != len(out):
            raise ValueError(f"generation.types has duplicates: {v}")
        return out

    @field_validator("type_weights")
    @classmethod
    def _check_weights(cls, v: dict[str, float]) -> dict[str, float]:
        out = {normalize_type(t): float(w) for t, w in v.items()}
        if any(w <= 0 for w in out.values()):
            raise ValueError(f"generation.type_weights must be > 0; got {v}")
        return out

    @model_validator(mode="after")
    def _check_draw(self) -> GenerationConfig:
        k = self.types_per_passage
        if k != "all" and not 1 <= int(k) <= len(self.types):
            raise ValueError(
                f"generation.types_per_passage must be 'all' or 1..{len(self.types)} "
                f"(the number of types); got {k}"
            )
        if self.samples_per_prompt > 1 and self.temperature <= 0:
            raise ValueError(
                f"generation.samples_per_prompt={self.samples_per_prompt} needs sampling: "
                "set generation.temperature > 0 (greedy decoding gives one output)"
            )
        unknown = sorted(set(self.type_weights) - set(self.types))
        if unknown:
            raise ValueError(f"generation.type_weights names types not in types: {unknown}")
        return self

    @property
    def prompts_per_passage(self) -> int:
        return len(self.types) if self.types_per_passage == "all" else int(self.types_per_passage)

    @field_validator("replicas")
    @classmethod
    def _check_replicas(cls, v: int | str) -> int | str:
        lo, hi = _replica_range(v)
        if lo < 1 or hi < lo:
            raise ValueError(f"generation.replicas must be >= 1 or 'MIN..MAX'; got {v!r}")
        return v

    @property
    def device(self) -> Literal["cuda", "cpu"]:
        """Where the engine runs, ``engine.device`` resolved."""
        if self.engine.device != "auto":
            return self.engine.device
        return "cuda" if self.gpus_per_replica > 0 else "cpu"

    @property
    def replica_range(self) -> tuple[int, int]:
        return _replica_range(self.replicas)

    @property
    def replica_env(self) -> dict[str, str]:
        """A replica's environment: ``engine.env``, and its niceness (Ray reads
        ``RAY_worker_niceness`` from a worker's environment as it starts the process)."""
        return {"RAY_worker_niceness": str(self.replica_niceness), **self.engine.env}


def _replica_range(v: int | str) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    if str(v).strip().isdigit():
        return int(v), int(v)
    m = _RANGE_RE.match(str(v))
    if not m:
        raise ValueError(f"generation.replicas must be a number or 'MIN..MAX'; got {v!r}")
    return int(m.group(1)), int(m.group(2))
