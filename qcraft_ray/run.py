"""Run the job (or plan it) against an already-initialised Ray.

This module never starts or joins Ray: the CLI and the job entry do that.
"""

from __future__ import annotations

import time
from typing import Any

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.estimate import PromptSample, estimate, measure_rate
from qcraft_ray.finalise import finalise
from qcraft_ray.io.discover import plan_input
from qcraft_ray.io.plan import InputPlan
from qcraft_ray.lake.commit import check_table
from qcraft_ray.lake.staged import Stager
from qcraft_ray.ledger import lease
from qcraft_ray.ledger.compactor import compacting
from qcraft_ray.ledger.counts import COUNTED_COLUMNS, RowCounts, count_rows
from qcraft_ray.ledger.state import now_iso, open_run
from qcraft_ray.mode import Mode
from qcraft_ray.pipeline import PIPELINES, prompts
from qcraft_ray.progress import FinalProgress, ProgressView, track_progress
from qcraft_ray.report.model import RunReport
from qcraft_ray.store.layout import Layout


def estimate_run(cfg: RunConfig, plan: InputPlan | None = None, measure: int = 0) -> dict[str, Any]:
    """What a run would do (``qcraft plan``): documents, passages, prompts, prompt
    tokens, and the engine time they would take (:mod:`qcraft_ray.estimate`): at the
    ``estimate.*`` rate, or with ``measure`` > 0 at the rate one engine replica reaches
    on that many prompts sampled from the input."""
    plan = plan or plan_input(cfg)
    sample = PromptSample(measure)
    columns = [*COUNTED_COLUMNS, *([S.PROMPT_TOKEN_IDS] if measure else [])]
    parts = []
    batches = prompts(cfg, plan).select_columns(columns)
    for b in batches.iter_batches(batch_format="pyarrow", batch_size=None):
        parts.append(count_rows(b))
        sample.add(b)
    counts = RowCounts.merge(parts)
    measured = measure_rate(cfg, sample.prompts) if sample.prompts else None
    return {
        **({"shard": plan.shard.describe()} if plan.shard else {}),
        "files": len(plan.files),
        "documents": plan.total_rows,
        "passages": counts.passages,
        "prompts": counts.outputs.get(S.STATUS_PENDING, 0),
        "prompt_tokens": counts.prompt_tokens,
        "max_new_tokens_per_prompt": cfg.generation.max_new_tokens,
        "types": cfg.generation.types,
        "types_per_passage": cfg.generation.types_per_passage,
        "by_language_type": counts.by_language_type,
        "rejected": counts.rejected,
        "by_language": counts.by_language,
        "estimate": estimate(counts, cfg, measured, asked=measure > 0),
    }


def run(
    cfg: RunConfig,
    plan: InputPlan | None = None,
    mode: Mode = Mode.GENERATE,
    view: ProgressView | None = None,
) -> RunReport:
    """Run the job in ``mode``, resuming an unfinished run in ``output.path``; write and
    return the run report. A finished run is left as it is (the report says
    ``already_complete``). Raises :class:`~qcraft_ray.finalise.ReconciliationError` when
    rows or documents are unaccounted for. ``view``: where progress shows (log lines by
    default)."""
    started, t0 = now_iso(), time.monotonic()
    plan = plan or plan_input(cfg)  # bad input fails before any engine
    state = open_run(cfg, plan, mode)
    if state.complete:
        report = RunReport.read(state.folder)
        return report.model_copy(update={"already_complete": True})
    assert state.lease is not None
    if cfg.output.iceberg is not None:  # a wrong catalog or table fails before any engine
        layout = Layout.of(cfg.output.partition_by, cfg.input.language_map)
        partition_by = layout.for_schema(mode.schema).partition_by
        check_table(cfg.output.iceberg, cfg.storage, mode.schema, partition_by)
    stage = Stager(cfg.output.iceberg, cfg.storage, state.folder) if cfg.output.iceberg else None
    tracked = FinalProgress()
    try:
        with lease.renewing(state.folder, state.lease):
            if state.documents_done < plan.total_rows:
                pipeline = PIPELINES[mode]
                with (
                    compacting(state, cfg.output, stage),
                    track_progress(
                        plan.total_rows,
                        cfg.report.progress_interval_s,
                        state.documents_done,
                        view,
                    ) as (progress, tracked),
                ):
                    pipeline(cfg, plan, state, progress)
            return finalise(cfg, plan, state, tracked, started, t0)
    finally:
        lease.release(state.folder, state.attempt)
