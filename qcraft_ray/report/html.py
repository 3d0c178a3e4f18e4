"""The run report as one self-contained HTML page (inline SVG, no scripts, no network)
and as a plain-text table for the terminal.

Every number drawn is also in the page as ``data-chart``/``data-label``/``data-value``
attributes, so a test (or a user's script) can read the values a chart shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from qcraft_ray import schema as S
from qcraft_ray.report.model import RunReport
from qcraft_ray.report.summary import Summary

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;
text-align:right}th:first-child,td:first-child{text-align:left}.muted{color:#777}
.grid{display:flex;flex-wrap:wrap;gap:24px}svg text{font:12px system-ui,sans-serif}
"""
_STATUS_COLORS = {
    S.STATUS_OK: "#4c78a8",
    S.STATUS_NONE: "#f58518",
    S.STATUS_EMPTY: "#b279a2",
    S.STATUS_ERROR: "#e45756",
}


def bar_chart(
    chart: str,
    title: str,
    items: Sequence[tuple[str, float]],
    fmt: str = "{:,.0f}",
    color: str = "#4c78a8",
) -> str:
    """A horizontal bar chart as inline SVG."""
    if not items:
        return ""
    top = max((v for _, v in items), default=0) or 1
    row, label_w, bar_w = 18, 170, 320
    height = row * len(items) + 28
    parts = [
        f'<svg role="img" width="{label_w + bar_w + 90}" height="{height}" '
        f'data-chart="{escape(chart)}"><text x="0" y="14" font-weight="bold">'
        f"{escape(title)}</text>"
    ]
    for i, (label, value) in enumerate(items):
        y = 24 + i * row
        w = max(1.0, bar_w * value / top) if value else 0
        parts.append(
            f'<g data-label="{escape(str(label))}" data-value="{value}">'
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(str(label))}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" '
            f'fill="{color}"/><text x="{label_w + w + 4:.1f}" y="{y + 12}">'
            f"{escape(fmt.format(value))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list[Any]], table: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        f'<tr data-row="{escape(str(r[0]))}">'
        + "".join(
            f'<td data-col="{escape(h)}">{escape(str(v))}</td>'
            for h, v in zip(header, r, strict=True)
        )
        + "</tr>"
        for r in rows
    )
    return f'<table data-table="{table}"><tr>{head}</tr>{body}</table>'


def language_rows(summary: Summary) -> list[list[Any]]:
    rows = []
    for lang, rate in summary.language_rates.items():
        per_status = summary.statuses_of(lang)
        rows.append(
            [
                lang,
                rate.rows,
                *(per_status.get(s, 0) for s in S.OUTPUT_STATUSES),
                f"{rate.none_rate:.2%}",
                f"{rate.empty_rate:.2%}",
            ]
        )
    return rows


LANGUAGE_HEADER = ["language", "rows", *S.OUTPUT_STATUSES, "NONE rate", "empty rate"]


def render_text(summary: Summary, run: RunReport) -> str:
    """The summary as aligned plain-text tables."""
    lines = [
        f"run {run.run_id}: {run.status}, {run.input.documents} documents, "
        f"{summary.rows:,} rows, {summary.passages:,} passages, {run.wall_seconds} s",
        "",
    ]
    rows = [LANGUAGE_HEADER] + [[str(v) for v in r] for r in language_rows(summary)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(LANGUAGE_HEADER))]
    for r in rows:
        lines.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    if summary.rejected:
        lines += ["", "rejected: " + ", ".join(f"{k} {v:,}" for k, v in summary.rejected.items())]
    if summary.scores:
        lines += [
            "",
            "mean score: " + ", ".join(f"{k} {v.mean:.3f}" for k, v in summary.scores.items()),
        ]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _quality(run: RunReport) -> list[str]:
    """The quality tables: per language (NONE, wrong language, score) and per type
    (NONE, copies, score)."""
    q = run.quality
    if not q.by_language and not q.by_type:
        return []
    return [
        "<h2>Quality</h2>",
        _table(
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
        _table(
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
    ]


def render_html(summary: Summary, run: RunReport) -> str:
    """The whole page."""
    lt = summary.by_language_type
    totals = [(k, sum(v.values())) for k, v in lt.items()]
    sections = [
        f"<h1>qcraft run report</h1><p>run <b>{escape(run.run_id)}</b> · status "
        f'<b data-value="{escape(run.status)}">{escape(run.status)}'
        f"</b> · {escape(summary.path)}</p>",
        _table(
            ["documents", "rows", "passages", "rejected", "wall seconds"],
            [
                [
                    run.input.documents,
                    summary.rows,
                    summary.passages,
                    sum(summary.rejected.values()),
                    run.wall_seconds,
                ]
            ],
            "totals",
        ),
        "<h2>Per language</h2>",
        _table(LANGUAGE_HEADER, language_rows(summary), "languages"),
        "<h2>Outputs per language and type</h2>",
        '<div class="grid">',
        bar_chart("outputs", "rows per language/type", totals),
    ]
    for status in S.OUTPUT_STATUSES:
        items = [(k, v.get(status, 0)) for k, v in lt.items() if v.get(status)]
        sections.append(
            bar_chart(f"status:{status}", f"status {status}", items, color=_STATUS_COLORS[status])
        )
    rates = summary.language_rates
    sections += [
        "</div><h2>NONE and empty rates per language</h2>",
        '<div class="grid">',
        bar_chart(
            "none_rate",
            "NONE rate",
            [(k, v.none_rate) for k, v in rates.items()],
            "{:.1%}",
            _STATUS_COLORS[S.STATUS_NONE],
        ),
        bar_chart(
            "empty_rate",
            "empty rate",
            [(k, v.empty_rate) for k, v in rates.items()],
            "{:.1%}",
            _STATUS_COLORS[S.STATUS_EMPTY],
        ),
        "</div><h2>Lengths</h2>",
        '<div class="grid">',
        bar_chart(
            "passage_tokens", "passage tokens", list(summary.passage_tokens_histogram.items())
        ),
    ]
    for type_, hist in summary.output_tokens_histogram.items():
        sections.append(
            bar_chart(f"output_tokens:{type_}", f"output tokens, {type_}", list(hist.items()))
        )
    sections.append("</div>")
    sections += _quality(run)
    if summary.rejected:
        sections += [
            "<h2>Rejected rows by reason</h2>",
            bar_chart("rejected", "rejected", list(summary.rejected.items()), color="#999"),
        ]
    if summary.scores:
        sections += [
            "<h2>Faithfulness scores</h2>",
            _table(
                ["language/type", "scored", "mean"],
                [[k, v.n, f"{v.mean:.4f}"] for k, v in summary.scores.items()],
                "scores",
            ),
            '<div class="grid">',
        ]
        sections += [
            bar_chart(f"score:{k}", f"score, {k}", list(v.histogram.items()))
            for k, v in summary.scores.items()
        ]
        sections.append("</div>")
    stages = run.stage_seconds
    if stages:
        sections += [
            "<h2>Time per stage (summed over tasks)</h2>",
            bar_chart("stage_seconds", "seconds", list(stages.items()), "{:,.1f}"),
        ]
    versions = run.versions
    sections.append(
        '<p class="muted">'
        + escape(", ".join(f"{k} {v}" for k, v in versions.items() if v))
        + "</p>"
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>qcraft report</title>'
        f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )
