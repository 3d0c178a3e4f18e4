"""Resume bookkeeping without Ray: unit totals, identities, run state, orphans."""

from types import SimpleNamespace

import pyarrow as pa
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.errors import OutputPathError
from qcraft_ray.io.plan import InputFile, InputPlan
from qcraft_ray.io.write import OutputSink
from qcraft_ray.ledger import lease
from qcraft_ray.ledger.manifests import read_manifests
from qcraft_ray.ledger.state import open_run as open_and_hold
from qcraft_ray.ledger.units import (
    UnitCounts,
    count_units,
    drop_written,
    identity,
    merge_units,
    with_doc_rows,
)
from qcraft_ray.mode import Mode
from qcraft_ray.store import SUCCESS_FILE, OutputFolder


def rows(unit="f@0", docs=2, source_rows=(0, 0, 1), types=("query", "title", None)):
    out = []
    for i, (r, t) in enumerate(zip(source_rows, types, strict=False)):
        rejected = t is None
        out.append({S.DOC_ID: f"d{r}", S.CHUNK_INDEX: 0 if rejected else i, S.TYPE: t,
                    S.SAMPLE_INDEX: None if rejected else 0,
                    S.SOURCE_FILE: "f", S.SOURCE_ROW: r, S.UNIT: unit, S.UNIT_DOCS: docs,
                    S.STATUS: S.STATUS_REJECTED if rejected else S.STATUS_OK,
                    S.REASON: "too_short" if rejected else None, S.LANGUAGE: "english",
                    S.CHUNK_START: 0, S.CHUNK_END: 1, S.PASSAGE: "p", S.PASSAGE_TOKENS: 80,
                    S.MODEL: "m", S.OUTPUT: "q",
                    # the passage stage marks chunk 0, the fan-out keeps it on one type
                    S.COUNTS_DOCUMENT: t in ("query", None)})
    return pa.Table.from_pylist(out, schema=S.STREAM_SCHEMA)


def test_doc_rows_per_document():
    assert with_doc_rows(rows())[S.DOC_ROWS].to_pylist() == [2, 2, 1]


def test_drop_written_keeps_order_and_null_types():
    t = with_doc_rows(rows())
    written = identity(t.slice(1, 2))  # the title row and the rejected (type null) row
    left = drop_written(t, written)
    assert left[S.TYPE].to_pylist() == ["query"]
    assert drop_written(t, None).num_rows == 3


def test_count_and_merge_units_complete_only_when_every_row_is_in():
    t = with_doc_rows(rows())
    parts = [count_units(t.slice(i, 1)) for i in range(3)]
    assert parts[0] == {"f@0": UnitCounts(1, 2, 1, 2)}  # d0's counting row; d0 yields 2 rows
    assert parts[1] == {"f@0": UnitCounts(1, 0, 0, 2)}  # d0's title row does not count d0
    assert merge_units(parts)["f@0"].complete
    for missing in range(3):  # lose any one row: not complete
        assert not merge_units(p for i, p in enumerate(parts) if i != missing)["f@0"].complete
    assert merge_units([*parts, parts[1], parts[0]])["f@0"].overfull


def open_run(*args):
    """open_run by a driver that then dies: its lease goes (tests/unit/test_lease.py
    covers a live driver's lease)."""
    state = open_and_hold(*args)
    lease.release(state.folder, state.attempt)
    return state


def plan(n=2):
    return InputPlan(files=(InputFile(path="/in/f.parquet", display="/in/f.parquet",
                                      num_rows=n, row_groups=(n,), columns=("text",),
                                      path_code=None, text_bytes=10),))


def cfg(out, **over):
    data = {"input": {"paths": ["/in"]}, "output": {"path": str(out)}}
    for key, value in over.items():
        section, name = key.split("__")
        data.setdefault(section, {})[name] = value
    return RunConfig.model_validate(data)


def commit(c, state, table, task):
    sink = OutputSink(OutputFolder.for_run(c.output, c.storage), c.output, state.run_id,
                      state.attempt)
    sink.write([table], SimpleNamespace(task_idx=task))


def test_fresh_then_resume_skips_done_and_drops_written(tmp_path):
    out = tmp_path / "out"
    c = cfg(out, output__min_rows_per_file=1)
    first = open_run(c, plan(), Mode.GENERATE)
    assert not first.resumed and (out / "_run.json").exists()
    t = with_doc_rows(pa.concat_tables([rows(), rows(unit="f@2", source_rows=(2, 2, 3))]))
    commit(c, first, t.slice(0, 3), 0)  # unit f@0 whole
    commit(c, first, t.slice(3, 1), 1)  # one row of unit f@2
    (out / "part-orphan.parquet").write_bytes(b"half")  # a task died before its commit
    again = open_run(c, plan(), Mode.GENERATE)
    assert again.resumed and again.run_id == first.run_id and again.attempt != first.attempt
    assert again.done_units == {"f@0": 2}
    assert again.removed_orphans == ["part-orphan.parquet"]
    assert not (out / "part-orphan.parquet").exists()
    # rows already written in the unfinished unit are dropped before the engine
    assert drop_written(t.slice(3), again.written).num_rows == 2
    assert len(again.attempts) == 2


def test_changed_config_refused_resources_allowed(tmp_path):
    out = tmp_path / "out"
    open_run(cfg(out), plan(), Mode.GENERATE)
    with pytest.raises(OutputPathError, match=r"generation.max_new_tokens: 128 -> 5"):
        open_run(cfg(out, generation__max_new_tokens=5), plan(), Mode.GENERATE)
    with pytest.raises(OutputPathError, match="input.files"):
        open_run(cfg(out), plan(3), Mode.GENERATE)
    with pytest.raises(OutputPathError, match="mode"):
        open_run(cfg(out), plan(), Mode.PASSAGES)
    with pytest.raises(OutputPathError, match="input.rows_per_task"):  # units would differ
        open_run(cfg(out, input__rows_per_task=7), plan(), Mode.GENERATE)
    assert open_run(cfg(out, generation__batch_size=8, generation__replicas=3), plan(),
                    Mode.GENERATE).resumed
    eager = cfg(out)
    eager.generation.engine.enforce_eager = True  # a speed setting: same outputs
    assert open_run(eager, plan(), Mode.GENERATE).resumed
    fresh = open_run(cfg(out, generation__max_new_tokens=5, output__if_exists="overwrite"),
                     plan(), Mode.GENERATE)
    assert not fresh.resumed


def test_finished_run_is_left_alone(tmp_path):
    out = tmp_path / "out"
    open_run(cfg(out), plan(), Mode.GENERATE)
    (out / SUCCESS_FILE).write_bytes(b"")
    assert open_run(cfg(out), plan(), Mode.GENERATE).complete


def test_foreign_or_strict_output_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="holds no qcraft run"):
        open_run(cfg(out), plan(), Mode.GENERATE)
    with pytest.raises(OutputPathError, match="not empty"):
        open_run(cfg(out, output__if_exists="error"), plan(), Mode.GENERATE)
    (out / "notes.txt").unlink()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        open_run(cfg(tmp_path / "file"), plan(), Mode.GENERATE)


def test_duplicated_rows_are_detected(tmp_path):
    out = tmp_path / "out"
    c = cfg(out, output__min_rows_per_file=1)
    state = open_run(c, plan(), Mode.GENERATE)
    t = with_doc_rows(rows())
    commit(c, state, t, 0)
    commit(c, state, t.slice(0, 1), 1)  # the same row committed twice
    assert len(read_manifests(OutputFolder(str(out)))) == 2
    with pytest.raises(RuntimeError, match="duplicated rows"):  # d0's anchor twice
        open_run(c, plan(), Mode.GENERATE)


def test_a_fingerprint_written_before_a_setting_became_free_still_resumes(tmp_path):
    """_run.json of an earlier release holds generation.engine.enforce_eager (then part of
    the fingerprint): the run resumes whatever the setting is now."""
    import json

    out = tmp_path / "out"
    open_run(cfg(out), plan(), Mode.GENERATE)
    record = json.loads((out / "_run.json").read_text())
    assert "generation.engine.enforce_eager" not in record["fingerprint"]
    record["fingerprint"]["generation.engine.enforce_eager"] = False
    (out / "_run.json").write_text(json.dumps(record))
    eager = cfg(out)
    eager.generation.engine.enforce_eager = True
    assert open_run(eager, plan(), Mode.GENERATE).resumed
