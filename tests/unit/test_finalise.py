"""Finalise without Ray: reconcile committed manifests, write the typed report, mark done."""

from types import SimpleNamespace

import pyarrow as pa
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.errors import OutputPathError
from qcraft_ray.finalise import ReconciliationError, finalise
from qcraft_ray.io.plan import InputFile, InputPlan
from qcraft_ray.io.write import OutputSink
from qcraft_ray.ledger.state import now_iso, open_run
from qcraft_ray.mode import Mode
from qcraft_ray.progress import FinalProgress
from qcraft_ray.report.model import RunReport, read_run
from qcraft_ray.report.summary import summarize
from qcraft_ray.store import REPORT_FILE, SUCCESS_FILE, TEMP_DIR, OutputFolder


def setup(tmp_path, docs=3):
    cfg = RunConfig.model_validate({"input": {"paths": ["f"]},
                                    "output": {"path": str(tmp_path / "out"),
                                               "min_rows_per_file": 1}})
    plan = InputPlan(files=(InputFile("f", "f", docs, (docs,), ("text",), None, 1),))
    return cfg, plan, open_run(cfg, plan, Mode.GENERATE)


def doc_rows(source_row, types=("query", "title"), unit_docs=3):
    """One document of one passage, generated for ``types``."""
    return [{S.DOC_ID: f"d{source_row}", S.CHUNK_INDEX: 0, S.TYPE: t, S.SAMPLE_INDEX: 0,
             S.STATUS: "ok",
             S.OUTPUT: "q", S.LANGUAGE: "english", S.SOURCE_FILE: "f",
             S.SOURCE_ROW: source_row, S.UNIT: "f@0", S.UNIT_DOCS: unit_docs,
             S.DOC_ROWS: len(types),
             S.CHUNK_START: 0, S.CHUNK_END: 1, S.PASSAGE: "p", S.PASSAGE_TOKENS: 80,
             S.MODEL: "m", S.OUTPUT_TOKENS: 4, S.PROMPT_TOKENS: 90,
             S.COUNTS_DOCUMENT: i == 0, S.COUNTS_PASSAGE: i == 0} for i, t in enumerate(types)]


def write(cfg, state, task, rows):
    sink = OutputSink(OutputFolder.for_run(cfg.output, cfg.storage), cfg.output,
                      state.run_id, state.attempt)
    sink.write([pa.Table.from_pylist(rows, schema=S.STREAM_SCHEMA)],
               SimpleNamespace(task_idx=task))


def test_complete_run_is_reported_and_marked(tmp_path):
    cfg, plan, state = setup(tmp_path)
    for task, doc in enumerate(range(3)):
        write(cfg, state, task, doc_rows(doc))
    report = finalise(cfg, plan, state, FinalProgress(), now_iso(), 0.0)
    out = tmp_path / "out"
    assert (out / SUCCESS_FILE).exists() and not (out / TEMP_DIR).exists()
    assert report.status == "complete" and report.documents_accounted == 3
    assert report.counts.passages == 3 and report.output.files == 3
    folder, again = read_run(str(out), cfg.storage)
    assert again == report  # what was written is what is read
    summary = summarize(str(out), again.counts)
    assert summary.rows == 6 and summary.passages == 3
    assert summary.by_language_type == {"english/query": {"ok": 3}, "english/title": {"ok": 3}}


def test_missing_rows_make_an_incomplete_run(tmp_path):
    cfg, plan, state = setup(tmp_path)
    write(cfg, state, 0, doc_rows(0))
    write(cfg, state, 1, doc_rows(1)[:1])  # d1's title row never committed
    with pytest.raises(ReconciliationError, match="3 input documents but 2 accounted"):
        finalise(cfg, plan, state, FinalProgress(), now_iso(), 0.0)
    report = RunReport.read(OutputFolder(cfg.output.path))
    assert report.status == "incomplete" and not (tmp_path / "out" / SUCCESS_FILE).exists()
    assert any("work units not fully written" in p for p in report.problems)


def test_report_of_an_older_bookkeeping_is_refused(tmp_path):
    cfg, plan, state = setup(tmp_path, docs=1)
    write(cfg, state, 0, doc_rows(0, unit_docs=1))
    finalise(cfg, plan, state, FinalProgress(), now_iso(), 0.0)
    folder = OutputFolder(cfg.output.path)
    old = folder.read_json(REPORT_FILE)
    del old["bookkeeping"]
    folder.write_json(REPORT_FILE, old)
    with pytest.raises(OutputPathError, match="bookkeeping version 1"):
        read_run(cfg.output.path, cfg.storage)
