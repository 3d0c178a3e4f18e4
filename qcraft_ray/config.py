"""Typed run configuration: pydantic models, every field documented.

Loading from YAML with dotted overrides lives in :mod:`qcraft_ray.config_loader`; the
README's reference table is generated from these models
(:mod:`qcraft_ray.config_reference`), so the two cannot drift.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qcraft_ray.languages import normalize_language
from qcraft_ray.output_types import normalize_type

DEFAULT_MODEL = "hotchpotch/query-crafter-multilingual"

# Marks a field (or a whole section) that may differ between attempts of one run: it
# changes how fast a run goes, never what it writes (see qcraft_ray.ledger.fingerprint).
MAY_CHANGE: dict[str, Any] = {"may_change_on_resume": True}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InputConfig(_Section):
    paths: list[str] = Field(
        min_length=1,
        description="Parquet files, folders, globs or URIs (s3://, gs://, ...) to read. "
        "Folders are searched recursively for *.parquet.",
    )
    language: str | None = Field(
        None,
        description="Force one model language (e.g. 'japanese') for every row instead of "
        "reading it from the data. Must be one of the model's 21 languages.",
    )
    language_map: dict[str, str] = Field(
        default_factory=dict,
        description="Extra FineWeb2-style codes mapped to model languages, e.g. "
        "{zho_Hans: chinese}. Codes not mapped are rejected as unsupported_language.",
    )
    text_column: str = Field("text", description="Column holding the document text.")
    id_column: str = Field(
        "id",
        description="Column holding the document id. When absent or null, the id is "
        "'<file>#<row>' (stable for a given input).",
    )
    rows_per_task: int = Field(
        1000,
        ge=1,
        description="Documents per read task. Work is split by row ranges, not by files, "
        "so one large file still feeds every replica.",
    )

    @field_validator("language")
    @classmethod
    def _check_language(cls, v: str | None) -> str | None:
        return None if v is None else normalize_language(v)

    @field_validator("language_map")
    @classmethod
    def _check_map(cls, v: dict[str, str]) -> dict[str, str]:
        return {code: normalize_language(lang) for code, lang in v.items()}


class StorageConfig(_Section):
    endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint. Default: AWS_ENDPOINT_URL_S3 or "
        "AWS_ENDPOINT_URL from the environment, else AWS itself.",
    )
    region: str | None = Field(
        None, description="S3 region. Default: AWS_REGION / AWS_DEFAULT_REGION."
    )
    anonymous: bool = Field(False, description="Access object storage without credentials.")
    attempts: int = Field(
        8,
        ge=1,
        description="Tries per file read, write or commit before the run fails "
        "(retried on I/O errors, e.g. a short storage outage).",
    )
    retry_max_backoff_s: float = Field(
        30.0,
        gt=0,
        description="Longest wait between two tries (waits double from 1 s).",
    )


class OutputConfig(_Section):
    path: str = Field(
        description="Output folder or URI. Data files go at its top level, "
        "rejected rows under _rejected/, the run report in _report.json."
    )
    if_exists: Literal["resume", "overwrite", "error"] = Field(
        "resume",
        description="When output.path already holds a run: 'resume' continues it (the "
        "same config only; a finished run is left as is), 'overwrite' deletes it and "
        "starts over, 'error' refuses.",
        json_schema_extra=MAY_CHANGE,
    )
    drop_none: bool = Field(
        False,
        description="Drop rows whose output is NONE from the data files (they are then "
        "recorded in _rejected/ with reason none_dropped).",
    )
    max_rows_per_file: int = Field(
        100_000, ge=1, description="Upper bound on rows in one output Parquet file."
    )
    min_rows_per_file: int = Field(
        20_000,
        ge=1,
        description="Rows gathered before a write task commits a file (the last file of "
        "a run may be smaller). Larger means fewer files; a crash re-generates at most "
        "this many rows per write in flight.",
        json_schema_extra=MAY_CHANGE,
    )
    lease_ttl_s: float = Field(
        120.0,
        gt=0,
        description="A running job holds output.path through a lease (_lease.json) that "
        "it renews every quarter of this; another job on the same path is refused while "
        "the lease is live. A job whose driver died is taken over once its lease expires "
        "(at once from the same host).",
        json_schema_extra=MAY_CHANGE,
    )
    compression: Literal["zstd", "snappy", "gzip", "none"] = Field(
        "zstd", description="Parquet compression codec."
    )


class ModelConfig(_Section):
    name: str = Field(
        DEFAULT_MODEL,
        description="Hub id, local folder, or object-store folder (s3://..., gs://...) of the "
        "model. From object storage, each node copies it once to model.cache_dir and loads "
        "it from there.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    tokenizer: str | None = Field(
        None, description="Tokenizer hub id or folder. Default: the model's own."
    )
    trust_remote_code: bool = Field(
        False, description="Allow model code from the hub. The model needs none."
    )
    cache_dir: str | None = Field(
        None,
        description="Node-local folder for models staged from object storage. null: "
        "$QCRAFT_MODEL_CACHE, else ~/.cache/qcraft/models. Needs room for the model (3.4 GB "
        "for the 1.7B model in bf16).",
        json_schema_extra=MAY_CHANGE,
    )


class PassageConfig(_Section):
    max_chars: int | None = Field(
        10_000,
        ge=1,
        description="Truncate each document to this many characters before counting "
        "tokens, as the model's training data was. The cut-off tail is recorded in "
        "_rejected/ with reason 'truncated'. null keeps whole documents.",
    )
    min_tokens: int = Field(70, ge=1, description="Fewest Qwen3 tokens a passage may have.")
    max_tokens: int = Field(700, ge=1, description="Most Qwen3 tokens a passage may have.")
    max_tokens_by_language: dict[str, int] = Field(
        default_factory=lambda: {"greek": 2000},
        description="Per-language max_tokens. Greek defaults to 2000: byte-level fallback "
        "makes Greek text about 3x longer in Qwen3 tokens than Latin-script text of the "
        "same length (measured on the bundled sample).",
    )

    @field_validator("max_tokens_by_language")
    @classmethod
    def _check_langs(cls, v: dict[str, int]) -> dict[str, int]:
        return {normalize_language(k): int(n) for k, n in v.items()}

    @model_validator(mode="after")
    def _check_bounds(self) -> PassageConfig:
        for lang, upper in {"*": self.max_tokens, **self.max_tokens_by_language}.items():
            if upper < 2 * self.min_tokens:
                raise ValueError(
                    f"passages: max_tokens for {lang} ({upper}) must be at least twice "
                    f"min_tokens ({self.min_tokens}) so long documents can be chunked"
                )
        return self

    def max_tokens_for(self, language: str) -> int:
        return self.max_tokens_by_language.get(language, self.max_tokens)


class EngineConfig(_Section):
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
    enforce_eager: bool = Field(False, description="Disable CUDA graphs.")
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


_RANGE_RE = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+)\s*$")


class GenerationConfig(_Section):
    types: list[str] = Field(
        default_factory=lambda: ["query"],
        min_length=1,
        description="Output types to generate per passage: query, alt_query, keywords, "
        "synonym_keywords, title, faq, summary.",
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
    batch_size: int = Field(
        256, ge=1, description="Prompts per engine call.", json_schema_extra=MAY_CHANGE
    )
    batches_in_flight: int = Field(
        4,
        ge=1,
        description="Batches queued per replica so it never waits for the next.",
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
        description="An engine call running longer than this is hung (a stuck accelerator "
        "call never returns): its replica is ended, Ray restarts it and retries the batch, "
        "and a row that hangs every time becomes an error row after "
        "max_replica_deaths_per_row. Keep it well above one batch's time (seconds on a "
        "GPU, up to minutes on CPU).",
        json_schema_extra=MAY_CHANGE,
    )
    max_new_tokens: int = Field(128, ge=1, description="Most tokens generated per output.")
    temperature: float = Field(0.0, ge=0, description="0 is greedy (the model card's setting).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (temperature > 0).")
    seed: int | None = Field(0, description="Sampling seed (temperature > 0).")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="vLLM engine.")

    @field_validator("types")
    @classmethod
    def _check_types(cls, v: list[str]) -> list[str]:
        out = [normalize_type(t) for t in v]
        if len(set(out)) != len(out):
            raise ValueError(f"generation.types has duplicates: {v}")
        return out

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


def _replica_range(v: int | str) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    if str(v).strip().isdigit():
        return int(v), int(v)
    m = _RANGE_RE.match(str(v))
    if not m:
        raise ValueError(f"generation.replicas must be a number or 'MIN..MAX'; got {v!r}")
    return int(m.group(1)), int(m.group(2))


class RayConfig(_Section):
    address: str | None = Field(
        None, description="Cluster to join. Default: RAY_ADDRESS, else a local instance."
    )
    local_num_cpus: int | None = Field(
        None, description="Logical CPUs of a local instance. null: the machine's cores."
    )
    local_num_gpus: int | None = Field(None, description="GPUs of a local instance.")
    read_cpus: float = Field(1, gt=0, description="CPUs per read task.")
    passage_cpus: float = Field(1, gt=0, description="CPUs per tokenize/chunk task.")
    write_cpus: float = Field(1, gt=0, description="CPUs per write task.")


class EstimateConfig(_Section):
    prompts_per_gpu_second: float = Field(
        150.0,
        gt=0,
        description="ESTIMATE used by `qcraft plan` for GPU-hours: prompts one GPU "
        "generates per second. Default: an H100 with the 1.7B model in bf16, ~550-token "
        "prompts, ~20-token outputs (prefill-bound: 2 x 1.7 GFLOP per token at ~40% of "
        "the H100's dense bf16 peak). Not measured here (no GPU); override with yours.",
    )
    output_tokens_per_prompt: float = Field(
        20.0, gt=0, description="ESTIMATE of generated tokens per prompt (outputs are short)."
    )


class ScoreConfig(_Section):
    enabled: bool = Field(
        False,
        description="Score each ok output's faithfulness to its "
        "passage (cosine similarity of their embeddings) in a 'score' column.",
    )
    model: str = Field(
        "BAAI/bge-m3", description="Any sentence-transformers model: hub id or local folder."
    )
    trust_remote_code: bool = Field(False, description="Allow the embedding model's own code.")
    device: str | None = Field(
        None, description="torch device ('cuda', 'cpu'); null: auto.", json_schema_extra=MAY_CHANGE
    )
    replicas: int = Field(
        1,
        ge=1,
        description="Scorer actors (each loads the model once).",
        json_schema_extra=MAY_CHANGE,
    )
    gpus_per_replica: float = Field(
        0, ge=0, description="GPUs per scorer actor.", json_schema_extra=MAY_CHANGE
    )
    cpus_per_replica: float = Field(
        1, gt=0, description="CPUs per scorer actor.", json_schema_extra=MAY_CHANGE
    )
    batch_size: int = Field(
        64, ge=1, description="Texts per embedding batch.", json_schema_extra=MAY_CHANGE
    )
    min_score: float | None = Field(
        None,
        description="Outputs scored below this become rejected rows with reason "
        "'low_score' (Doc2Query-- style). null keeps every output.",
    )
    min_percentile: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Also reject, as 'low_score', outputs below this percentile of their "
        "language's scores (computed once every output is scored; saved in "
        "_thresholds.json). null: no percentile filter.",
    )


class ReportConfig(_Section):
    progress_interval_s: float = Field(
        30.0, gt=0, description="Seconds between two progress lines in the log."
    )


class RunConfig(_Section):
    input: InputConfig
    output: OutputConfig
    model: ModelConfig = Field(default_factory=ModelConfig, description="The model.")
    passages: PassageConfig = Field(default_factory=PassageConfig, description="Passages.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig, description="")
    storage: StorageConfig = Field(
        default_factory=StorageConfig, description="Storage.", json_schema_extra=MAY_CHANGE
    )
    ray: RayConfig = Field(
        default_factory=RayConfig, description="Ray resources.", json_schema_extra=MAY_CHANGE
    )
    estimate: EstimateConfig = Field(
        default_factory=EstimateConfig, description="Plan.", json_schema_extra=MAY_CHANGE
    )
    report: ReportConfig = Field(
        default_factory=ReportConfig, description="Progress, report.", json_schema_extra=MAY_CHANGE
    )
    score: ScoreConfig = Field(default_factory=ScoreConfig, description="Faithfulness scoring.")

    @model_validator(mode="after")
    def _check_lengths(self) -> RunConfig:
        longest = max([self.passages.max_tokens, *self.passages.max_tokens_by_language.values()])
        need = longest + 64 + self.generation.max_new_tokens  # 64: chat template overhead
        if self.generation.engine.max_model_len < need:
            raise ValueError(
                f"generation.engine.max_model_len ({self.generation.engine.max_model_len}) "
                f"is below the longest prompt plus output ({need} = {longest} passage tokens "
                f"+ 64 template + {self.generation.max_new_tokens} new tokens)"
            )
        return self
