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


def is_stable_split(text: str, pos: int) -> bool:
    """True when Qwen's pre-tokenizer splits ``text`` at ``pos`` exactly as it splits
    ``text[:pos]`` and ``text[pos:]`` on their own, so token ids can be spliced there.

    Holds when a letter or digit ends the left side and the right side starts with one
    character that is neither a letter, digit nor newline (a space, a mark, punctuation),
    followed by a letter: Qwen's pattern ``[^\\r\\n\\p{L}\\p{N}]?\\p{L}+`` then starts a
    new pre-token at ``pos`` in both cases, and no pattern can carry the left pre-token
    past a letter/digit into that character.
    """
    if pos <= 0 or pos + 1 >= len(text):
        return False
    prev, c, nxt = text[pos - 1], text[pos], text[pos + 1]
    if not prev.isalnum() or not nxt.isalpha() or c in "\r\n" or c.isalnum():
        return False
    return c == " " or not c.isspace()


def span_token_ids(text: str, ids: list[int], starts: list[int], start: int, end: int,
                   reach: int = 48
                   ) -> tuple[tuple[int, int], list[int], tuple[int, int]] | None:
    """Reuse a whole-text encoding (its token ``ids`` and each token's ``starts``
    character offset) for ``text[start:end]``.

    Returns ``(left_edge, middle_ids, right_edge)``: the middle ids come from ``ids``
    between two stable split points found within ``reach`` tokens of each end; only the
    two short edges (character ranges) still need encoding. ``None`` when no stable split
    points are near the ends (then encode the whole span). Callers pass the lists built
    once per document: each access to ``Encoding.ids`` or ``.offsets`` builds a new one.
    """
    import bisect

    first = bisect.bisect_left(starts, start)
    last = bisect.bisect_left(starts, end)
    left = next((k for k in range(first + 1, min(first + reach, last))
                 if starts[k] != starts[k - 1] and is_stable_split(text, starts[k])), None)
    right = next((k for k in range(last - 1, max(last - reach, first), -1)
                  if starts[k] != starts[k - 1] and is_stable_split(text, starts[k])), None)
    if left is None or right is None or right <= left:
        return None
    return (start, starts[left]), ids[left:right], (starts[right], end)
