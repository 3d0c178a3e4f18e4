"""Loading the model's own tokenizer (Qwen3), once per worker process."""

from __future__ import annotations

import functools
from typing import Any

from qcraft_ray.config import ModelConfig


@functools.lru_cache(maxsize=4)
def _load(name: str, revision: str | None, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        name, revision=revision, trust_remote_code=trust_remote_code
    )


def load_tokenizer(model: ModelConfig) -> Any:
    """The transformers tokenizer of ``model`` (its ``tokenizer`` override if set).

    Cached per process: Ray reuses worker processes across tasks, so each worker parses
    the 11 MB tokenizer.json once, not once per block.
    """
    return _load(model.tokenizer or model.name, model.revision, model.trust_remote_code)


def encode(tokenizer: Any, texts: list[str]) -> list[Any]:
    """One batched pass of the fast (Rust) tokenizer, no special tokens added.

    Each result has ``.ids`` and ``.offsets`` (character offsets per token).
    """
    if not texts:
        return []
    return tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)


def count_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    """Qwen3 token counts of ``texts`` (no special tokens)."""
    return [len(enc.ids) for enc in encode(tokenizer, texts)]
