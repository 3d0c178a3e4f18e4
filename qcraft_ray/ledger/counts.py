"""Counters by reason, language and type: what each write task commits in its manifest.

Write tasks count the rows they write (:func:`count_rows`); the driver adds the counters
of every accepted manifest (:meth:`RowCounts.merge`). Everything the run report and
``qcraft report`` show comes from these sums, so no pass ever re-reads the data files to
count them. A document is counted on the one row marked ``counts_document``, a passage
on the one row marked ``counts_passage`` (see :mod:`qcraft_ray.schema`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import pyarrow as pa

from qcraft_ray import schema as S

# The columns count_rows reads; `qcraft plan` projects to these before counting.
COUNTED_COLUMNS = [
    S.STATUS,
    S.REASON,
    S.LANGUAGE,
    S.SOURCE_LANGUAGE,
    S.TYPE,
    S.PROMPT_TOKENS,
    S.OUTPUT_TOKENS,
    S.PASSAGE_TOKENS,
    S.REPLICA,
    S.SCORE,
    S.COUNTS_DOCUMENT,
    S.COUNTS_PASSAGE,
    S.DETECTED_LANGUAGE,
    S.WRONG_LANGUAGE,
    S.COPIED,
    S.COPY_SHARE,
]

OUTPUT_TOKEN_BINS = (0, 1, 5, 10, 20, 40, 80, 160)
PASSAGE_TOKEN_BINS = (0, 70, 100, 200, 300, 400, 500, 600, 700, 1000, 2000)
SCORE_BINS = tuple(round(-0.2 + 0.1 * i, 1) for i in range(13))  # -0.2 .. 1.0

Nested = dict[str, Any]


def bin_label(value: float, edges: tuple) -> str:
    """The histogram bin of ``value``: 'a-b' for [a, b), '>=last' or '<first'."""
    for lo, hi in zip(edges, edges[1:], strict=False):
        if lo <= value < hi:
            return f"{lo}-{hi}"
    return f">={edges[-1]}" if value >= edges[-1] else f"<{edges[0]}"


def bin_labels(edges: tuple) -> list[str]:
    """Every bin label of ``edges``, in order."""
    return [
        f"<{edges[0]}",
        *(f"{a}-{b}" for a, b in zip(edges, edges[1:], strict=False)),
        f">={edges[-1]}",
    ]


@dataclass
class RowCounts:
    """Rows counted by outcome. An outcome is a status for rows in the data files and a
    reason for rejected rows. Score sums are ``{"sum": s, "n": n}``."""

    documents: int = 0
    passages: int = 0  # passages generated for (or written, in passages mode)
    outputs: dict[str, int] = field(default_factory=dict)  # status -> rows
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> rows
    by_language: dict[str, dict[str, int]] = field(default_factory=dict)
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    by_language_type: dict[str, dict[str, int]] = field(default_factory=dict)  # outputs
    by_replica: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    output_tokens: int = 0
    # every scored row, kept or rejected: {"by_language": {lang: sums}, "by_type": ...}
    score_sums: dict[str, dict[str, dict[str, float]]] = field(
        default_factory=lambda: {"by_language": {}, "by_type": {}}
    )
    # scored rows in the data files, per "language/type": sums and a histogram
    output_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    score_histogram: dict[str, dict[str, int]] = field(default_factory=dict)
    output_tokens_histogram: dict[str, dict[str, int]] = field(default_factory=dict)
    passage_tokens_histogram: dict[str, int] = field(default_factory=dict)
    # quality signals of ok outputs (kept or rejected for them)
    language_checked: dict[str, int] = field(default_factory=dict)  # language -> identified
    wrong_language: dict[str, int] = field(default_factory=dict)  # language -> flagged
    copy_checked: dict[str, int] = field(default_factory=dict)  # type -> checked
    copied: dict[str, int] = field(default_factory=dict)  # type -> verbatim spans
    copy_share_sums: dict[str, dict[str, float]] = field(default_factory=dict)  # type -> sums
    # the same signals per "language/type": language_checked, wrong_language,
    # copy_checked, copied -> rows
    signals_by_language_type: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for group in ("by_language", "by_type"):
            self.score_sums.setdefault(group, {})

    def to_json(self) -> Nested:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Nested) -> RowCounts:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def merge(cls, parts: Iterable[RowCounts]) -> RowCounts:
        total = cls()
        for part in parts:
            total.add(part)
        return total

    def add(self, other: RowCounts) -> None:
        """Add ``other``'s counts into these, in place (``other`` is not changed): the
        cost of ``other``'s size, however large these have grown."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(theirs, dict):
                _add_into(mine, theirs)
            else:
                setattr(self, f.name, mine + theirs)

    def plus(self, other: RowCounts) -> RowCounts:
        return RowCounts.from_json(_combine(self.to_json(), other.to_json(), 1))

    def minus(self, other: RowCounts) -> RowCounts:
        """These counts without ``other``'s rows (entries that reach zero go)."""
        diff = _combine(self.to_json(), other.to_json(), -1)
        return RowCounts.from_json({k: _prune(v) for k, v in diff.items()})

    def mean_scores(self) -> dict[str, dict[str, float]]:
        """Mean score per language and per type, over every scored row."""
        return {
            group: {k: round(v["sum"] / v["n"], 4) for k, v in sorted(sums.items()) if v["n"]}
            for group, sums in self.score_sums.items()
        }


def _add_into(acc: dict, other: dict) -> None:
    for k, v in other.items():
        if isinstance(v, dict):
            _add_into(acc.setdefault(k, {}), v)
        else:
            acc[k] = acc.get(k, 0) + v


def _combine(a: Any, b: Any, sign: int) -> Any:
    if isinstance(b, dict):
        out = dict(a) if isinstance(a, dict) else {}
        for k, v in b.items():
            out[k] = _combine(out.get(k), v, sign)
        return out
    return (a or 0) + sign * b


def _prune(value: Any) -> Any:
    """Drop zero counts, emptied score accumulators and empty groups, at any depth."""
    if not isinstance(value, dict) or "n" in value:
        return value
    out = {}
    for k, v in value.items():
        v = _prune(v)
        if isinstance(v, dict) and ("n" in v and not v["n"] or not v):
            continue
        if not isinstance(v, dict) and not v:
            continue
        out[k] = v
    return out


def _add_score(acc: dict[str, dict[str, float]], key: str, score: float) -> None:
    sums = acc.setdefault(key, {"sum": 0.0, "n": 0})
    sums["sum"] += score
    sums["n"] += 1


def count_rows(table: pa.Table) -> RowCounts:
    """Counters for one table of stream rows (output and rejected rows together)."""
    c = RowCounts()
    outputs: Counter = Counter()
    rejected: Counter = Counter()
    by_replica: Counter = Counter()
    passage_hist: Counter = Counter()
    cols = [col for col in COUNTED_COLUMNS if col in table.column_names]
    for r in table.select(cols).to_pylist():
        status, type_ = r[S.STATUS], r.get(S.TYPE)
        is_rejected = status == S.STATUS_REJECTED
        outcome = r[S.REASON] if is_rejected else status
        (rejected if is_rejected else outputs)[outcome] += 1
        lang = r[S.LANGUAGE] or f"unsupported:{r.get(S.SOURCE_LANGUAGE)}"
        _bump(c.by_language, lang, outcome)
        if type_ is not None:
            _bump(c.by_type, type_, outcome)
        if r.get(S.COUNTS_DOCUMENT):
            c.documents += 1
        if r.get(S.COUNTS_PASSAGE):
            c.passages += 1
            passage_hist[bin_label(r.get(S.PASSAGE_TOKENS) or 0, PASSAGE_TOKEN_BINS)] += 1
        if r.get(S.REPLICA) is not None:
            by_replica[r[S.REPLICA]] += 1
        score = r.get(S.SCORE)
        if score is not None:
            _add_score(c.score_sums["by_language"], lang, score)
            _add_score(c.score_sums["by_type"], type_, score)
        _count_quality(c, r, lang, type_)
        if is_rejected:
            continue
        c.prompt_tokens += r.get(S.PROMPT_TOKENS) or 0
        c.output_tokens += r.get(S.OUTPUT_TOKENS) or 0
        if type_ is None:
            continue
        lang_type = f"{lang}/{type_}"
        _bump(c.by_language_type, lang_type, status)
        if status != S.STATUS_ERROR:
            _bump(
                c.output_tokens_histogram,
                type_,
                bin_label(r.get(S.OUTPUT_TOKENS) or 0, OUTPUT_TOKEN_BINS),
            )
        if score is not None:
            _add_score(c.output_scores, lang_type, score)
            _bump(c.score_histogram, lang_type, bin_label(score, SCORE_BINS))
    c.outputs, c.rejected = dict(outputs), dict(rejected)
    c.by_replica, c.passage_tokens_histogram = dict(by_replica), dict(passage_hist)
    return c


def _count_quality(c: RowCounts, r: dict[str, Any], lang: str, type_: str | None) -> None:
    """The language and copy signals of one row (set on checked ok outputs only)."""
    signals: dict[str, int] = {}
    if r.get(S.WRONG_LANGUAGE) is not None:
        c.language_checked[lang] = c.language_checked.get(lang, 0) + 1
        signals["language_checked"] = 1
        if r[S.WRONG_LANGUAGE]:
            c.wrong_language[lang] = c.wrong_language.get(lang, 0) + 1
            signals["wrong_language"] = 1
    if r.get(S.COPIED) is not None and type_ is not None:
        c.copy_checked[type_] = c.copy_checked.get(type_, 0) + 1
        signals["copy_checked"] = 1
        if r[S.COPIED]:
            c.copied[type_] = c.copied.get(type_, 0) + 1
            signals["copied"] = 1
        _add_score(c.copy_share_sums, type_, r.get(S.COPY_SHARE) or 0.0)
    if signals and type_ is not None:
        _add_into(c.signals_by_language_type, {f"{lang}/{type_}": signals})


def _bump(table: dict[str, dict[str, int]], key: str, outcome: str) -> None:
    row = table.setdefault(key, {})
    row[outcome] = row.get(outcome, 0) + 1
