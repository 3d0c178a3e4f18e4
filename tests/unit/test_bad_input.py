"""The bad-input catalogue, without Ray: each case is a clear early error naming the
file and field, or a per-row rejection with its reason."""

from types import SimpleNamespace

import pyarrow as pa
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import InputConfig, PassageConfig, RunConfig, StorageConfig
from qcraft_ray.errors import InputError, OutputPathError
from qcraft_ray.io.discover import discover
from qcraft_ray.io.read import fragments_to_read, read_fragment
from qcraft_ray.io.write import OutputSink
from qcraft_ray.ledger.manifests import Manifest, commit, read_manifests
from qcraft_ray.ledger.state import open_run
from qcraft_ray.ledger.units import drop_written, identity, with_doc_rows
from qcraft_ray.mode import Mode
from qcraft_ray.stages.passages import make_passages
from qcraft_ray.stages.prompts import PromptBuilder
from qcraft_ray.store import OutputFolder
from tests import bad_inputs as B

STORAGE = StorageConfig(attempts=2)


def read_all(paths, **cfg):
    icfg = InputConfig(paths=[str(p) for p in paths], **cfg)
    plan = discover(icfg, STORAGE)
    return plan, pa.concat_tables(t for f in fragments_to_read(plan, icfg.rows_per_task)
                                  for t in read_fragment(f, icfg, STORAGE))


@pytest.mark.parametrize("make", [B.truncated_file, lambda p: p.write_bytes(b"")])
def test_truncated_or_empty_file_named(tmp_path, make):
    p = tmp_path / "bad.parquet"
    make(p)
    with pytest.raises(InputError, match="not a readable Parquet file") as e:
        discover(InputConfig(paths=[str(tmp_path)]), STORAGE)
    assert str(p) in str(e.value)


def test_zero_rows(tmp_path):
    B.zero_rows_file(tmp_path / "zero.parquet")
    with pytest.raises(InputError, match="input has no rows"):
        discover(InputConfig(paths=[str(tmp_path)]), STORAGE)
    B.other_schema_file(tmp_path / "other.parquet")
    plan, docs = read_all([tmp_path])
    assert len(plan.files) == 2 and docs.num_rows == 2


@pytest.mark.parametrize("column,value,needle", [
    ("id", [{"a": 1}], "id field 'id' has type struct"),
    ("quality_score", ["high"], "field 'quality_score' has type string, expected a number"),
    ("language", [3], "field 'language' has type int64"),
])
def test_wrong_types_named(tmp_path, column, value, needle):
    p = tmp_path / "f.parquet"
    pa.parquet.write_table(pa.table({"text": ["x"], column: value}), p)
    with pytest.raises(InputError, match=needle) as e:
        discover(InputConfig(paths=[str(tmp_path)]), STORAGE)
    assert str(p) in str(e.value)


def test_differing_schemas_read_together(tmp_path):
    B.other_schema_file(tmp_path / "a.parquet")
    B.mixed_rows_file(tmp_path / "b.parquet")
    _, docs = read_all([tmp_path])
    by_id = {r[S.DOC_ID]: r for r in docs.to_pylist()}
    # no language columns and no FineWeb2 folder: no language is guessed (the row is
    # rejected as unsupported_language downstream unless input.language forces one)
    assert by_id["7"][S.URL] is None and by_id["7"][S.LANGUAGE] is None
    assert by_id["control"][S.URL] == "https://e.org/2"


def test_row_level_rejections_by_reason(tmp_path, tokenizer):
    expected = B.mixed_rows_file(tmp_path / "m.parquet")
    _, docs = read_all([tmp_path])
    rows = make_passages(docs, PassageConfig(), tokenizer).to_pylist()
    assert {r[S.SOURCE_ROW] for r in rows} == set(range(docs.num_rows))  # all accounted
    for doc_id, outcome in expected.items():
        mine = [r for r in rows if r[S.DOC_ID] == doc_id]
        if outcome == "ok":
            assert any(r[S.STATUS] == S.STATUS_PENDING for r in mine), doc_id
        else:
            assert outcome in {r[S.REASON] for r in mine}, (doc_id, mine)
    bad = next(r for r in rows if r[S.DOC_ID] == "utf8")
    assert bad[S.ERROR] == "text is not valid UTF-8"
    # control characters are kept as they are, and the prompt renders
    control = next(r for r in rows if r[S.DOC_ID] == "control" and r[S.STATUS] == "pending")
    assert "\x07bell" in control[S.PASSAGE]
    prompts = PromptBuilder(tokenizer, ["query"], "m", 4000)(pa.Table.from_pylist(
        [control], schema=S.STREAM_SCHEMA))
    assert prompts[S.STATUS].to_pylist() == ["pending"]


def test_duplicate_doc_ids_are_separate_documents(tmp_path, tokenizer):
    """Policy: each input row is its own document; its identity (source_file,
    source_row, chunk_index, type) stays unique, so resume never confuses them."""
    B.mixed_rows_file(tmp_path / "m.parquet")
    _, docs = read_all([tmp_path])
    rows = with_doc_rows(make_passages(docs, PassageConfig(), tokenizer))
    dups = rows.filter(pa.compute.equal(rows[S.DOC_ID], "dup"))
    assert sorted(set(dups[S.SOURCE_ROW].to_pylist())) == [0, 1]
    first = dups.filter(pa.compute.equal(dups[S.SOURCE_ROW], 0))
    left = drop_written(dups, identity(first))  # the first was written, not the second
    assert set(left[S.SOURCE_ROW].to_pylist()) == {1}


def test_corrupt_data_becomes_unreadable_rows(tmp_path):
    first_bad = B.corrupt_file(tmp_path / "c.parquet")
    plan, docs = read_all([tmp_path], rows_per_task=10)
    assert docs.num_rows == plan.total_rows == 40  # every row still accounted for
    rows = docs.to_pylist()
    reasons = [r[S.REASON] for r in rows]
    # only the broken row group's task is lost; the row group after it reads fine
    assert reasons == [None] * first_bad + [S.REASON_UNREADABLE] * 10 + [None] * 10
    assert "deserialize" in rows[first_bad][S.ERROR].lower()
    assert rows[first_bad][S.DOC_ID] == f"{tmp_path / 'c.parquet'}#{first_bad}"


def test_output_path_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("x")
    cfg = RunConfig.model_validate({"input": {"paths": ["x"]},
                                    "output": {"path": str(tmp_path / "file" / "out")}})
    B.other_schema_file(tmp_path / "o.parquet")
    plan, _ = read_all([tmp_path / "o.parquet"])
    with pytest.raises(OutputPathError, match="cannot create it"):
        open_run(cfg, plan, Mode.GENERATE)


def test_values_from_data_never_leave_output_path(tmp_path):
    """Language codes, ids and file names from the data do not name output files."""
    out = tmp_path / "deep" / "out"
    cfg = RunConfig.model_validate({"input": {"paths": ["x"]}, "output": {"path": str(out)}})
    evil = {S.DOC_ID: "../../../escaped", S.CHUNK_INDEX: 0, S.TYPE: "../t", S.SAMPLE_INDEX: 0,
            S.SOURCE_FILE: "/etc/passwd", S.SOURCE_ROW: 0, S.UNIT: "../../u@0",
            S.UNIT_DOCS: 1, S.LANGUAGE: "../../x", S.SOURCE_LANGUAGE: "/abs/../../y",
            S.STATUS: "ok", S.MODEL: "m", S.PASSAGE: "p", S.CHUNK_START: 0, S.CHUNK_END: 1,
            S.PASSAGE_TOKENS: 80, S.OUTPUT: "q"}
    table = pa.Table.from_pylist([evil, {**evil, S.STATUS: "rejected", S.REASON: "../r"}],
                                 schema=S.STREAM_SCHEMA)
    folder = OutputFolder(str(out))
    OutputSink(folder, cfg.output, "run", "a1").write([table], SimpleNamespace(task_idx=0))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(out in p.parents for p in written)
    # a tampered manifest cannot point resume outside output.path either
    commit(folder, Manifest("zz", 1, ["../../outside.parquet"]))
    with pytest.raises(ValueError, match="outside the output folder"):
        read_manifests(folder)
    with pytest.raises(ValueError, match="not a path inside the output folder"):
        folder.write_bytes("../escaped", b"x")
