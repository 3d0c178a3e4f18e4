"""Faithfulness scores with a real small sentence-transformers model (no Ray)."""

import numpy as np
import pyarrow as pa
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import ScoreConfig
from qcraft_ray.stages.score import Scorer, score_table

PASSAGE = "The Eiffel Tower in Paris was completed in 1889 for the World's Fair."


def rows():
    base = {S.PASSAGE: PASSAGE, S.LANGUAGE: "english", S.TYPE: "query"}
    return pa.Table.from_pylist([
        {**base, S.STATUS: "ok", S.OUTPUT: "when was the eiffel tower built"},
        {**base, S.STATUS: "ok", S.OUTPUT: "best sourdough bread recipe"},
        {**base, S.STATUS: "none", S.OUTPUT: "NONE"},
        {**base, S.STATUS: "empty", S.OUTPUT: ""},
        {**base, S.STATUS: "rejected", S.REASON: "too_short"},
    ], schema=S.STREAM_SCHEMA)


@pytest.fixture(scope="module")
def scorer(embedding_model):
    return Scorer(ScoreConfig(model=embedding_model, device="cpu"))


def test_scores_match_a_direct_computation(scorer, embedding_model):
    from sentence_transformers import SentenceTransformer

    out = scorer(rows())
    got = out[S.SCORE].to_pylist()
    assert got[2:] == [None, None, None]  # NONE, empty and rejected rows get no score
    model = SentenceTransformer(embedding_model, device="cpu")
    for i in (0, 1):
        a, b = model.encode([out[S.OUTPUT][i].as_py(), PASSAGE])
        direct = float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
        assert got[i] == pytest.approx(direct, abs=1e-5)
    assert got[0] > got[1] + 0.2  # the on-topic query is the more faithful one


def test_min_score_rejects_with_reason(scorer, embedding_model):
    cfg = ScoreConfig(model=embedding_model, device="cpu", min_score=0.3)
    out = score_table(rows(), scorer._embedder, cfg).to_pylist()
    assert [r[S.STATUS] for r in out] == ["ok", "rejected", "none", "empty", "rejected"]
    assert out[1][S.REASON] == S.REASON_LOW_SCORE and out[1][S.SCORE] < 0.3
    assert out[4][S.REASON] == "too_short"
