"""``qcraft score OUTPUT_PATH``: score an existing output, so old runs can be evaluated.

Each data file is read, its ``ok`` rows scored (:func:`~qcraft_ray.stages.score.
score_table`), and written back in place with the ``score`` column (files from before
scoring existed gain it); each file is replaced atomically, so an interrupted run can
simply be started again. The run report gains mean scores per language and per type.
Filtering (``score.min_score``) belongs to the pipeline, where dropped rows are
committed with the rest; here it is refused rather than half-applied.
"""

from __future__ import annotations

from typing import Any

from qcraft_ray import schema as S
from qcraft_ray.config import ScoreConfig, StorageConfig
from qcraft_ray.io import filesystems
from qcraft_ray.io.commit import (REJECTED_DIR, REPORT_FILE, data_files, get_json, get_parquet,
                                  put_json, put_parquet)
from qcraft_ray.report import count_rows, mean_scores, merge_counts
from qcraft_ray.stages.score import Embedder, load_embedder, score_table


def rescore(path: str, storage: StorageConfig, cfg: ScoreConfig,
            embedder: Embedder | None = None) -> dict[str, Any]:
    """Score every data file under ``path``; return the updated run report."""
    if cfg.min_score is not None:
        raise ValueError("qcraft score does not filter: run the job with score.enabled and "
                         "score.min_score to drop low scores as counted rejections")
    fs, root = filesystems.resolve(path, storage)
    report = get_json(fs, filesystems.join(root, REPORT_FILE))
    first_type = ((report.get("config") or {}).get("generation") or {}).get("types", [None])[0]
    embedder = embedder or load_embedder(cfg)
    parts = []
    files = [f for f in data_files(fs, root) if not f.startswith(REJECTED_DIR + "/")]
    for rel in files:
        full = filesystems.join(root, rel)
        # files from before scoring existed gain the column (score_table adds it)
        scored = S.conform(score_table(get_parquet(fs, full), embedder, cfg), S.OUTPUT_SCHEMA)
        put_parquet(fs, full, scored)
        parts.append(count_rows(S.to_stream(scored), first_type))
    report["mean_scores"] = mean_scores(merge_counts(parts))
    report["scored"] = {"model": cfg.model, "files": len(files)}
    put_json(fs, filesystems.join(root, REPORT_FILE), report)
    return report
