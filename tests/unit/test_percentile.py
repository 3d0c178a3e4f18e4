"""The per-language percentile filter over committed output (no Ray)."""

from types import SimpleNamespace

import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import OutputConfig
from qcraft_ray.io.write import OutputSink
from qcraft_ray.ledger.counts import RowCounts, count_rows
from qcraft_ray.ledger.manifests import data_and_rejected_files, read_manifests
from qcraft_ray.ledger.units import merge_units
from qcraft_ray.passes.percentile import filter_by_percentile
from qcraft_ray.store import THRESHOLDS_FILE, OutputFolder


def commit(root, task, scores, lang):
    rows = [{S.DOC_ID: f"{lang}{task}-{i}", S.CHUNK_INDEX: 0, S.TYPE: "query", S.SAMPLE_INDEX: 0,
             S.STATUS: "ok", S.SCORE: s, S.LANGUAGE: lang, S.SOURCE_FILE: "f",
             S.SOURCE_ROW: 100 * task + i, S.UNIT: f"f@{task}", S.UNIT_DOCS: len(scores),
             S.DOC_ROWS: 1, S.CHUNK_START: 0, S.CHUNK_END: 1, S.PASSAGE: "p",
             S.PASSAGE_TOKENS: 80, S.MODEL: "m", S.OUTPUT: "q", S.OUTPUT_TOKENS: 3,
             S.PROMPT_TOKENS: 90, S.REPLICA: "h:1", S.COUNTS_DOCUMENT: True,
             S.COUNTS_PASSAGE: True} for i, s in enumerate(scores)]
    rows.append({**rows[0], S.DOC_ID: f"none{task}", S.SOURCE_ROW: 100 * task + 99,
                 S.STATUS: "none", S.SCORE: None})
    rows.append({**rows[0], S.DOC_ID: f"short{task}", S.SOURCE_ROW: 100 * task + 98,
                 S.STATUS: "rejected", S.REASON: "too_short", S.TYPE: None, S.SCORE: None})
    out = OutputConfig(path=root, min_rows_per_file=1)
    OutputSink(OutputFolder(root), out, "run", "a1").write(
        [pa.Table.from_pylist(rows, schema=S.STREAM_SCHEMA)], SimpleNamespace(task_idx=task))


def test_moves_rows_below_language_percentile_once(tmp_path):
    root = str(tmp_path / "out")
    commit(root, 0, [0.1, 0.2, 0.3, 0.4], "english")
    commit(root, 1, [0.5, 0.6, 0.7, 0.8], "english")
    commit(root, 2, [0.05, 0.9], "german")
    folder = OutputFolder(root)
    before = read_manifests(folder)
    after = list(filter_by_percentile(folder, before, 50))
    out = pads.dataset(root, format="parquet").to_table()
    rej = pads.dataset(root + "/_rejected", format="parquet").to_table()
    kept = {r[S.DOC_ID]: r[S.SCORE] for r in out.to_pylist()}
    # english median 0.45, german median 0.475; NONE rows are never filtered
    assert sorted(kept) == ["english1-0", "english1-1", "english1-2", "english1-3",
                            "german2-1", "none0", "none1", "none2"]
    moved = rej.to_pylist()
    moved = [r for r in moved if r[S.REASON] == S.REASON_LOW_SCORE]
    assert len(moved) == 5 and len(rej) == 5 + 3  # plus the 3 too_short rows
    assert moved[0][S.ERROR].startswith("below the 50th percentile of english scores")
    assert all(r[S.SCORE] is not None for r in moved)
    # counters follow the rows; units and token totals are unchanged
    total = {k: sum(m.counts.outputs.get(k, 0) for m in after) for k in ("ok", "none")}
    assert total == {"ok": 5, "none": 3}
    assert sum(m.counts.rejected.get(S.REASON_LOW_SCORE, 0) for m in after) == 5
    assert sum(m.counts.rejected.get("too_short", 0) for m in after) == 3
    assert sum(m.counts.documents for m in after) == sum(m.counts.documents for m in before)
    assert merge_units(m.units for m in after) == merge_units(m.units for m in before)
    assert sum(m.counts.output_tokens for m in after) == 3 * 13
    # the adjusted counters are what counting the files afresh gives
    merged = RowCounts.merge(m.counts for m in after)
    fresh = count_rows(pa.concat_tables([S.to_stream(out), S.to_stream(rej)]))
    for field in ("outputs", "rejected", "by_language", "by_type", "by_language_type",
                  "output_tokens_histogram", "score_histogram"):
        assert getattr(merged, field) == getattr(fresh, field), field
    assert merged.output_scores.keys() == fresh.output_scores.keys()
    for key, sums in merged.output_scores.items():
        assert sums["n"] == fresh.output_scores[key]["n"]
        assert sums["sum"] == pytest.approx(fresh.output_scores[key]["sum"])
    # the manifests on storage are the new ones, and the old data files are gone
    on_disk = read_manifests(folder)
    assert sorted(f for m in on_disk for f in m.files) == data_and_rejected_files(folder)
    assert (tmp_path / "out" / THRESHOLDS_FILE).exists()
    # applying again (e.g. after a crash) changes nothing
    again = list(filter_by_percentile(folder, on_disk, 50))
    assert [m.files for m in again] == [m.files for m in on_disk]
