"""Iceberg on a real pyiceberg SQL catalog (SQLite, local warehouse), no Ray: the run's
files committed exactly once, appends from other runs, refusals, and a table as input."""

from types import SimpleNamespace

import pyarrow as pa
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import InputConfig, OutputConfig, StorageConfig
from qcraft_ray.config.iceberg import IcebergInput, IcebergTable
from qcraft_ray.errors import TableMismatchError
from qcraft_ray.io.discover import discover
from qcraft_ray.io.write import OutputSink
from qcraft_ray.lake.catalog import load_table
from qcraft_ray.lake.commit import check_table, commit_run
from qcraft_ray.ledger.manifests import read_manifests
from qcraft_ray.store import OutputFolder
from qcraft_ray.store.layout import Layout
from tests.unit.test_sink_report import stream_rows

STORAGE = StorageConfig()


def catalog(tmp_path) -> dict[str, str]:
    (tmp_path / "wh").mkdir(exist_ok=True)
    return {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db",
            "warehouse": f"file://{tmp_path}/wh"}


def run_files(tmp_path, name: str, partition_by=("language", "type")) -> list[str]:
    """The data files of one (sink-written) run, as URIs."""
    cfg = OutputConfig(path=str(tmp_path / name), partition_by=list(partition_by))
    folder = OutputFolder(cfg.path)
    sink = OutputSink(folder, cfg, name, "a1", layout=Layout.of(cfg.partition_by))
    sink.write([pa.Table.from_pylist(stream_rows(), schema=S.STREAM_SCHEMA)],
               SimpleNamespace(task_idx=0))
    return [folder.uri(f) for m in read_manifests(folder) for f in m.data_files]


def iceberg_run(tmp_path, docs: int):
    """A run's config committing to table lake.q, and its plan of ``docs`` documents."""
    from qcraft_ray.config import RunConfig
    from qcraft_ray.io.plan import InputFile, InputPlan

    table = {"catalog": catalog(tmp_path), "table": "lake.q"}
    cfg = RunConfig.model_validate({
        "input": {"paths": ["f"]},
        "output": {"path": str(tmp_path / "out"), "min_rows_per_file": 1, "iceberg": table}})
    return table, cfg, InputPlan(files=(InputFile("f", "f", docs, (docs,), ("text",), None, 1),))


def test_commit_once_then_append_another_run(tmp_path):
    cfg = IcebergTable(catalog=catalog(tmp_path), table="lake.queries")
    parts = ("language", "type")
    first = run_files(tmp_path, "run1")
    c1 = commit_run(cfg, STORAGE, "run1", first, S.OUTPUT_SCHEMA, parts)
    assert not c1.already_committed and c1.files == 2
    table = load_table(cfg, STORAGE)
    assert [table.schema().find_column_name(f.source_id) for f in table.spec().fields] == \
        ["language", "type"]
    assert table.scan().to_arrow().num_rows == 3
    # the same run again (a crash between the commit and _SUCCESS): nothing added
    again = commit_run(cfg, STORAGE, "run1", first, S.OUTPUT_SCHEMA, parts)
    assert again.already_committed and again.snapshot_id == c1.snapshot_id
    table = load_table(cfg, STORAGE)
    assert len(table.snapshots()) == 1 and table.scan().to_arrow().num_rows == 3
    # another run appends; the snapshot says which run added what
    c2 = commit_run(cfg, STORAGE, "run2", run_files(tmp_path, "run2"), S.OUTPUT_SCHEMA, parts)
    table = load_table(cfg, STORAGE)
    assert c2.snapshot_id != c1.snapshot_id and len(table.snapshots()) == 2
    rows = table.scan().to_arrow()
    assert rows.num_rows == 6 and set(rows[S.TYPE].to_pylist()) == {"query", "title"}
    assert [s.summary["qcraft.run-id"] for s in table.snapshots()] == ["run1", "run2"]
    # partition pruning works off the inferred partitions
    assert table.scan(row_filter="type == 'title'").to_arrow().num_rows == 2
    # files already in the table are refused under another run id too
    with pytest.raises(ValueError, match="already referenced"):
        commit_run(cfg, STORAGE, "run3", first, S.OUTPUT_SCHEMA, parts)


def test_a_table_partitioned_by_more_than_the_run_is_refused_before_any_engine(tmp_path):
    cfg = IcebergTable(catalog=catalog(tmp_path), table="lake.queries")
    check_table(cfg, STORAGE, S.OUTPUT_SCHEMA, ("language", "type"))  # creates it
    with pytest.raises(TableMismatchError, match=r"partitioned by \['language', 'type'\]"):
        check_table(cfg, STORAGE, S.OUTPUT_SCHEMA, ("language",))
    check_table(cfg, STORAGE, S.OUTPUT_SCHEMA, ("language", "type", "source_language"))


@pytest.mark.parametrize("props", [{"s3.secret-access-key": "x"}, {"token": "x"},
                                   {"uri": "postgresql://me:hunter2@db/cat"}])
def test_secrets_in_catalog_config_are_refused(props):
    with pytest.raises(ValueError, match="secrets"):
        IcebergTable(catalog={"type": "sql", **props}, table="a.b")


def test_a_table_as_input_reads_a_pinned_snapshot(tmp_path):
    cfg = IcebergInput(catalog=catalog(tmp_path), table="src.docs")
    from qcraft_ray.lake.catalog import load

    cat = load(cfg, STORAGE)
    cat.create_namespace("src")
    docs = pa.table({"id": ["a", "b"], "text": ["one", "two"], "language": ["jpn", "jpn"],
                     "language_script": ["Jpan", "Jpan"]})
    table = cat.create_table("src.docs", schema=docs.schema)
    table.append(docs)
    first = discover(InputConfig(iceberg=cfg), STORAGE)
    assert first.total_rows == 2 and first.snapshot_id is not None
    table.append(docs)
    # a resumed run gets the snapshot its first attempt read; a new run the current one
    assert discover(InputConfig(iceberg=cfg), STORAGE,
                    pinned_snapshot=first.snapshot_id).total_rows == 2
    assert discover(InputConfig(iceberg=cfg), STORAGE).total_rows == 4
    pinned = cfg.model_copy(update={"snapshot_id": first.snapshot_id})
    assert discover(InputConfig(iceberg=pinned), STORAGE).total_rows == 2
    with pytest.raises(ValueError, match="exactly one of input.paths and input.iceberg"):
        InputConfig(iceberg=cfg, paths=["x"])


def test_finalise_commits_once_and_rescoring_is_then_refused(tmp_path):
    """Through finalise (no Ray): the report names the commit; a second finalise of the
    same run (a crash before _SUCCESS) adds nothing; qcraft score keeps off the files."""
    from qcraft_ray.config import ScoreConfig
    from qcraft_ray.errors import OutputPathError
    from qcraft_ray.finalise import finalise
    from qcraft_ray.ledger.state import now_iso, open_run
    from qcraft_ray.mode import Mode
    from qcraft_ray.passes.rescore import rescore
    from qcraft_ray.progress import FinalProgress
    from qcraft_ray.store import SUCCESS_FILE
    from tests.unit.test_finalise import doc_rows, write

    table, cfg, plan = iceberg_run(tmp_path, 3)
    state = open_run(cfg, plan, Mode.GENERATE)
    for task in range(3):
        write(cfg, state, task, doc_rows(task))
    report = finalise(cfg, plan, state, FinalProgress(), now_iso(), 0.0)
    assert report.iceberg is not None and report.iceberg.files == 3
    (tmp_path / "out" / SUCCESS_FILE).unlink()
    state = open_run(cfg, plan, Mode.GENERATE)  # the resume after the crash
    again = finalise(cfg, plan, state, FinalProgress(), now_iso(), 0.0)
    assert again.iceberg.already_committed
    assert again.iceberg.snapshot_id == report.iceberg.snapshot_id
    iceberg = load_table(IcebergTable(**table), STORAGE)
    assert len(iceberg.snapshots()) == 1 and iceberg.scan().to_arrow().num_rows == 6
    with pytest.raises(OutputPathError, match="belong to Iceberg table lake.q"):
        rescore(cfg.output.path, STORAGE, ScoreConfig())


def test_a_table_of_an_older_schema_version_gets_the_new_columns(tmp_path):
    from qcraft_ray.lake.catalog import load

    cfg = IcebergTable(catalog=catalog(tmp_path), table="lake.queries")
    new = (S.DETECTED_LANGUAGE, S.WRONG_LANGUAGE, S.COPIED, S.COPY_SHARE)
    old_schema = pa.schema([f for f in S.OUTPUT_SCHEMA if f.name not in new])
    cat = load(cfg, STORAGE)
    cat.create_namespace("lake")
    cat.create_table("lake.queries", schema=old_schema)
    c = commit_run(cfg, STORAGE, "run1", run_files(tmp_path, "run1", ()), S.OUTPUT_SCHEMA, ())
    table = load_table(cfg, STORAGE)
    assert set(new) <= set(table.schema().column_names) and c.files == 1
    assert table.scan().to_arrow().num_rows == 3


def test_data_files_match_pyicebergs_own_conversion(tmp_path, monkeypatch):
    from pyiceberg.io.pyarrow import parquet_file_to_data_file

    from qcraft_ray.lake import data_files as data_files_module
    from qcraft_ray.lake.data_files import data_files

    cfg = IcebergTable(catalog=catalog(tmp_path), table="lake.queries")
    check_table(cfg, STORAGE, S.OUTPUT_SCHEMA, ("language", "type"))
    table = load_table(cfg, STORAGE)
    uris = run_files(tmp_path, "run1") + run_files(tmp_path, "run2")
    ours = data_files(table, uris, threads=3)
    monkeypatch.setattr(data_files_module, "PROCESSES_FROM", 2)  # the pool of processes too
    assert data_files(table, uris) == ours
    theirs = [parquet_file_to_data_file(table.io, table.metadata, u) for u in uris]
    assert len(ours) == len(uris) == 4
    for a, b in zip(ours, theirs, strict=True):
        assert a.file_path == b.file_path and a.record_count == b.record_count
        assert a.file_size_in_bytes == b.file_size_in_bytes
        assert a.partition == b.partition
        for stat in ("column_sizes", "value_counts", "null_value_counts",
                     "lower_bounds", "upper_bounds", "split_offsets"):
            assert getattr(a, stat) == getattr(b, stat), stat
    # bounds on the columns queries filter on, counts on the long text
    names = {f.name: f.field_id for f in table.schema().fields}
    assert names["language"] in ours[0].lower_bounds and names["type"] in ours[0].upper_bounds
    assert names["passage"] not in ours[0].lower_bounds
    assert names["passage"] in ours[0].value_counts
    # a file whose columns the table lacks is refused, as add_files refuses it
    odd = tmp_path / "odd.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"surprise": [1]}), odd)
    with pytest.raises(ValueError):
        data_files(table, [f"file://{odd}"])
