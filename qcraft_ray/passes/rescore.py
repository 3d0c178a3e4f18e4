"""``qcraft score OUTPUT_PATH``: score a finished output, so old runs can be evaluated.

Manifest by manifest, the data files are read, their ``ok`` rows scored
(:func:`~qcraft_ray.stages.score.score_table`; files from before scoring existed gain
the column) and committed as new files by the job's own protocol
(:func:`~qcraft_ray.ledger.manifests.replace_files`): new files, then one manifest
switch, then the old files go. The manifest records the model it was scored with, so a
re-run after a crash scores only what is left, and every row is scored once. The run
report's counters and mean scores then describe the new scores, over the data files.
Filtering (``score.min_score``) belongs to the pipeline, where dropped rows are committed
with the rest; here it is refused rather than half-applied.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import pyarrow as pa

from qcraft_ray import schema as S
from qcraft_ray.config import ScoreConfig, StorageConfig
from qcraft_ray.errors import OutputPathError
from qcraft_ray.ledger import lease
from qcraft_ray.ledger.checkpoints import fold, invalidate, write_checkpoint
from qcraft_ray.ledger.committed import Committed
from qcraft_ray.ledger.counts import count_rows
from qcraft_ray.ledger.manifests import (
    Manifest,
    iter_manifests,
    manifest_names,
    remove_uncommitted,
    replace_files,
    revised_name,
)
from qcraft_ray.mode import Mode
from qcraft_ray.report.model import Rescored, RunReport, read_run
from qcraft_ray.report.quality import quality_of
from qcraft_ray.stages.score import Embedder, load_embedder, score_table
from qcraft_ray.store import SUCCESS_FILE, TEMP_DIR, OutputFolder

log = logging.getLogger("qcraft")


def finished_run(path: str, storage: StorageConfig) -> tuple[OutputFolder, RunReport]:
    """The output folder of a finished run, and its report."""
    folder, report = read_run(path, storage)
    if not folder.exists(SUCCESS_FILE):
        raise OutputPathError(
            f"{path} holds run {report.run_id}, which is not finished "
            f"({SUCCESS_FILE} is missing): run it to completion first"
        )
    return folder, report


def rescore(
    path: str, storage: StorageConfig, cfg: ScoreConfig, embedder: Embedder | None = None
) -> RunReport:
    """Score every data file of the run in ``path``; return the updated run report."""
    if cfg.min_score is not None:
        raise ValueError(
            "qcraft score does not filter: run the job with score.enabled and "
            "score.min_score to drop low scores as counted rejections"
        )
    folder, report = finished_run(path, storage)
    if not report.mode.generates:
        raise OutputPathError(
            f"{path} holds passages (qcraft passages), not generated "
            "outputs: there is nothing to score"
        )
    if report.iceberg is not None and report.iceberg.files:
        raise OutputPathError(
            f"{path}: its data files belong to Iceberg table {report.iceberg.table} "
            f"(snapshot {report.iceberg.snapshot_id}); rescoring would replace files the "
            "table references. Score in the run instead (score.enabled)."
        )
    attempt = f"score-{uuid.uuid4().hex[:6]}"
    try:
        held = lease.acquire(folder, report.run_id, attempt, report.config.output.lease_ttl_s)
    except lease.LeaseHeld as e:
        raise OutputPathError(str(e)) from e
    try:
        with lease.renewing(folder, held):
            return _rescore_all(folder, report, embedder or load_embedder(cfg), cfg, attempt)
    finally:
        lease.release(folder, attempt)


def _rescore_all(
    folder: OutputFolder, report: RunReport, embedder: Embedder, cfg: ScoreConfig, attempt: str
) -> RunReport:
    def work(m: Manifest) -> Manifest:
        if m.scored_with == cfg.model:
            return m
        lease.check(folder, attempt)
        return _rescore(folder, m, embedder, cfg)

    done = each_manifest(folder, work)
    report.counts = done.counts
    report.mean_scores = report.counts.mean_scores()
    report.quality = quality_of(report.counts, report.config.generation.samples_per_prompt)
    report.scored = Rescored(model=cfg.model, files=len(done.data_files))
    report.write(folder)
    folder.delete_dir(TEMP_DIR)
    return report


def each_manifest(folder: OutputFolder, work: Callable[[Manifest], Manifest]) -> Committed:
    """The pass's bookkeeping around ``work`` (a manifest to the manifest it is switched
    to): files an interrupted pass left removed, every manifest through ``work``, one at
    a time (the run's bookkeeping is never held whole), and the whole checkpoint of what
    they add up to."""
    # the files committed: the finished output's whole checkpoint, read before the
    # checkpoints go, and any manifest after it (after an interrupted pass, which removed
    # the checkpoints before its first switch: every manifest)
    known = fold(folder, upto="files", finished=True)
    invalidate(folder)  # manifests are about to switch: no checkpoint may describe them
    names = manifest_names(folder)
    if known.whole:
        known = fold(folder, names=names, start=known)
    removed = remove_uncommitted(folder, set(known.files))
    if removed:
        log.info("removed %d files of an interrupted rescore", len(removed))
    done = Committed()
    for i, m in enumerate(iter_manifests(folder, names)):
        done.add(work(m))
        log.info("scored %d/%d manifests", i + 1, len(names))
    write_checkpoint(folder, done, whole=True)
    return done


def _rescore(folder: OutputFolder, m: Manifest, embedder: Embedder, cfg: ScoreConfig) -> Manifest:
    new_files: dict[str, pa.Table] = {}
    before, after = [], []
    for rel in m.data_files:
        table = folder.read_parquet(rel)
        scored = S.conform(score_table(table, embedder, cfg), Mode.GENERATE.schema)
        new_files[revised_name(rel, m.revision + 1)] = scored
        before.append(S.to_stream(table))
        after.append(S.to_stream(scored))
    if not before:
        return replace_files(folder, m, {}, [], m.counts, scored_with=cfg.model)
    new_rows = count_rows(pa.concat_tables(after))
    counts = m.counts.minus(count_rows(pa.concat_tables(before))).plus(new_rows)
    counts.score_sums = new_rows.score_sums  # the new model's scores only, as the means say
    return replace_files(folder, m, new_files, m.data_files, counts, scored_with=cfg.model)
