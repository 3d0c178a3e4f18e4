"""Faithfulness scoring through the real job (its own actor pool after generation),
the report's mean scores and page, and `qcraft score` over an existing output."""

from __future__ import annotations

import collections
import json
import os

import numpy as np
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest

from qcraft_ray import schema as S
from tests.integration.conftest import base_overrides, read_output, run_cli
from tests.integration.test_job import LOCAL, SAMPLE

MIN_SCORE = 0.1


def means(rows) -> dict:
    acc = {"by_language": collections.defaultdict(list), "by_type": collections.defaultdict(list)}
    for r in rows:
        if r[S.SCORE] is not None:
            acc["by_language"][r[S.LANGUAGE]].append(r[S.SCORE])
            acc["by_type"][r[S.TYPE]].append(r[S.SCORE])
    return {g: {k: round(sum(v) / len(v), 4) for k, v in d.items()} for g, d in acc.items()}


def test_scores_threshold_report_and_rescore(ray_cluster, tiny_model, embedding_model,
                                            tmp_path):
    from sentence_transformers import SentenceTransformer

    from tests.integration.browser import parse, render

    out_dir = str(tmp_path / "out")
    sets = [*base_overrides(tiny_model, [SAMPLE], out_dir), "generation.types=[query,title]",
            "score.enabled=true", f"score.model={embedding_model}", "score.device=cpu",
            "score.cpus_per_replica=0.5", f"score.min_score={MIN_SCORE}",
            "score.min_percentile=25"]
    res = run_cli(["run", LOCAL, "--address", ray_cluster.address,
                   *sum((["--set", o] for o in sets), [])], ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    out, rej, report = read_output(out_dir)
    assert report["status"] == "complete" and report["documents_accounted"] == 75
    rows = out.to_pylist()
    ok = [r for r in rows if r[S.STATUS] == "ok"]
    assert ok and all(r[S.SCORE] is not None and r[S.SCORE] >= MIN_SCORE for r in ok)
    assert all(r[S.SCORE] is None for r in rows if r[S.STATUS] != "ok")
    low = rej.filter(pc.equal(rej[S.REASON], S.REASON_LOW_SCORE)).to_pylist()
    assert report["counts"]["rejected"][S.REASON_LOW_SCORE] == len(low)  # counted
    below_min = [r for r in low if r[S.ERROR] is None]
    below_pct = [r for r in low if r[S.ERROR] is not None]
    assert below_min and all(r[S.SCORE] < MIN_SCORE for r in below_min)
    # per-language 25th percentile of the scores that passed min_score
    limits = json.loads((tmp_path / "out" / "_thresholds.json").read_text())["thresholds"]
    for lang, limit in limits.items():
        kept = [r[S.SCORE] for r in ok if r[S.LANGUAGE] == lang]
        dropped = [r[S.SCORE] for r in below_pct if r[S.LANGUAGE] == lang]
        assert kept and min(kept) >= limit and all(s < limit for s in dropped)
        assert limit == pytest.approx(float(np.percentile(kept + dropped, 25)))
    assert below_pct
    # scores against a direct computation on a few rows
    model = SentenceTransformer(embedding_model, device="cpu")
    for r in ok[:3]:
        a, b = model.encode([r[S.OUTPUT], r[S.PASSAGE]])
        assert r[S.SCORE] == pytest.approx(
            float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)), abs=1e-5)
    # mean per language and type in the report: over every scored output, dropped or not
    assert report["mean_scores"] == means(rows + low)
    # the page shows them
    res = run_cli(["report", out_dir], dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    page = parse(render(f"file://{out_dir}/_report.html"))
    scored = collections.Counter(f"{r[S.LANGUAGE]}/{r[S.TYPE]}" for r in ok)
    assert {k: int(v["scored"]) for k, v in page.tables["scores"].items()} == dict(scored)
    assert sum(page.charts["score:english/query"].values()) == scored["english/query"]

    # `qcraft score` over an existing output gives the same scores (same model)
    fs = pafs.LocalFileSystem()
    res = run_cli(["score", out_dir, "--model", embedding_model, "--device", "cpu"],
                  {**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    again, _, report2 = read_output(out_dir, fs)
    before = {(r[S.DOC_ID], r[S.CHUNK_INDEX], r[S.TYPE]): r[S.SCORE] for r in rows}
    after = {(r[S.DOC_ID], r[S.CHUNK_INDEX], r[S.TYPE]): r[S.SCORE] for r in again.to_pylist()}
    assert before.keys() == after.keys()
    assert all(after[k] == pytest.approx(v, abs=1e-5) if v is not None else after[k] is None
               for k, v in before.items())
    assert report2["mean_scores"] == means(again.to_pylist())
