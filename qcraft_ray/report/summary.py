"""What a finished output holds, for ``qcraft report``'s table and HTML page.

Built from the counters committed with the accepted manifests, not by scanning the data
files: outputs per language and type by status, NONE and empty rates
per language, output and passage token histograms, rejections by reason, and score
statistics when outputs were scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from qcraft_ray import schema as S
from qcraft_ray.ledger.counts import (
    OUTPUT_TOKEN_BINS,
    PASSAGE_TOKEN_BINS,
    SCORE_BINS,
    RowCounts,
    bin_labels,
)
from qcraft_ray.report.grid import Grid, grids
from qcraft_ray.report.quality import output_rows, status_rate


@dataclass(frozen=True)
class LanguageRates:
    rows: int
    none_rate: float
    empty_rate: float


@dataclass(frozen=True)
class ScoreStats:
    n: int
    mean: float
    histogram: dict[str, int]


@dataclass(frozen=True)
class Summary:
    path: str
    rows: int  # rows in the data files
    passages: int
    by_language_type: dict[str, dict[str, int]]  # "language/type" -> status -> rows
    language_rates: dict[str, LanguageRates]
    output_tokens_histogram: dict[str, dict[str, int]]  # type -> bin -> rows
    passage_tokens_histogram: dict[str, int]
    rejected: dict[str, int]  # reason -> rows
    scores: dict[str, ScoreStats]  # "language/type" -> scored rows in the data files
    grids: list[Grid] = field(default_factory=list)  # language x type, per measure

    def statuses_of(self, language: str) -> dict[str, int]:
        """Rows per status of one language, over its types."""
        out: dict[str, int] = {}
        for key, counts in self.by_language_type.items():
            if key.rsplit("/", 1)[0] == language:
                for status, n in counts.items():
                    out[status] = out.get(status, 0) + n
        return out


def _ordered(counts: dict[str, int], edges: tuple) -> dict[str, int]:
    return {label: counts[label] for label in bin_labels(edges) if counts.get(label)}


def summarize(path: str, counts: RowCounts, types: Sequence[str] = ()) -> Summary:
    """The summary of an output whose merged counters are ``counts`` (``types``: the
    run's types, in the order the grids show them)."""
    lt = {k: dict(v) for k, v in sorted(counts.by_language_type.items())}
    per_language: dict[str, dict[str, int]] = {}
    for key, statuses in lt.items():
        lang = key.rsplit("/", 1)[0]
        acc = per_language.setdefault(lang, {})
        for status, n in statuses.items():
            acc[status] = acc.get(status, 0) + n
    rates = {}
    for lang, c in sorted(per_language.items()):
        rates[lang] = LanguageRates(
            output_rows(c), status_rate(c, S.STATUS_NONE), status_rate(c, S.STATUS_EMPTY)
        )
    scores = {}
    for key, sums in sorted(counts.output_scores.items()):
        if sums["n"]:
            scores[key] = ScoreStats(
                int(sums["n"]),
                round(sums["sum"] / sums["n"], 4),
                _ordered(counts.score_histogram.get(key, {}), SCORE_BINS),
            )
    return Summary(
        path=path,
        rows=sum(r.rows for r in rates.values()),
        passages=counts.passages,
        by_language_type=lt,
        language_rates=rates,
        output_tokens_histogram={
            t: _ordered(h, OUTPUT_TOKEN_BINS)
            for t, h in sorted(counts.output_tokens_histogram.items())
        },
        passage_tokens_histogram=_ordered(counts.passage_tokens_histogram, PASSAGE_TOKEN_BINS),
        rejected=dict(sorted(counts.rejected.items())),
        scores=scores,
        grids=grids(counts, types),
    )
