"""The report page's quality tables and examples; all data shown as inert text."""

from __future__ import annotations

from html import escape

from qcraft_ray.report.examples import inert
from qcraft_ray.report.model import RunReport
from qcraft_ray.report.page_parts import table


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def quality_tables(run: RunReport) -> list[str]:
    """The quality tables: per language (NONE, wrong language, score) and per type
    (NONE, copies, score)."""
    q = run.quality
    if not q.by_language and not q.by_type:
        return []
    return [
        "<h2>Quality</h2>",
        table(
            [
                "language",
                "rows",
                "ok",
                "NONE rate",
                "checked",
                "wrong language",
                "wrong-language rate",
                "mean score",
            ],
            [
                [
                    k,
                    v.rows,
                    v.ok,
                    _pct(v.none_rate),
                    v.checked,
                    v.wrong_language,
                    _pct(v.wrong_language_rate),
                    _num(v.mean_score),
                ]
                for k, v in q.by_language.items()
            ],
            "quality_languages",
        ),
        table(
            [
                "type",
                "rows",
                "ok",
                "NONE rate",
                "copy checked",
                "copied",
                "copied rate",
                "mean copy share",
                "mean score",
            ],
            [
                [
                    k,
                    v.rows,
                    v.ok,
                    _pct(v.none_rate),
                    v.copy_checked,
                    v.copied,
                    _pct(v.copied_rate),
                    _num(v.mean_copy_share),
                    _num(v.mean_score),
                ]
                for k, v in q.by_type.items()
            ],
            "quality_types",
        ),
    ] + (
        [
            table(
                ["language/type", "distinct samples"],
                [[k, _pct(v)] for k, v in q.distinct_ratio.items()],
                "distinct_ratio",
            )
        ]
        if q.distinct_ratio
        else []
    )


_KIND_TITLES = {
    "lowest_score": "lowest scores",
    "none": "NONE answers",
    "wrong_language": "wrong language",
    "sample": "outputs",
}


def _text(value: str) -> str:
    """Data as inert text: escaped, and bidi or control characters shown as code points."""
    return escape(inert(value))


def example_tables(run: RunReport) -> list[str]:
    """Per language, the examples picked for a look, text escaped and made inert."""
    if not run.examples:
        return []
    parts = ["<h2>Examples</h2>"]
    for lang, by_kind in run.examples.items():
        rows = []
        for kind, examples in by_kind.items():
            for e in examples:
                score = "" if e.score is None else f"{e.score:.4f}"
                found = f" (found {_text(e.detected_language)})" if e.detected_language else ""
                rows.append(
                    f'<tr data-example="{escape(kind)}"><td>{escape(_KIND_TITLES[kind])}</td>'
                    f"<td>{_text(e.type)}</td><td>{score}</td>"
                    f'<td class="text"><bdi>{_text(e.output)}</bdi>{found}</td>'
                    f'<td class="text muted"><bdi>{_text(e.passage)}</bdi></td></tr>'
                )
        parts.append(
            f"<h3>{_text(lang)}</h3>"
            f'<table class="examples" data-examples="{escape(lang)}">'
            "<tr><th>kind</th><th>type</th><th>score</th><th>output</th>"
            "<th>passage</th></tr>" + "".join(rows) + "</table>"
        )
    return parts
