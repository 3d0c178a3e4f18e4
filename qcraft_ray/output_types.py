"""The model's seven output types (the ``type`` value of its system message)."""

from __future__ import annotations

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
