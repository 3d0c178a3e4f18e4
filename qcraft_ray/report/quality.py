"""The quality of the outputs in one place: statuses, language and copy signals, scores.

Built from the merged counters (no data file is read), per language and per type; in
``_report.json`` under ``quality`` and on the HTML page.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from qcraft_ray import schema as S
from qcraft_ray.ledger.counts import RowCounts


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LanguageQuality(_Part):
    rows: int  # outputs in the data files
    ok: int
    none_rate: float
    checked: int  # ok outputs whose language was identified (or found unsure)
    wrong_language: int  # ... identified surely as another language
    wrong_language_rate: float | None  # wrong_language / checked
    mean_score: float | None  # over every scored output of the language


class TypeQuality(_Part):
    rows: int
    ok: int
    none_rate: float
    copy_checked: int
    copied: int  # verbatim spans of their passage
    copied_rate: float | None
    mean_copy_share: float | None  # share of output tokens found in the passage
    mean_score: float | None


class Quality(_Part):
    by_language: dict[str, LanguageQuality] = {}
    by_type: dict[str, TypeQuality] = {}
    # with several samples a prompt: per "language/type", the share of generated rows
    # that are not a duplicate of an earlier sample of their prompt
    distinct_ratio: dict[str, float] = {}


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _mean(sums: dict[str, float] | None) -> float | None:
    return round(sums["sum"] / sums["n"], 4) if sums and sums.get("n") else None


def output_rows(outcomes: dict[str, int]) -> int:
    """Outputs among ``outcomes`` (status or rejection reason -> rows)."""
    return sum(n for k, n in outcomes.items() if k in S.OUTPUT_STATUSES)


def status_rate(outcomes: dict[str, int], status: str) -> float:
    """The share of the outputs among ``outcomes`` that have ``status`` (0 with none)."""
    return _rate(outcomes.get(status, 0), output_rows(outcomes)) or 0.0


def quality_of(c: RowCounts, samples_per_prompt: int = 1) -> Quality:
    """Per language and per type, from the merged counters ``c``."""
    languages = {}
    for lang, outcomes in sorted(c.by_language.items()):
        rows, ok = output_rows(outcomes), outcomes.get(S.STATUS_OK, 0)
        if not rows and lang not in c.language_checked:
            continue  # only rejected before generation (unsupported, too short...)
        checked, wrong = c.language_checked.get(lang, 0), c.wrong_language.get(lang, 0)
        languages[lang] = LanguageQuality(
            rows=rows,
            ok=ok,
            none_rate=status_rate(outcomes, S.STATUS_NONE),
            checked=checked,
            wrong_language=wrong,
            wrong_language_rate=_rate(wrong, checked),
            mean_score=_mean(c.score_sums["by_language"].get(lang)),
        )
    types = {}
    for type_, outcomes in sorted(c.by_type.items()):
        rows, ok = output_rows(outcomes), outcomes.get(S.STATUS_OK, 0)
        checked, copied = c.copy_checked.get(type_, 0), c.copied.get(type_, 0)
        types[type_] = TypeQuality(
            rows=rows,
            ok=ok,
            none_rate=status_rate(outcomes, S.STATUS_NONE),
            copy_checked=checked,
            copied=copied,
            copied_rate=_rate(copied, checked),
            mean_copy_share=_mean(c.copy_share_sums.get(type_)),
            mean_score=_mean(c.score_sums["by_type"].get(type_)),
        )
    distinct = {}
    if samples_per_prompt > 1:
        for key, statuses in sorted(c.by_language_type.items()):
            rows = sum(statuses.values())
            if rows:
                distinct[key] = round(1 - statuses.get(S.STATUS_DUPLICATE, 0) / rows, 4)
    return Quality(by_language=languages, by_type=types, distinct_ratio=distinct)
