"""Faithfulness scoring (optional): cosine similarity of each output to its passage.

The model card's evaluation as a stage: embed the output and its passage with a
sentence-transformers model (default ``BAAI/bge-m3``), normalized, and store their dot
product in ``score``. Only rows with status ``ok`` are scored; NONE, empty, error and
rejected rows keep a null score. With ``min_score`` set, outputs below it become
rejected rows with reason ``low_score`` (Doc2Query-- style), counted like every other
rejection, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.config import ScoreConfig
from qcraft_ray.rows import reject, replace

NEEDED = (S.STATUS, S.OUTPUT, S.PASSAGE)


class Embedder(Protocol):
    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray: ...


def load_embedder(cfg: ScoreConfig) -> Embedder:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        cfg.model, device=cfg.device, trust_remote_code=cfg.trust_remote_code
    )


def cosine_scores(
    embedder: Embedder, outputs: list[str], passages: list[str], batch_size: int
) -> np.ndarray:
    """cos(output_i, passage_i) for each i."""
    kw = dict(
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    a = embedder.encode(outputs, **kw)
    b = embedder.encode(passages, **kw)
    return np.einsum("ij,ij->i", a, b).astype(np.float64)


def apply_min_score(rows: pa.Table, min_score: float) -> pa.Table:
    """Rows scored below ``min_score`` become rejections with reason ``low_score``."""
    return reject(rows, pc.less(rows[S.SCORE], min_score), S.REASON_LOW_SCORE)


def score_table(rows: pa.Table, embedder: Embedder, cfg: ScoreConfig) -> pa.Table:
    """Set ``score`` on ``ok`` rows (pure given the embedder; unit-tested)."""
    S.require_columns("score", NEEDED, rows.column_names)
    ok = pc.fill_null(pc.equal(rows[S.STATUS], S.STATUS_OK), False)
    idx = np.flatnonzero(ok.to_numpy(zero_copy_only=False))
    values = np.full(rows.num_rows, np.nan)
    if len(idx):
        outputs = rows[S.OUTPUT].take(pa.array(idx)).to_pylist()
        passages = rows[S.PASSAGE].take(pa.array(idx)).to_pylist()
        values[idx] = cosine_scores(embedder, outputs, passages, cfg.batch_size)
    scores = pa.array(values, pa.float64(), mask=np.isnan(values))
    if S.SCORE in rows.column_names:
        rows = replace(rows, S.SCORE, scores)
    else:
        rows = rows.append_column(S.SCORE, scores)
    return apply_min_score(rows, cfg.min_score) if cfg.min_score is not None else rows


class Scorer:
    """Ray Data UDF (actor): one embedding model per actor."""

    def __init__(
        self, cfg: ScoreConfig, factory: Callable[[ScoreConfig], Embedder] = load_embedder
    ) -> None:
        self._cfg = cfg
        self._embedder = factory(cfg)

    def __call__(self, rows: pa.Table) -> pa.Table:
        return score_table(rows, self._embedder, self._cfg)
