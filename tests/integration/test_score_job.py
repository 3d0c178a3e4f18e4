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
from tests.integration.conftest import EAGER, base_overrides, read_output, run_cli
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
    sets = [*base_overrides(tiny_model, [SAMPLE], out_dir), "generation.types=[query]",
            "score.enabled=true", f"score.model={embedding_model}", "score.device=cpu",
            "score.cpus_per_replica=0.5", f"score.min_score={MIN_SCORE}",
            "score.min_percentile=25", EAGER]
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


def committed_output(out_dir: str, tasks: int, rows_per_task: int) -> None:
    """A finished run written by the job's own sink, open_run and finalise (no Ray):
    ``tasks`` manifests of ``rows_per_task`` one-row documents each, unscored."""
    from types import SimpleNamespace

    import pyarrow as pa

    from qcraft_ray.config import RunConfig
    from qcraft_ray.devtools.sample_corpus import load_passages
    from qcraft_ray.finalise import finalise
    from qcraft_ray.io.plan import InputFile, InputPlan
    from qcraft_ray.io.write import OutputSink
    from qcraft_ray.ledger.state import now_iso, open_run
    from qcraft_ray.mode import Mode
    from qcraft_ray.progress import FinalProgress
    from qcraft_ray.store import OutputFolder

    n = tasks * rows_per_task
    cfg = RunConfig.model_validate({"input": {"paths": ["in.parquet"]},
                                    "output": {"path": out_dir, "min_rows_per_file": 1}})
    plan = InputPlan(files=(InputFile("in.parquet", "in.parquet", n, (n,), ("text",), None,
                                      1),))
    state = open_run(cfg, plan, Mode.GENERATE)
    texts = [p["text"] for p in load_passages()]
    sink = OutputSink(OutputFolder.for_run(cfg.output, cfg.storage), cfg.output,
                      state.run_id, state.attempt)
    for task in range(tasks):
        rows = []
        for i in range(task * rows_per_task, (task + 1) * rows_per_task):
            text = texts[i % len(texts)]
            rows.append({S.DOC_ID: f"d{i}", S.CHUNK_INDEX: 0, S.TYPE: "query", S.SAMPLE_INDEX: 0,
                         S.CHUNK_START: 0, S.CHUNK_END: len(text), S.PASSAGE: text,
                         S.PASSAGE_TOKENS: 100, S.LANGUAGE: "english", S.MODEL: "m",
                         S.OUTPUT: " ".join(text.split()[i % 7:i % 7 + 5]),
                         S.STATUS: "ok" if i % 9 else "none", S.SOURCE_FILE: "in.parquet",
                         S.SOURCE_ROW: i, S.UNIT: "in.parquet@0", S.UNIT_DOCS: n,
                         S.DOC_ROWS: 1, S.COUNTS_DOCUMENT: True, S.COUNTS_PASSAGE: True})
            if i % 10 == 0:  # a document with nothing to generate for
                rows[-1].update({S.TYPE: None, S.STATUS: "rejected", S.REASON: "too_short",
                                 S.OUTPUT: None, S.COUNTS_PASSAGE: False})
        sink.write([pa.Table.from_pylist(rows, schema=S.STREAM_SCHEMA)],
                   SimpleNamespace(task_idx=task))
    finalise(cfg, plan, state, FinalProgress(), now_iso(), 0.0)


def test_score_killed_midway_then_rerun(embedding_model, tmp_path):
    """`qcraft score` SIGKILLed after some manifests were switched to scored files: the
    re-run scores only the rest, and every row ends scored once, nothing lost or doubled."""
    import signal
    import subprocess
    import sys
    import time

    from sentence_transformers import SentenceTransformer

    from qcraft_ray.ledger.manifests import data_and_rejected_files, read_manifests
    from qcraft_ray.store import OutputFolder
    from tests.conftest import REPO

    out_dir = str(tmp_path / "out")
    tasks = 30
    committed_output(out_dir, tasks, rows_per_task=12)
    before, before_rej, _ = read_output(out_dir)
    args = [sys.executable, "-m", "qcraft_ray.cli", "score", out_dir, "--model",
            embedding_model, "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "score.log"
    proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while f"scored 3/{tasks} manifests" not in log.read_text():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    folder = OutputFolder(out_dir)
    scored = [m.scored_with is not None for m in read_manifests(folder)]
    assert 3 <= sum(scored) < tasks, "the kill should land mid-way"

    res = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    after, rej, report = read_output(out_dir)
    manifests = read_manifests(folder)
    # each manifest switched once: the ones scored before the kill were not scored again
    assert [(m.scored_with, m.revision) for m in manifests] == [(embedding_model, 1)] * tasks
    assert sorted(f for m in manifests for f in m.files) == data_and_rejected_files(folder)
    key = lambda r: (r[S.DOC_ID], r[S.CHUNK_INDEX], r[S.TYPE])  # noqa: E731
    rows = after.to_pylist()
    assert sorted(map(key, rows)) == sorted(map(key, before.to_pylist()))  # once each
    assert rej.to_pylist() == before_rej.to_pylist()
    ok = [r for r in rows if r[S.STATUS] == "ok"]
    assert all(r[S.SCORE] is not None for r in ok)
    assert all(r[S.SCORE] is None for r in rows if r[S.STATUS] != "ok")
    model = SentenceTransformer(embedding_model, device="cpu")
    for r in ok[::37]:
        a, b = model.encode([r[S.OUTPUT], r[S.PASSAGE]])
        assert r[S.SCORE] == pytest.approx(
            float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)), abs=1e-5)
    assert report["mean_scores"] == means(rows)
    assert report["counts"]["outputs"] == dict(collections.Counter(
        r[S.STATUS] for r in rows))
    assert report["scored"] == {"model": embedding_model, "files": tasks}
