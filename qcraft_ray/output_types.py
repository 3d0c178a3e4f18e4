"""The model's seven output types (the ``type`` value of its system message)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

TYPES: tuple[str, ...] = (
    "query",
    "alt_query",
    "keywords",
    "synonym_keywords",
    "title",
    "faq",
    "summary",
)


def normalize_type(value: str) -> str:
    """Validate an output type as the model card's script does (strip + lowercase)."""
    name = str(value).strip().lower()
    if name not in TYPES:
        raise ValueError(f"unsupported type {value!r}; the model supports: {', '.join(TYPES)}")
    return name


def draw_types(
    doc_id: str,
    chunk_index: int,
    types: Sequence[str],
    k: int,
    weights: Mapping[str, float] | None = None,
    seed: int = 0,
) -> list[str]:
    """``k`` of ``types`` for one passage, without replacement, weighted, from a hash.

    Weighted sampling without replacement by keys (Efraimidis and Spirakis): each type
    gets ``u ** (1 / weight)`` with ``u`` a uniform number hashed from (seed, doc id,
    chunk index, type), and the k largest keys win. The same passage draws the same
    types in any process, run, shard or resume. Returned in ``types``' order."""
    if k >= len(types):
        return list(types)
    keys = {}
    for t in types:
        digest = hashlib.blake2b(
            f"{seed}\x00{doc_id}\x00{chunk_index}\x00{t}".encode(), digest_size=8
        ).digest()
        u = (int.from_bytes(digest, "big") + 1) / (2**64 + 1)  # in (0, 1)
        keys[t] = math.log(u) / (weights or {}).get(t, 1.0)  # log(u ** (1 / w))
    chosen = set(sorted(types, key=lambda t: keys[t], reverse=True)[:k])
    return [t for t in types if t in chosen]
