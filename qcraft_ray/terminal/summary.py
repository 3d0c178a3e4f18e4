"""The few lines ``qcraft run`` ends with: how it went, where the outputs and the report
are, and what to run next (``--json`` prints the JSON summary instead)."""

from __future__ import annotations

from typing import Any

from qcraft_ray import schema as S
from qcraft_ray.progress import duration
from qcraft_ray.report.model import RunReport
from qcraft_ray.report.quality import output_rows
from qcraft_ray.store import REPORT_FILE, REPORT_HTML, OutputFolder


def human_summary(report: RunReport, folder: OutputFolder, log: str | None = None) -> str:
    """The summary of ``report`` (written to ``folder``); ``log``: where the run's other
    messages went."""
    c = report.counts
    lines = [
        f"qcraft: run {report.run_id} {report.status}"
        + (" (already complete: nothing to do)" if report.already_complete else "")
        + f" in {duration(report.wall_seconds)}"
    ]
    data = folder.display(report.output.data_glob)
    rows = report.output.rows
    lines.append(f"  wrote {rows:,} rows in {report.output.files:,} files: {data}")
    if c.rejected:
        most = sorted(c.rejected.items(), key=lambda kv: -kv[1])
        reasons = ", ".join(f"{k} {v:,}" for k, v in most)
        lines.append(f"  rejected {sum(c.rejected.values()):,} rows ({reasons}) in _rejected/")
    if report.mode.generates:
        outputs = output_rows(c.outputs)
        none = c.outputs.get(S.STATUS_NONE, 0) / outputs if outputs else 0.0
        cost = report.cost
        hours = f", engine-hours {cost.engine_hours:,.3f}" if cost is not None else ""
        lines.append(
            f"  {report.input.documents:,} documents, {c.passages:,} passages, NONE rate "
            f"{none:.1%}{hours}"
        )
    for problem in report.problems or []:
        lines.append(f"  problem: {problem}")
    if report.mode.generates:  # a page of the outputs; passages have their counts only
        lines.append(f"  report: {folder.display(REPORT_HTML)} (numbers: {REPORT_FILE})")
    else:
        lines.append(f"  report: {folder.display(REPORT_FILE)}")
    if log:
        lines.append(f"  other messages (vLLM, Ray): {log}")
    if report.mode.generates:
        path = report.output.path
        lines.append(f"  next: qcraft report {path} · qcraft inspect {path} --lowest 20")
    return "\n".join(lines)


def json_summary(report: RunReport, log: str | None = None) -> dict[str, Any]:
    """What ``--json`` prints: the run, its output and counts, and where its log went."""
    return {
        "run_id": report.run_id,
        "status": report.status,
        "already_complete": report.already_complete,
        "output": report.output.model_dump(),
        "documents": report.input.documents,
        "outputs": report.counts.outputs,
        "rejected": report.counts.rejected,
        "wall_seconds": report.wall_seconds,
        **({"log": log} if log else {}),
    }
