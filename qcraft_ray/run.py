"""Run the job (or plan it) against an already-initialised Ray.

This module never starts or joins Ray: the CLI and the job entry do that.
"""

from __future__ import annotations

import time
from typing import Any

from qcraft_ray.config import RunConfig
from qcraft_ray.finalise import finalise
from qcraft_ray.io.discover import plan_input
from qcraft_ray.io.plan import InputPlan
from qcraft_ray.lake.commit import check_table
from qcraft_ray.ledger import lease
from qcraft_ray.ledger.counts import COUNTED_COLUMNS, RowCounts, count_rows
from qcraft_ray.ledger.state import now_iso, open_run
from qcraft_ray.mode import Mode
from qcraft_ray.pipeline import PIPELINES, prompts
from qcraft_ray.progress import FinalProgress, track_progress
from qcraft_ray.report.model import RunReport
from qcraft_ray.store.layout import Layout


def estimate_run(cfg: RunConfig, plan: InputPlan | None = None) -> dict[str, Any]:
    """What a run would do (``qcraft plan``): documents, passages, prompts, prompt
    tokens, and the GPU time they would take by ``estimate.*``. No engine."""
    plan = plan or plan_input(cfg)
    counts = RowCounts.merge(
        count_rows(b)
        for b in prompts(cfg, plan)
        .select_columns(COUNTED_COLUMNS)
        .iter_batches(batch_format="pyarrow", batch_size=None)
    )
    pending = counts.outputs.get("pending", 0)
    est = cfg.estimate
    return {
        **({"shard": plan.shard.describe()} if plan.shard else {}),
        "files": len(plan.files),
        "documents": plan.total_rows,
        "passages": counts.passages,
        "prompts": pending,
        "prompt_tokens": counts.prompt_tokens,
        "max_new_tokens_per_prompt": cfg.generation.max_new_tokens,
        "types": cfg.generation.types,
        "types_per_passage": cfg.generation.types_per_passage,
        "by_language_type": counts.by_language_type,
        "rejected": counts.rejected,
        "by_language": counts.by_language,
        "estimate": {
            "note": "ESTIMATE from estimate.* settings, not a measurement",
            "generated_tokens": round(
                pending * est.output_tokens_per_prompt * cfg.generation.samples_per_prompt
            ),
            "gpu_hours": round(pending / est.prompts_per_gpu_second / 3600, 4),
            "prompts_per_gpu_second": est.prompts_per_gpu_second,
            "passages_per_gpu_second": round(
                est.prompts_per_gpu_second / cfg.generation.prompts_per_passage, 2
            ),
        },
    }


def run(cfg: RunConfig, plan: InputPlan | None = None, mode: Mode = Mode.GENERATE) -> RunReport:
    """Run the job in ``mode``, resuming an unfinished run in ``output.path``; write and
    return the run report. A finished run is left as it is (the report says
    ``already_complete``). Raises :class:`~qcraft_ray.finalise.ReconciliationError` when
    rows or documents are unaccounted for."""
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
    tracked = FinalProgress()
    try:
        with lease.renewing(state.folder, state.lease):
            if state.documents_done < plan.total_rows:
                pipeline = PIPELINES[mode]
                with track_progress(
                    plan.total_rows, cfg.report.progress_interval_s, state.documents_done
                ) as (progress, tracked):
                    pipeline(cfg, plan, state, progress)
            return finalise(cfg, plan, state, tracked, started, t0)
    finally:
        lease.release(state.folder, state.attempt)
