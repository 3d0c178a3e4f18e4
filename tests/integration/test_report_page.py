"""The report page's examples in a real browser: hostile text (script tags, closing
tags, javascript: links, bidi overrides, 1 MB of text) renders as inert text, the
layout holds and the page stays small. The output is written by the job's own sink and
finalise (no Ray, no engine: only the page is under test here)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa

from qcraft_ray import schema as S
from tests.integration.browser import render
from tests.integration.conftest import run_cli

PWN = "document.body.setAttribute('data-pwned', '{}')"
HOSTILE_OUTPUT = f"<script>{PWN.format(1)}</script> q"
HOSTILE_PASSAGE = (f'</td></tr></table><img src=x onerror="{PWN.format(2)}">'
                   f'<a href="javascript:{PWN.format(3)}">click</a> \u202eevil\u202c '
                   + "x" * 1_000_000)


def hostile_output(out_dir: str) -> None:
    from qcraft_ray.config import RunConfig
    from qcraft_ray.finalise import finalise
    from qcraft_ray.io.plan import InputFile, InputPlan
    from qcraft_ray.io.write import OutputSink
    from qcraft_ray.ledger.state import now_iso, open_run
    from qcraft_ray.mode import Mode
    from qcraft_ray.progress import FinalProgress
    from qcraft_ray.store import OutputFolder

    cfg = RunConfig.model_validate({"input": {"paths": ["in.parquet"]},
                                    "output": {"path": out_dir, "min_rows_per_file": 1},
                                    "report": {"examples_per_language": 2}})
    n = 4
    plan = InputPlan(files=(InputFile("in.parquet", "in.parquet", n, (n,), ("text",), None,
                                      1),))
    state = open_run(cfg, plan, Mode.GENERATE)
    sink = OutputSink(OutputFolder.for_run(cfg.output, cfg.storage), cfg.output,
                      state.run_id, state.attempt)
    kinds = [("ok", 0.01, False), ("none", None, None), ("ok", 0.9, True), ("ok", 0.5, False)]
    rows = [{S.DOC_ID: f"d{i}", S.CHUNK_INDEX: 0, S.TYPE: "query", S.SAMPLE_INDEX: 0,
             S.CHUNK_START: 0,
             S.CHUNK_END: len(HOSTILE_PASSAGE), S.PASSAGE: HOSTILE_PASSAGE,
             S.PASSAGE_TOKENS: 100, S.LANGUAGE: "danish", S.MODEL: "m",
             S.OUTPUT: "NONE" if status == "none" else HOSTILE_OUTPUT, S.STATUS: status,
             S.SCORE: score, S.WRONG_LANGUAGE: wrong,
             S.DETECTED_LANGUAGE: "<b>english</b>" if wrong else None,
             S.SOURCE_FILE: "in.parquet", S.SOURCE_ROW: i, S.UNIT: "in.parquet@0",
             S.UNIT_DOCS: n, S.DOC_ROWS: 1, S.COUNTS_DOCUMENT: True, S.COUNTS_PASSAGE: True}
            for i, (status, score, wrong) in enumerate(kinds)]
    sink.write([pa.Table.from_pylist(rows, schema=S.STREAM_SCHEMA)],
               SimpleNamespace(task_idx=0))
    finalise(cfg, plan, state, FinalProgress(), now_iso(), 0.0)


def test_hostile_text_in_examples_is_inert(tmp_path):
    out_dir = str(tmp_path / "out")
    hostile_output(out_dir)
    report = json.loads((Path(out_dir) / "_report.json").read_text())
    examples = report["examples"]["danish"]
    assert [e["score"] for e in examples["lowest_score"]] == [0.01, 0.5]
    assert len(examples["none"]) == 1 and len(examples["wrong_language"]) == 1
    assert "sample" not in examples  # plain outputs only for a language without these
    assert all(len(e["passage"]) <= 301 for k in examples.values() for e in k)
    res = run_cli(["report", out_dir], dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    page = Path(out_dir) / "_report.html"
    assert page.stat().st_size < 100_000  # 1 MB passages, a small page
    dom = render(f"file://{page}", screenshot=str(tmp_path / "page.png"))
    body = re.search(r"<body[^>]*>", dom).group()
    assert "data-pwned" not in body  # no script ran: not inline, not onerror, not a link
    assert "<img" not in dom and "<a " not in dom and "<script" not in dom
    assert "&lt;script&gt;" in dom and "javascript:" in dom  # shown, as text
    assert "\u202e" not in dom and "&lt;U+202E&gt;" in dom  # the override is shown, inert
    assert len(re.findall(r'<tr data-example="', dom)) == 4  # one row per example
    tables = re.findall(r"<table", dom)
    assert len(tables) == len(re.findall(r'<table (?:data-table|class="examples")', dom))
    assert "found &lt;b&gt;english&lt;/b&gt;" in dom
    # the terminal view: the same examples, control characters shown as code points
    res = run_cli(["inspect", out_dir, "--lowest", "1"], dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("score=") == 1 and "score=0.0100" in res.stdout
    assert "\u202e" not in res.stdout and "<U+202E>" in res.stdout
    res = run_cli(["inspect", out_dir, "--wrong-language", "--type", "query"], dict(os.environ))
    assert "found=<b>english</b>" in res.stdout and res.stdout.count("output:") == 1
