"""Iceberg manifests staged while the run goes (lake/staged.py), on a real pyiceberg SQL
catalog, no Ray: a commit that adds them as they are makes the table a commit that
converts every file makes; staged manifests that no longer fit are converted again; the
checkpoint writer stages, checkpoints keep them, and finalise uses them."""

import pyarrow as pa

from qcraft_ray import schema as S
from qcraft_ray.config.iceberg import IcebergTable
from qcraft_ray.lake.catalog import load, load_table
from qcraft_ray.lake.commit import check_table, commit_run
from qcraft_ray.lake.staged import Stager, stage, usable
from qcraft_ray.ledger.checkpoints import read_checkpoint
from qcraft_ray.ledger.manifests import manifest_names, read_manifests
from qcraft_ray.store import ICEBERG_DIR, OutputFolder
from tests.unit.test_iceberg import STORAGE, catalog, iceberg_run, run_files

PARTS = ("language", "type")
SUMMED = ("added-data-files", "added-records", "added-files-size", "total-data-files",
          "total-records", "total-files-size", "changed-partition-count")
FILE_STATS = ("file_path", "record_count", "file_size_in_bytes", "partition", "value_counts",
              "null_value_counts", "lower_bounds", "upper_bounds", "column_sizes")


def files_of(table) -> list[dict]:
    return sorted(table.inspect.files().select(list(FILE_STATS)).to_pylist(),
                  key=lambda f: f["file_path"])


def rows_of(table, row_filter="True") -> list[tuple]:
    got = table.scan(row_filter=row_filter).to_arrow()
    return sorted(zip(*(got[c].to_pylist() for c in (S.DOC_ID, S.TYPE, S.OUTPUT)), strict=True))


def test_a_commit_of_staged_manifests_makes_the_table_converting_makes(tmp_path):
    staged_cfg = IcebergTable(catalog=catalog(tmp_path), table="lake.staged")
    plain_cfg = IcebergTable(catalog=catalog(tmp_path), table="lake.plain")
    uris = run_files(tmp_path, "run1") + run_files(tmp_path, "run2") + run_files(tmp_path, "run3")
    for cfg in (staged_cfg, plain_cfg):
        check_table(cfg, STORAGE, S.OUTPUT_SCHEMA, PARTS)
    table = load_table(staged_cfg, STORAGE)
    folder = OutputFolder(str(tmp_path / "run1"))
    staged = [stage(table, folder, uris[0:2], 0), stage(table, folder, uris[2:5], 2)]
    assert len(folder.list_files(ICEBERG_DIR)) == 2
    ours = commit_run(staged_cfg, STORAGE, "r", uris, S.OUTPUT_SCHEMA, PARTS, staged)
    theirs = commit_run(plain_cfg, STORAGE, "r", uris, S.OUTPUT_SCHEMA, PARTS)
    assert (ours.staged_manifests, ours.staged_files, ours.files) == (2, 5, 6)
    assert (theirs.staged_manifests, theirs.staged_files) == (0, 0)
    a, b = load_table(staged_cfg, STORAGE), load_table(plain_cfg, STORAGE)
    assert rows_of(a) == rows_of(b) and len(rows_of(a)) == 9
    assert rows_of(a, "type == 'title'") == rows_of(b, "type == 'title'") != []
    assert files_of(a) == files_of(b)
    summary_a, summary_b = a.current_snapshot().summary, b.current_snapshot().summary
    assert {k: summary_a[k] for k in SUMMED} == {k: summary_b[k] for k in SUMMED}
    assert summary_a["qcraft.run-id"] == "r" and summary_a["added-data-files"] == "6"
    # every entry inherits the commit's snapshot id and sequence number
    entries = a.inspect.entries().to_pylist()
    assert len(entries) == 6 and {e["status"] for e in entries} == {1}
    assert {(e["snapshot_id"], e["sequence_number"]) for e in entries} == {(ours.snapshot_id, 1)}
    manifests = a.current_snapshot().manifests(a.io)
    assert sorted(m.manifest_path for m in manifests)[:2] == sorted(s.path for s in staged)
    # the next run's commit carries the staged manifests over
    more = run_files(tmp_path, "run4")
    commit_run(staged_cfg, STORAGE, "r4", more, S.OUTPUT_SCHEMA, PARTS)
    commit_run(plain_cfg, STORAGE, "r4", more, S.OUTPUT_SCHEMA, PARTS)
    a, b = load_table(staged_cfg, STORAGE), load_table(plain_cfg, STORAGE)
    assert rows_of(a) == rows_of(b) and len(rows_of(a)) == 12
    assert a.current_snapshot().summary["total-data-files"] == "8"


def test_staged_manifests_that_no_longer_fit_are_converted_again(tmp_path):
    cfg = IcebergTable(catalog=catalog(tmp_path), table="lake.q")
    uris = run_files(tmp_path, "run1") + run_files(tmp_path, "run2")
    check_table(cfg, STORAGE, S.OUTPUT_SCHEMA, PARTS)
    table = load_table(cfg, STORAGE)
    folder = OutputFolder(str(tmp_path / "run1"))
    staged = [stage(table, folder, uris[0:2], 0), stage(table, folder, uris[2:4], 2)]
    assert usable(table, staged, uris) == 2
    assert usable(table, staged, uris[:3]) == 1  # the second covers more than there is
    assert usable(table, staged[1:], uris) == 0  # not from the first file
    assert usable(table, staged, [uris[1], uris[0], *uris[2:]]) == 0  # other files, or order
    other = staged[1].model_copy(update={"spec_id": staged[1].spec_id + 1})
    assert usable(table, [staged[0], other], uris) == 1  # written for another partition spec
    got = commit_run(cfg, STORAGE, "r", uris[::-1], S.OUTPUT_SCHEMA, PARTS, staged)
    assert (got.staged_manifests, got.files) == (0, 4)
    assert len(rows_of(load_table(cfg, STORAGE))) == 6
    # a table dropped and made again is another table
    load(cfg, STORAGE).drop_table(cfg.table)
    check_table(cfg, STORAGE, S.OUTPUT_SCHEMA, PARTS)
    assert usable(load_table(cfg, STORAGE), staged, uris) == 0


def test_the_checkpoint_writer_stages_and_finalise_commits_what_it_staged(tmp_path):
    from qcraft_ray.finalise import finalise
    from qcraft_ray.ledger.compactor import Compactor
    from qcraft_ray.ledger.state import now_iso, open_run
    from qcraft_ray.mode import Mode
    from qcraft_ray.progress import FinalProgress
    from tests.unit.test_finalise import doc_rows, write

    _, cfg, plan = iceberg_run(tmp_path, 4)
    state = open_run(cfg, plan, Mode.GENERATE)
    check_table(cfg.output.iceberg, STORAGE, S.OUTPUT_SCHEMA, ())
    folder = state.folder
    writer = Compactor(state, 2, Stager(cfg.output.iceberg, STORAGE, folder))
    for task in range(3):
        write(cfg, state, task, doc_rows(task, unit_docs=4))
    assert writer.step()
    (staged,) = state.committed.lake
    assert (staged.first, staged.end, staged.records) == (0, 3, 6)
    kept = read_checkpoint(folder, set(manifest_names(folder)))
    assert kept is not None and kept.lake == [staged]  # what a resume starts from
    # a writer with more to stage than a step takes catches up over its next steps
    capped = Stager(cfg.output.iceberg, STORAGE, folder, most=2)
    names = state.committed.data_files
    first, second = capped(names, 0), capped(names[2:], 2)
    assert (first.first, first.end, second.first, second.end) == (0, 2, 2, 3)
    for extra in (first, second):
        folder.delete(f"{ICEBERG_DIR}/{extra.path.rsplit('/', 1)[1]}")
    write(cfg, state, 3, doc_rows(3, unit_docs=4))  # after the last checkpoint
    leftover = f"{ICEBERG_DIR}/0000000009-deadbeef.avro"  # a writer killed before its checkpoint
    folder.write_bytes(leftover, b"not used")
    report = finalise(cfg, plan, state, FinalProgress(), now_iso(), 0.0)
    assert report.iceberg is not None and report.status == "complete"
    assert (report.iceberg.files, report.iceberg.staged_manifests) == (4, 1)
    assert report.iceberg.staged_files == 3
    assert folder.list_files(ICEBERG_DIR) == [f"{ICEBERG_DIR}/{staged.path.rsplit('/', 1)[1]}"]
    got = load_table(cfg.output.iceberg, STORAGE)
    assert len(rows_of(got)) == 8
    assert {f for m in read_manifests(folder) for f in m.data_files} == {
        f["file_path"].split("/out/", 1)[1] for f in files_of(got)}


def test_nothing_is_staged_for_a_table_of_format_version_1(tmp_path):
    cfg = IcebergTable(catalog=catalog(tmp_path), table="lake.v1")
    cat = load(cfg, STORAGE)
    cat.create_namespace("lake")
    cat.create_table(cfg.table, schema=pa.schema(S.OUTPUT_SCHEMA),
                     properties={"format-version": "1"})
    folder = OutputFolder(str(tmp_path / "run1"))
    uris = run_files(tmp_path, "run1")
    assert Stager(cfg, STORAGE, folder)([u.split("/run1/", 1)[1] for u in uris], 0) is None
    assert folder.list_files(ICEBERG_DIR) == []
    got = commit_run(cfg, STORAGE, "r", uris, S.OUTPUT_SCHEMA, ())
    assert got.files == 2 and len(rows_of(load_table(cfg, STORAGE))) == 3
