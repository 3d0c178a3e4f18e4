"""Quality signals of the outputs: their language and how much they copy the passage."""

from __future__ import annotations

from pydantic import Field

from qcraft_ray.config.base import Section


class QualityConfig(Section):
    language_id: bool = Field(
        True,
        description="Identify the language of each ok output (lingua, offline, among the "
        "model's 21 languages; ~3,300 short outputs/s per core, bench/quality.py) into "
        "detected_language, "
        "and flag a sure identification that differs from the language asked for "
        "(wrong_language).",
    )
    language_margin: float = Field(
        2.5,
        gt=1,
        description="How many times likelier than the next language (lingua's confidence "
        "values) an identification must be to count: below it detected_language is null "
        "and the output is not flagged (names, numbers, code and brand words are unsure). "
        "Han-only text is never told apart as Chinese or Japanese.",
    )
    reject_wrong_language: bool = Field(
        False,
        description="Move outputs flagged wrong_language out of the data files into "
        "_rejected/ with reason wrong_language (the identified language in error).",
    )
    copy_check: bool = Field(
        True,
        description="Flag ok outputs that are a verbatim span of their passage (copied; "
        "case and whitespace aside) and give the share of their Qwen3 tokens found in "
        "the passage (copy_share).",
    )
