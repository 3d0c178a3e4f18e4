"""The run's last act: settle which manifests are the output, reconcile, report, commit.

After the pipeline, with the lease still held: late commits of a killed attempt are
discarded and orphan files removed (:mod:`qcraft_ray.ledger.reconcile`); the percentile
filter runs when configured; the counters of the accepted manifests must account for
every input document and every work unit; the run report and its examples are written,
the Iceberg commit made (adding the manifests staged while the run went), the report's
page written, and ``_SUCCESS`` written only when everything reconciles.
"""

from __future__ import annotations

import time
from typing import Any

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.estimate import estimate
from qcraft_ray.io.plan import InputPlan
from qcraft_ray.lake.commit import commit_run
from qcraft_ray.lake.staged import remove_unused
from qcraft_ray.ledger import lease
from qcraft_ray.ledger.checkpoints import invalidate, write_checkpoint
from qcraft_ray.ledger.committed import Committed
from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.ledger.manifests import iter_manifests
from qcraft_ray.ledger.reconcile import accepted, reconcile
from qcraft_ray.ledger.state import RunState, now_iso
from qcraft_ray.passes.percentile import filter_by_percentile
from qcraft_ray.progress import FinalProgress
from qcraft_ray.report.cost import run_cost
from qcraft_ray.report.examples import REPORT_FILES, pick, spread
from qcraft_ray.report.model import (
    InputInfo,
    ModelInfo,
    OutputInfo,
    ResumeInfo,
    Retries,
    RunReport,
    Throughput,
    package_versions,
)
from qcraft_ray.report.page import render_html
from qcraft_ray.report.quality import quality_of
from qcraft_ray.report.summary import summarize
from qcraft_ray.store import REPORT_FILE, REPORT_HTML, SUCCESS_FILE, TEMP_DIR, OutputFolder
from qcraft_ray.store.layout import Layout
from qcraft_ray.telemetry import EngineOccupancy


class ReconciliationError(RuntimeError):
    """The output does not account for every input document."""


def finalise(
    cfg: RunConfig,
    plan: InputPlan,
    state: RunState,
    tracked: FinalProgress,
    started: str,
    t0: float,
) -> RunReport:
    """Settle, reconcile and report the run; raise :class:`ReconciliationError` when rows
    or documents are unaccounted for (the report then says ``incomplete``)."""
    folder = state.folder
    lease.check(folder, state.attempt)  # a driver that lost its lease writes nothing more
    committed, orphans = accepted(folder, state)
    layout = Layout.of(cfg.output.partition_by, cfg.input.language_map)
    if cfg.score.enabled and cfg.score.min_percentile is not None and state.mode.generates:
        committed = filtered(folder, committed, cfg.score.min_percentile, layout)
    counts = committed.counts
    problems = reconcile(plan.total_rows, counts, committed.units)
    wall = time.monotonic() - t0
    done = tracked.counters
    repeated = done.get("prompts_repeated", 0)  # generated twice (counted once in the work)
    engine = engine_section(tracked.engine, t0)
    report = RunReport(
        run_id=state.run_id,
        mode=state.mode,
        status="incomplete" if problems else "complete",
        started_at=started,
        finished_at=now_iso(),
        wall_seconds=round(wall, 3),
        model=ModelInfo(name=cfg.model.name, revision=cfg.model.revision),
        stage_seconds={
            k[len("seconds_") :]: round(v, 3) for k, v in done.items() if k.startswith("seconds_")
        },
        throughput=Throughput(
            prompts=int(done.get("prompts_done", 0)),
            outputs_per_second=round(done.get("outputs", 0) / wall, 3),
            generated_tokens_per_second=round(done.get("output_tokens", 0) / wall, 3),
        ),
        replicas=len(counts.by_replica),
        engine=engine,
        retries=Retries(
            replicas_lost=int(done.get("replicas_lost", 0)),
            prompts_retried=int(done.get("prompts_retried", 0)),
            prompts_repeated=int(repeated),
        ),
        attempts=state.attempts,
        resumed=state.resumed,
        resume=ResumeInfo(
            units_skipped=len(state.done_units),
            rows_already_written=state.rows_already_written,
            attempts=len(state.attempts),
            from_checkpoint=state.committed.from_checkpoint,
        ),
        versions=package_versions(),
        input=InputInfo(
            files=len(plan.files),
            documents=plan.total_rows,
            paths=cfg.input.paths,
            shard=plan.shard.describe() if plan.shard else None,
            iceberg_snapshot_id=plan.snapshot_id,
        ),
        output=OutputInfo(
            path=cfg.output.path,
            partition_by=list(layout.partition_by),
            data_glob=layout.data_glob(),
            rows=sum(counts.outputs.values()),
            rejected_rows=sum(counts.rejected.values()),
            files=len(committed.files),
        ),
        documents_accounted=counts.documents,
        orphan_files_removed=len(state.removed_orphans) + len(orphans),
        counts=counts,
        mean_scores=counts.mean_scores(),
        quality=quality_of(counts, cfg.generation.samples_per_prompt),
        timeline=tracked.timeline if state.mode.generates else None,
        cost=run_cost(engine, cfg, planned(cfg, done)) if state.mode.generates else None,
        config=cfg,
        problems=problems or None,
    )
    k = cfg.report.examples_per_language
    if k and state.mode.generates and not problems:
        files = spread(committed.data_files, REPORT_FILES)
        report.examples = pick(folder, files, k)
    report.write(folder)
    if problems:
        raise ReconciliationError(f"{'; '.join(problems)}; see {folder.display(REPORT_FILE)}")
    if cfg.output.iceberg is not None:
        report.iceberg = commit_run(
            cfg.output.iceberg,
            cfg.storage,
            state.run_id,
            [folder.uri(f) for f in committed.data_files],
            state.mode.schema,
            layout.for_schema(state.mode.schema).partition_by,
            committed.lake,
        )
        if not report.iceberg.already_committed:  # what a commit did not use is garbage
            remove_unused(folder, committed.lake[: report.iceberg.staged_manifests])
        report.write(folder)
    # the finished output's bookkeeping: what qcraft report and later passes read
    write_checkpoint(folder, committed, whole=True)
    if state.mode.generates:  # the page, as qcraft report writes it
        summary = summarize(cfg.output.path, counts, cfg.generation.types)
        folder.write_bytes(REPORT_HTML, render_html(summary, report).encode("utf-8"))
    folder.write_bytes(SUCCESS_FILE, b"")
    folder.delete_dir(TEMP_DIR)  # no writer is left: the run is done
    lease.release(folder, state.attempt)
    return report


def filtered(
    folder: OutputFolder, committed: Committed, percentile: float, layout: Layout
) -> Committed:
    """The percentile filter over the accepted manifests (a pass over every data file:
    it holds the manifests), and what its new manifests add up to."""
    invalidate(folder)  # manifests are about to switch: no checkpoint may describe them
    manifests = iter_manifests(folder, sorted(committed.names))
    out = Committed()
    for m in filter_by_percentile(folder, manifests, percentile, layout, committed.data_files):
        out.add(m)
    return out


def planned(cfg: RunConfig, done: dict[str, float]) -> dict[str, Any] | None:
    """What ``qcraft plan`` would have estimated for the prompts this attempt generated."""
    prompts = int(done.get("prompts_done", 0))
    if not prompts:
        return None
    work = RowCounts(
        outputs={S.STATUS_PENDING: prompts}, prompt_tokens=int(done.get("prompt_tokens", 0))
    )
    return estimate(work, cfg, None)


def engine_section(tracked: EngineOccupancy, t0: float) -> EngineOccupancy:
    """The tracker's engine summary, with the first output timed from the run's start
    (``t0``: this process's monotonic clock when the run began)."""
    engine = tracked.model_copy(deep=True)
    if engine.first_output_at is not None:
        started = time.time() - (time.monotonic() - t0)
        engine.first_output_s = round(engine.first_output_at - started, 3)
    return engine
