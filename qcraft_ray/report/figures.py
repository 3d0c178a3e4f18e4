"""The report page's figures as inline SVG: language x type heatmaps, the run over
time, and each replica's start-up. Every value drawn is also an attribute
(``data-label``/``data-value``), and each figure names its kind (``data-figure``), so
tools and tests read what the page shows. All text is escaped."""

from __future__ import annotations

from html import escape

from qcraft_ray.report.grid import Grid
from qcraft_ray.telemetry import ReplicaEngine
from qcraft_ray.timeline import Timeline

_BAD = (214, 39, 40)  # the colour of the worst cell
_MORE = (76, 120, 168)  # the colour of the largest count


def _mix(rgb: tuple[int, int, int], t: float) -> str:
    t = min(max(t, 0.0), 1.0)
    r, g, b = (round(255 + (c - 255) * t) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(grid: Grid) -> str:
    """One grid as a heatmap: languages as rows, types as columns, the value in each
    cell and its colour on the grid's own scale (legend below)."""
    values = [v for c in grid.cells.values() for v in c.values() if v is not None]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    cell_w, cell_h, label_w, head_h = 62, 20, 100, 84
    width = label_w + cell_w * len(grid.types) + 46  # room for the last slanted name
    height = head_h + cell_h * len(grid.languages) + 34
    colour = _MORE if grid.measure == "rows" else _BAD

    def shade(v: float) -> float:
        if hi == lo:
            return 0.5 if v else 0.0
        return (v - lo) / (hi - lo) if grid.worse == "high" else (hi - v) / (hi - lo)

    parts = [
        f'<svg role="img" width="{width}" height="{height}" data-figure="heatmap" '
        f'data-chart="heatmap:{escape(grid.measure)}"><text x="0" y="14" font-weight="bold">'
        f"{escape(grid.title)}</text>"
    ]
    for j, type_ in enumerate(grid.types):
        x = label_w + j * cell_w + cell_w / 2
        short = type_ if len(type_) <= 16 else type_[:15] + "\u2026"
        parts.append(
            f'<text x="{x - 6:.0f}" y="{head_h - 6}" font-size="11" '
            f'transform="rotate(-30 {x - 6:.0f} {head_h - 6})">'
            f"<title>{escape(type_)}</title>{escape(short)}</text>"
        )
    for i, lang in enumerate(grid.languages):
        y = head_h + i * cell_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(lang[:16])}</text>'
        )
        for j, type_ in enumerate(grid.types):
            v = grid.cells.get(lang, {}).get(type_)
            x = label_w + j * cell_w
            if v is None:
                parts.append(
                    f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                    'fill="#f4f4f4"/>'
                )
                continue
            t = shade(v)
            ink = "#fff" if t > 0.6 else "#222"
            parts.append(
                f'<g data-label="{escape(lang)}/{escape(type_)}" data-value="{v}">'
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{_mix(colour, t)}"/><text x="{x + cell_w / 2 - 1:.0f}" y="{y + 14}" '
                f'text-anchor="middle" fill="{ink}" font-size="11">'
                f"{escape(grid.fmt.format(v))}</text></g>"
            )
    y = head_h + cell_h * len(grid.languages) + 8
    low_end, high_end = (lo, hi) if grid.worse == "high" else (hi, lo)
    if hi == lo:
        parts.append(
            f'<text x="{label_w}" y="{y + 10}" font-size="11">every cell '
            f"{escape(grid.fmt.format(lo))}</text>"
        )
    else:
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="14" height="12" fill="{_mix(colour, 0)}" '
            f'stroke="#ccc"/><text x="{label_w + 18}" y="{y + 10}" font-size="11">'
            f"{escape(grid.fmt.format(low_end))}</text>"
            f'<rect x="{label_w + 90}" y="{y}" width="14" height="12" fill="{_mix(colour, 1)}"/>'
            f'<text x="{label_w + 108}" y="{y + 10}" font-size="11">'
            f"{escape(grid.fmt.format(high_end))}"
            f"{' (worst)' if grid.measure != 'rows' else ''}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


_SERIES = (("outputs/s", 1, "#4c78a8"), ("generated tokens/s", 2, "#54a24b"))
_EVENT_COLOURS = {
    "resume": "#9467bd",
    "replica_started": "#bbbbbb",
    "replica_ready": "#54a24b",
    "replica_lost": "#e45756",
    "node_lost": "#d62728",
}


def timeline(tl: Timeline) -> str:
    """Outputs/s and generated tokens/s over the run, one chart each, the events marked
    (replicas started and ready as ticks, losses and a resume as labelled lines), and the
    replicas up at each point."""
    rates = tl.rates()
    if not rates:
        return ""
    t_end = max(p.t for p in tl.points)
    width, height, left, top = 900, 150, 70, 22
    plot_w, plot_h = width - left - 10, height - top - 24
    x = lambda t: left + plot_w * min(max(t, 0.0), t_end) / (t_end or 1)  # noqa: E731
    charts = []
    for title, col, colour in _SERIES:
        top_v = max(r[col] for r in rates) or 1.0
        y = lambda v: top + plot_h * (1 - v / top_v)  # noqa: E731,B023
        path = " ".join(f"{x(r[0]):.1f},{y(r[col]):.1f}" for r in rates)
        dots = "".join(
            f'<g data-label="{r[0]}" data-value="{round(r[col], 3)}"></g>' for r in rates
        )
        marks = []
        for e in tl.events:
            ex = x(e.t)
            labelled = e.kind in ("resume", "replica_lost", "node_lost")
            y0 = top if labelled else top + plot_h - 8
            marks.append(
                f'<line data-event="{e.kind}" data-t="{e.t}" x1="{ex:.1f}" x2="{ex:.1f}" '
                f'y1="{y0}" y2="{top + plot_h}" stroke="{_EVENT_COLOURS[e.kind]}" '
                f'stroke-width="{1.5 if labelled else 1}"'
                + ("/>" if labelled else ' opacity="0.8"/>')
            )
            if labelled and col == 1:
                what = e.kind.replace("_", " ") + (f" {e.node}" if e.node else "")
                marks.append(
                    f'<text x="{ex + 3:.1f}" y="{top + 10}" font-size="10" '
                    f'fill="{_EVENT_COLOURS[e.kind]}">{escape(what[:40])}</text>'
                )
        charts.append(
            f'<svg role="img" width="{width}" height="{height}" data-figure="timeline" '
            f'data-chart="timeline:{escape(title)}"><text x="0" y="14" font-weight="bold">'
            f"{escape(title)}</text>"
            f'<text x="{left - 6}" y="{top + 8}" text-anchor="end" font-size="11">'
            f"{top_v:,.0f}</text>"
            f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>'
            f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" '
            f'stroke="#999"/>{"".join(marks)}'
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{path}"/>'
            f"{dots}"
            f'<text x="{left + plot_w}" y="{height - 6}" text-anchor="end" font-size="11">'
            f"{t_end:,.0f} s</text></svg>"
        )
    up = " · ".join(
        f"{p.t:,.0f} s: {p.replicas}" for p in tl.points[:: max(1, len(tl.points) // 8)]
    )
    return "".join(charts) + f'<p class="muted">replicas up, at: {escape(up)}</p>'


PHASES = (
    ("process", "process_s", "#bab0ac"),
    ("staging", "staging_s", "#eeca3b"),
    ("imports", "imports_s", "#9d755d"),
    ("configure", "configure_s", "#ff9da6"),
    ("core start", "engine_core_start_s", "#b279a2"),
    ("executor", "executor_init_s", "#f58518"),
    ("weights", "weights_s", "#4c78a8"),
    ("compile", "compile_s", "#e45756"),
    ("warm-up", "warmup_s", "#72b7b2"),
    ("other", "other_s", "#dddddd"),
    ("first step", "first_step_s", "#54a24b"),
)


def startup(replicas: dict[str, ReplicaEngine]) -> str:
    """Each replica's start-up as one bar split into its phases (``load_s`` as one
    piece when the engine reported none), on one time scale."""
    rows = []
    for name, r in replicas.items():
        p = r.startup
        pieces = [(label, getattr(p, key), colour) for label, key, colour in PHASES] if p else []
        pieces = [(label, v, c) for label, v, c in pieces if v]
        if not pieces and r.load_s:
            pieces = [("load", r.load_s, "#4c78a8")]
        if pieces:
            rows.append((name, pieces))
    if not rows:
        return ""
    longest = max(sum(v for _, v, _ in pieces) for _, pieces in rows) or 1.0
    label_w, bar_w, row = 200, 600, 22
    height = 30 + row * len(rows) + 24
    parts = [
        f'<svg role="img" width="{label_w + bar_w + 70}" height="{height}" '
        f'data-figure="startup" data-chart="startup"><text x="0" y="14" font-weight="bold">'
        "replica start-up, seconds by phase</text>"
    ]
    for i, (name, pieces) in enumerate(rows):
        y, x = 26 + i * row, float(label_w)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(name[-28:])}</text>'
        )
        for label, v, colour in pieces:
            w = bar_w * v / longest
            parts.append(
                f'<g data-label="{escape(name)}:{label}" data-value="{round(v, 3)}">'
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" '
                f'fill="{colour}"><title>{escape(label)} {v:.1f} s</title></rect></g>'
            )
            x += w
        total = sum(v for _, v, _ in pieces)
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 14}">{total:.1f}</text>')
    y = 30 + row * len(rows)
    x = float(label_w)
    for label, _, colour in PHASES:
        parts.append(
            f'<rect x="{x:.0f}" y="{y}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 13:.0f}" y="{y + 9}" font-size="10">{label}</text>'
        )
        x += 13 + 6.5 * len(label) + 10
    parts.append("</svg>")
    return "".join(parts)
