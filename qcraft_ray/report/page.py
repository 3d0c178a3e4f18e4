"""The run report as one self-contained HTML page (inline SVG, no scripts, no network)
and as a plain-text table for the terminal.

Every number drawn is also in the page as ``data-chart``/``data-label``/``data-value``
attributes, so a test (or a user's script) can read the values a chart shows.
"""

from __future__ import annotations

from html import escape
from typing import Any

from qcraft_ray import schema as S
from qcraft_ray.report.figures import heatmap, startup, timeline
from qcraft_ray.report.model import RunReport
from qcraft_ray.report.page_parts import bar_chart, table
from qcraft_ray.report.page_quality import example_tables, quality_tables
from qcraft_ray.report.summary import Summary
from qcraft_ray.telemetry import CompileCacheUse

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;
text-align:right}th:first-child,td:first-child{text-align:left}.muted{color:#777}
.grid{display:flex;flex-wrap:wrap;gap:24px}svg text{font:12px system-ui,sans-serif}
.cost{font-size:15px;background:#f6f8fa;padding:6px 10px;border-radius:4px}
details{margin:8px 0}summary{cursor:pointer;color:#555}
table.examples{table-layout:fixed;width:100%}table.examples td{vertical-align:top;
text-align:left}td.text{overflow-wrap:anywhere;white-space:pre-wrap;max-width:420px}
"""


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


STARTUP_HEADER = [
    "replica", "node", "process", "staging", "imports", "configure", "core start", "executor",
    "weights", "compile", "warm-up", "other", "= load", "first step", "compile cache",
    "occupancy", "queue empty",
]  # fmt: skip


def compile_cache_cell(use: CompileCacheUse | None) -> str:
    """What a replica fetched from the shared compile caches, and its lookups."""
    if use is None:
        return ""
    cell = f"{use.fetched_files} files fetched"
    if use.hits is not None:
        cell += f", {use.hits} hits, {use.misses} misses"
    return cell


def replica_tables(run: RunReport) -> list[str]:
    """Each replica's start-up by phase (seconds) and how full it kept its engine."""
    replicas = run.engine.replicas
    if not replicas:
        return []

    def s(v: float | None) -> str:
        return "" if v is None else f"{v:.1f}"

    rows = []
    for name, r in replicas.items():
        p = r.startup
        phases = (
            [p.process_s, p.staging_s, p.imports_s, p.configure_s, p.engine_core_start_s,
             p.executor_init_s, p.weights_s, p.compile_s, p.warmup_s, p.other_s]
            if p is not None else [None] * 10
        )  # fmt: skip
        rows.append(
            [name, r.node_address or "", *(s(v) for v in phases), s(r.load_s),
             s(p.first_step_s if p else None), compile_cache_cell(r.compile_cache),
             "" if r.occupancy is None else f"{r.occupancy:.3f}",
             "" if r.queue_empty_fraction is None else f"{r.queue_empty_fraction:.1%}"]
        )  # fmt: skip
    return [
        "<h2>Engine replicas: start-up (s) and occupancy</h2>",
        startup(replicas),
        table(STARTUP_HEADER, rows, "startup"),
    ]


def cost_line(run: RunReport) -> str:
    """One line: engine-hours used against the plan's estimate, and money when priced."""
    c = run.cost
    if c is None:
        return ""
    parts = [f"engine-hours {c.engine_hours:,.3f}"]
    if c.gpu_hours:
        parts.append(f"GPU-hours {c.gpu_hours:,.3f}")
    if c.estimated_engine_hours is not None:
        parts.append(f"plan estimated {c.estimated_engine_hours:,.3f} engine-hours")
    if c.ratio is not None:
        parts.append(f"{c.ratio:.2f}x the estimate")
    if c.money is not None:
        parts.append(f"cost {c.money:,.2f} at {c.gpu_hour_price:,.2f} a GPU-hour")
    return f'<p class="cost" data-figure="cost">{escape(" · ".join(parts))}</p>'


def language_type_sections(summary: Summary) -> list[str]:
    """The language x type heatmaps, with the exact numbers in a table behind them."""
    if not summary.grids:
        return []
    header = ["language/type", "outputs", *S.OUTPUT_STATUSES]
    rows = [
        [k, sum(v.values()), *(v.get(s, 0) for s in S.OUTPUT_STATUSES)]
        for k, v in summary.by_language_type.items()
    ]
    return [
        "<h2>Language x type</h2>",
        '<div class="grid">',
        *(heatmap(g) for g in summary.grids),
        "</div><details><summary>exact numbers per language and type</summary>",
        table(header, rows, "language_type"),
        "</details>",
    ]


def render_html(summary: Summary, run: RunReport, title: str = "qcraft run report") -> str:
    """The whole page."""
    sections = [
        f"<h1>{escape(title)}</h1><p>run <b>{escape(run.run_id)}</b> · status "
        f'<b data-value="{escape(run.status)}">{escape(run.status)}'
        f"</b> · {escape(summary.path)}</p>",
        cost_line(run),
        table(
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
        *language_type_sections(summary),
        "<h2>Per language</h2>",
        table(LANGUAGE_HEADER, language_rows(summary), "languages"),
    ]
    if run.timeline is not None and run.timeline.points:
        sections += ["<h2>The run over time</h2>", timeline(run.timeline)]
    sections += [
        "<h2>Lengths</h2>",
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
    sections += quality_tables(run)
    sections += example_tables(run)
    if summary.rejected:
        sections += [
            "<h2>Rejected rows by reason</h2>",
            bar_chart("rejected", "rejected", list(summary.rejected.items()), color="#999"),
        ]
    if summary.scores:
        sections += [
            "<h2>Faithfulness scores</h2>",
            table(
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
    sections += replica_tables(run)
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
