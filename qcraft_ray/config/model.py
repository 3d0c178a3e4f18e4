"""The model and how documents become passages."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from qcraft_ray.config.base import DEFAULT_MODEL, MAY_CHANGE, Section
from qcraft_ray.languages import normalize_language


class ModelConfig(Section):
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


class PassageConfig(Section):
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
