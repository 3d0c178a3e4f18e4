"""Language x type grids of the measures that matter, for the report page's heatmaps.

Built from the merged counters (no data file is read). One :class:`Grid` per measure:
outputs, NONE rate, wrong-language rate, copy rate and mean score; a measure nothing
was counted for (language id off, no scoring) has no grid. Languages are sorted so the
worst stand out first: by the language's overall rate (highest first; lowest first for
the mean score), by outputs for the outputs grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from qcraft_ray import schema as S
from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.report.quality import output_rows

Cells = dict[str, dict[str, float | None]]  # language -> type -> value (None: no data)


@dataclass(frozen=True)
class Grid:
    measure: str  # the figure's name: rows, none_rate, wrong_language_rate, copy_rate, ...
    title: str
    languages: list[str]  # in display order, worst first
    types: list[str]
    cells: Cells
    fmt: str  # format of a cell's value
    worse: Literal["high", "low"]  # which end of the scale is the bad one


def _split(key: str) -> tuple[str, str]:
    lang, _, type_ = key.rpartition("/")  # a type never holds a slash
    return lang, type_


def _ratio(
    table: dict[str, dict[str, int]],
    num: Callable[[dict[str, int]], float],
    den: Callable[[dict[str, int]], float],
) -> tuple[Cells, dict[str, float | None]]:
    """Per cell and per language (over its types): sum(num) / sum(den)."""
    cells: Cells = {}
    sums: dict[str, list[float]] = {}
    for key, values in table.items():
        lang, type_ = _split(key)
        n, d = num(values), den(values)
        cells.setdefault(lang, {})[type_] = round(n / d, 4) if d else None
        acc = sums.setdefault(lang, [0.0, 0.0])
        acc[0], acc[1] = acc[0] + n, acc[1] + d
    overall = {lang: (n / d if d else None) for lang, (n, d) in sums.items()}
    return cells, overall


def _order(overall: dict[str, float | None], worst_high: bool) -> list[str]:
    known = [k for k, v in overall.items() if v is not None]
    unknown = sorted(k for k, v in overall.items() if v is None)
    ranked = sorted(known, key=lambda k: (-(overall[k] or 0) if worst_high else overall[k] or 0, k))
    return ranked + unknown


def grids(counts: RowCounts, types: Sequence[str] = ()) -> list[Grid]:
    """The grids of ``counts``; ``types``: the column order (the run's types), any other
    type counted after them."""
    lt = counts.by_language_type
    seen = sorted({_split(k)[1] for k in lt})
    columns = [t for t in types if t in seen] + [t for t in seen if t not in types]
    out: list[Grid] = []

    def add(measure: str, title: str, cells: Cells, overall: dict, fmt: str, worse: str) -> None:
        out.append(
            Grid(measure, title, _order(overall, worse == "high"), columns, cells, fmt,
                 "high" if worse == "high" else "low")
        )  # fmt: skip

    if not lt:
        return out
    rows, _ = _ratio(lt, output_rows, lambda _: 1)
    add("rows", "outputs", rows, {k: sum(v or 0 for v in c.values()) for k, c in rows.items()},
        "{:,.0f}", "high")  # fmt: skip
    none, overall = _ratio(lt, lambda v: v.get(S.STATUS_NONE, 0), output_rows)
    add("none_rate", "NONE rate", none, overall, "{:.1%}", "high")
    signals = counts.signals_by_language_type
    if any(v.get("language_checked") for v in signals.values()):
        wrong, overall = _ratio(
            signals, lambda v: v.get("wrong_language", 0), lambda v: v.get("language_checked", 0)
        )
        add("wrong_language_rate", "wrong-language rate", wrong, overall, "{:.1%}", "high")
    if any(v.get("copy_checked") for v in signals.values()):
        copied, overall = _ratio(
            signals, lambda v: v.get("copied", 0), lambda v: v.get("copy_checked", 0)
        )
        add("copy_rate", "copy rate", copied, overall, "{:.1%}", "high")
    scores = {k: {"sum": v["sum"], "n": v["n"]} for k, v in counts.output_scores.items() if v["n"]}
    if scores:
        mean, overall = _ratio(scores, lambda v: v["sum"], lambda v: v["n"])  # type: ignore[arg-type]
        add("mean_score", "mean score", mean, overall, "{:.3f}", "low")
    return out
