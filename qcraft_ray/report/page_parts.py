"""Building blocks of the report page: inline SVG bar charts and tables, text escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any


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
    row, label_w, bar_w = 18, 170, 290
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


def table(header: list[str], rows: list[list[Any]], name: str) -> str:
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
    return f'<table data-table="{escape(name)}"><tr>{head}</tr>{body}</table>'
