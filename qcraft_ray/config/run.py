"""The whole run's config: every section, plus Ray, estimates, scoring, report."""

from __future__ import annotations

from pydantic import Field, model_validator

from qcraft_ray.config.base import MAY_CHANGE, Section
from qcraft_ray.config.data import InputConfig, OutputConfig, StorageConfig
from qcraft_ray.config.generation import GenerationConfig
from qcraft_ray.config.model import ModelConfig, PassageConfig
from qcraft_ray.config.quality import QualityConfig


class RayConfig(Section):
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


class EstimateConfig(Section):
    tokens_per_gpu_second: float = Field(
        155_000.0,
        gt=0,
        description="What `qcraft plan` assumes one GPU processes per second, prompt and "
        "generated tokens together (its engine-hours = the plan's tokens / this rate). "
        "Default: measured on one H200, the 1.7B model's shape in bf16, 576-token prompts "
        "and 24-token outputs, bare vLLM (5,439 prompts in 21.0 s: 3.13M prompt + 0.13M "
        "generated tokens; README, Performance). `qcraft plan --measure N` measures it on "
        "your engine instead.",
    )
    output_tokens_per_prompt: float = Field(
        20.0,
        gt=0,
        description="Generated tokens per prompt `qcraft plan` assumes (the model's outputs "
        "are ~20 tokens); `--measure` uses the measured mean instead.",
    )
    gpu_hour_price: float | None = Field(
        None, ge=0, description="Price of one GPU-hour; `qcraft plan` then gives the cost."
    )


class ScoreConfig(Section):
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


class ReportConfig(Section):
    progress_interval_s: float = Field(
        30.0, gt=0, description="Seconds between two progress lines in the log."
    )
    examples_per_language: int = Field(
        5,
        ge=0,
        description="Examples per language in the report and its page: the lowest-scoring "
        "outputs, NONE answers and wrong-language outputs (plain outputs where a language "
        "has none of these), with a passage excerpt. Picked at the end of the run from "
        "up to 200 data files spread over the output (5 small columns, then the picked "
        "rows' text); 0 skips it. qcraft inspect looks at every file.",
    )


class RunConfig(Section):
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
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Quality checks.")

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
