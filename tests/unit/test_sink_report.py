"""The output sink on a local folder (no Ray cluster) and the counters it returns."""

from types import SimpleNamespace

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from qcraft_ray import schema as S
from qcraft_ray.config import OutputConfig
from qcraft_ray.io.write import OutputSink
from qcraft_ray.ledger.counts import RowCounts, count_rows
from qcraft_ray.ledger.manifests import read_manifests
from qcraft_ray.ledger.units import UnitCounts
from qcraft_ray.store import OutputFolder


def stream_rows():
    base = {S.SAMPLE_INDEX: 0,
            S.CHUNK_START: 0, S.CHUNK_END: 10, S.PASSAGE: "p", S.PASSAGE_TOKENS: 80,
            S.LANGUAGE: "english", S.SOURCE_LANGUAGE: "eng_Latn", S.MODEL: "m",
            S.SOURCE_FILE: "f", S.SOURCE_ROW: 0, S.PROMPT_TOKENS: 100, S.OUTPUT_TOKENS: 5,
            S.REPLICA: "h:1", S.UNIT: "f@0", S.UNIT_DOCS: 3}
    return [
        {**base, S.DOC_ID: "a", S.CHUNK_INDEX: 0, S.TYPE: "query", S.STATUS: "ok", S.OUTPUT: "q",
         S.COUNTS_DOCUMENT: True, S.COUNTS_PASSAGE: True},
        {**base, S.DOC_ID: "a", S.CHUNK_INDEX: 0, S.TYPE: "title", S.STATUS: "none",
         S.OUTPUT: "NONE"},
        {**base, S.DOC_ID: "a", S.CHUNK_INDEX: 1, S.TYPE: "query", S.STATUS: "ok", S.OUTPUT: "r",
         S.COUNTS_PASSAGE: True},
        {S.DOC_ID: "b", S.CHUNK_INDEX: 0, S.STATUS: "rejected", S.REASON: "too_short",
         S.SOURCE_FILE: "f", S.SOURCE_ROW: 1, S.LANGUAGE: "english", S.CHUNK_START: 0,
         S.CHUNK_END: 3, S.UNIT: "f@0", S.UNIT_DOCS: 3, S.COUNTS_DOCUMENT: True},
        {S.DOC_ID: "c", S.CHUNK_INDEX: 0, S.STATUS: "rejected", S.REASON: "unsupported_language",
         S.SOURCE_FILE: "f", S.SOURCE_ROW: 2, S.SOURCE_LANGUAGE: "kor_Hang", S.CHUNK_START: 0,
         S.CHUNK_END: 3, S.UNIT: "f@0", S.UNIT_DOCS: 3, S.COUNTS_DOCUMENT: True},
    ]


def write(tmp_path, **out):
    cfg = OutputConfig(path=str(tmp_path / "out"), **out)
    sink = OutputSink(OutputFolder(cfg.path), cfg, "run1", "a1")
    table = pa.Table.from_pylist(stream_rows(), schema=S.STREAM_SCHEMA)
    counts = sink.write([table], SimpleNamespace(task_idx=7))
    return cfg, counts


def test_split_and_schemas(tmp_path):
    cfg, counts = write(tmp_path)
    out = pads.dataset(cfg.path, format="parquet").to_table()  # ignores _rejected/
    assert out.schema == S.OUTPUT_SCHEMA and out.num_rows == 3
    rej = pq.read_table(tmp_path / "out/_rejected/part-run1-a1-000007.parquet")
    assert rej.schema == S.REJECTED_SCHEMA
    assert sorted(rej[S.REASON].to_pylist()) == ["too_short", "unsupported_language"]
    assert not (tmp_path / "out/_temporary").exists() or not any(
        (tmp_path / "out/_temporary").iterdir())
    assert counts.documents == 3 and counts.outputs == {"ok": 2, "none": 1}
    assert counts.passages == 2
    assert counts.rejected == {"too_short": 1, "unsupported_language": 1}
    assert counts.by_type == {"query": {"ok": 2}, "title": {"none": 1}}
    assert counts.by_language["unsupported:kor_Hang"] == {"unsupported_language": 1}
    assert counts.prompt_tokens == 300 and counts.by_replica == {"h:1": 3}
    assert counts.by_language_type == {"english/query": {"ok": 2}, "english/title": {"none": 1}}
    assert counts.passage_tokens_histogram == {"70-100": 2}
    assert counts.output_tokens_histogram == {"query": {"5-10": 2}, "title": {"5-10": 1}}


def test_drop_none_records_it(tmp_path):
    cfg, counts = write(tmp_path, drop_none=True)
    out = pads.dataset(cfg.path, format="parquet").to_table()
    assert out.num_rows == 2 and "none" not in out[S.STATUS].to_pylist()
    rej = pq.read_table(tmp_path / "out/_rejected/part-run1-a1-000007.parquet")
    assert S.REASON_NONE_DROPPED in rej[S.REASON].to_pylist()
    assert counts.rejected[S.REASON_NONE_DROPPED] == 1 and counts.documents == 3


def test_max_rows_per_file(tmp_path):
    cfg, _ = write(tmp_path, max_rows_per_file=2)
    files = sorted(p.name for p in (tmp_path / "out").glob("*.parquet"))
    assert files == ["part-run1-a1-000007-0000.parquet", "part-run1-a1-000007-0001.parquet"]


def test_manifest_commits_files_units_and_counts(tmp_path):
    cfg, counts = write(tmp_path)
    [m] = read_manifests(OutputFolder(cfg.path))
    assert (m.attempt, m.task) == ("a1", 7)
    assert sorted(m.files) == ["_rejected/part-run1-a1-000007.parquet",
                               "part-run1-a1-000007-0000.parquet"]
    assert m.units == {"f@0": UnitCounts(5, 0, 3, 3)}  # doc_rows not set here
    assert m.counts == counts


def test_merge_counts():
    t = pa.Table.from_pylist(stream_rows(), schema=S.STREAM_SCHEMA)
    one = count_rows(t)
    two = RowCounts.merge([one, one])
    assert two.documents == 6 and two.outputs["ok"] == 4
    assert two.by_language["english"]["too_short"] == 2
    assert RowCounts.merge([]).documents == 0
    assert two.minus(one) == one and one.minus(one) == RowCounts()


def test_progress_line():
    from qcraft_ray.progress import ProgressTracker, format_line

    t = ProgressTracker()
    t.add({"documents_read": 100, "documents_done": 40, "passages": 90, "prompts": 180,
           "prompts_done": 70, "outputs": 60, "output_tokens": 600, "rejected": 12})
    t.add({"documents_done": 10})
    line = format_line(t.snapshot(), 100, elapsed=10.0)
    # every document read: the prompt total is known, and the ETA comes from prompts
    assert line == ("qcraft progress: documents 50/100 (50.0%), 100 read | passages 90 | "
                    "prompts 70/180 | outputs 60 (6.0/s) | generated tokens 60/s | "
                    "rejected 12 | ETA 0m15s")
    # work done twice is counted apart: a lost replica's batch retried, and a batch
    # generated again after its result was lost with a node
    t.add({"prompts_done": 8, "outputs": 8}, once="batch:1")  # the work, once per batch
    t.add({"replicas_lost": 1, "prompts_retried": 8})
    t.add({"prompts_done": 8, "outputs": 8}, once="batch:2")
    t.add({"prompts_done": 8, "outputs": 8}, once="batch:2")  # batch 2 generated again
    t.add({"prompts_repeated": 8})
    t.add({"prompts_repeated": 8})  # a repeat whose first count was lost with its node
    t.add({"prompts_done": 8, "outputs": 8}, once="batch:3")
    line = format_line(t.snapshot(), 100, elapsed=10.0)
    assert "prompts 94/180 | outputs 84 (8.4/s)" in line
    assert "retried: 1 replicas lost, 8 prompts retried, 16 generated again" in line
    # a write task that Ray runs again commits the same manifest: counted once
    t.add({"documents_done": 5}, once="commit:a1-000001.json")
    t.add({"documents_done": 5}, once="commit:a1-000001.json")
    assert t.snapshot()["documents_done"] == 55
    # not every document read yet: no prompt total; a resumed run's ETA leaves out
    # the documents finished before it
    line = format_line({"documents_read": 60, "documents_done": 60}, 100, 10.0,
                       already_done=50)
    assert "prompts 0 |" in line and line.endswith("ETA 0m40s")
    assert "read" not in line  # read no further than committed: nothing to add


def test_engine_summary_from_occupancy_snapshots():
    from qcraft_ray.progress import ProgressTracker
    from qcraft_ray.report.model import RunReport
    from qcraft_ray.telemetry import (
        EngineOccupancy,
        EngineReport,
        OccupancySnapshot,
        ReplicaReady,
    )

    t = ProgressTracker()
    assert t.engine_summary().model_dump() == {
        "occupancy": None, "first_output_s": None, "first_output_at": None, "replicas": {}}
    t.replica_ready(ReplicaReady("a", 12.5, 1000.0, "n1", "10.0.0.1"))
    t.replica_ready(ReplicaReady("b", 20.0, 1000.0))
    t.replica_ready(ReplicaReady("c", 21.5, 1001.0, "n2", "10.0.0.2"))  # never got work
    # a: 10 s at 48 of 64 slots on average, 2 s with an empty queue, first output at 1014
    t.engine(EngineReport("a", OccupancySnapshot(64, 5.0, 100.0, 1.0, 0.0, 40, 1014.0)))
    t.engine(EngineReport("a", OccupancySnapshot(64, 10.0, 480.0, 2.0, 0.5, 90, 1014.0)))
    t.engine(EngineReport("b", OccupancySnapshot(32, 10.0, 160.0, 10.0, 5.0, 50, 1021.0)))
    t.engine(EngineReport("c", None))
    t.add({"outputs": 1})  # counters leave the engines alone
    summary = t.engine_summary()
    assert isinstance(summary, EngineOccupancy)
    assert RunReport.model_fields["engine"].annotation is EngineOccupancy  # the report's shape
    got = summary.model_dump()
    assert got["replicas"]["a"] == {
        "node_id": "n1", "node_address": "10.0.0.1", "load_s": 12.5, "first_output_s": 14.0,
        "span_s": 10.0, "occupancy": 0.75, "mean_running": 48.0, "queue_empty_fraction": 0.2,
        "idle_fraction": 0.05, "steps": 90, "startup": None, "compile_cache": None}
    assert got["replicas"]["b"]["occupancy"] == 0.5
    assert got["replicas"]["c"]["occupancy"] is None and got["replicas"]["c"]["load_s"] == 21.5
    assert got["occupancy"] == round((480 + 160) / (10 * 64 + 10 * 32), 4)
    assert got["first_output_at"] == 1014.0
    assert EngineOccupancy.model_validate(got) == summary
    # a report of an earlier version (time inside calls) still reads
    old = {"busy_fraction": 0.9, "replicas": {"a": {"busy_s": 9.0, "span_s": 10.0,
           "busy_fraction": 0.9, "node_id": "n1", "node_address": None, "load_s": 3.0}}}
    assert EngineOccupancy.model_validate(old).replicas["a"].load_s == 3.0
    assert t.snapshot() == {"outputs": 1}
