"""Partition folders from fixed value sets, file sizing, and the partitioned sink."""

from types import SimpleNamespace

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import OutputConfig
from qcraft_ray.io.write import OutputSink
from qcraft_ray.ledger.manifests import list_output, read_manifests, remove_orphans
from qcraft_ray.store import OutputFolder
from qcraft_ray.store.layout import HIVE_NULL, Layout, sized_files
from tests.unit.test_sink_report import stream_rows


def test_folder_names_come_from_fixed_sets_never_raw_data():
    layout = Layout.of(["language", "source_language"], {"zho_Hans": "chinese"})
    cols = ("language", "source_language")
    assert layout.folder({"language": "japanese", "source_language": "jpn_Jpan"}, cols) == \
        "language=japanese/source_language=jpn_Jpan"
    assert layout.folder({"language": "chinese", "source_language": "zho_Hans"}, cols) == \
        "language=chinese/source_language=zho_Hans"  # a language_map code is known
    for raw in ("../../etc", "a/b", "kor_Hang", "", None, "JAPANESE"):
        got = layout.folder({"language": raw, "source_language": raw}, cols)
        assert got == f"language={HIVE_NULL}/source_language={HIVE_NULL}"
    assert Layout.of(["type"]).folder({"type": "query"}, ("type",)) == "type=query"


def test_groups_never_mix_values_even_when_they_share_a_folder():
    """Unknown codes and nulls share __HIVE_DEFAULT_PARTITION__ but not a file: an
    Iceberg table infers each file's partition from its min and max."""
    t = pa.table({"source_language": ["eng_Latn", "x/../y", None, "eng_Latn", "kor_Hang"],
                  "n": [1, 2, 3, 4, 5]})
    groups = list(Layout.of(["source_language"]).data_groups(t))
    assert [(d, g["n"].to_pylist()) for d, g in groups] == [
        (f"source_language={HIVE_NULL}", [3]),
        ("source_language=eng_Latn", [1, 4]),
        (f"source_language={HIVE_NULL}", [5]),
        (f"source_language={HIVE_NULL}", [2]),
    ]
    assert list(Layout().data_groups(t))[0][0] == ""  # unpartitioned: one group, top level


def test_globs_and_rejected_files():
    assert Layout().data_glob() == "*.parquet"
    assert Layout.of(["language", "type"]).data_glob() == "language=*/type=*/*.parquet"
    assert Layout().rejected_file("part-1-r1.parquet", "low_score") == \
        "_rejected/part-1-r1.parquet"
    assert Layout.of(["language"]).rejected_file("language=greek/part-1-r1.parquet",
                                                 "low_score") == \
        "_rejected/reason=low_score/part-1-r1.parquet"
    assert Layout.of(["language", "type"]).for_schema(S.PASSAGES_SCHEMA).partition_by == \
        ("language",)  # passage rows have no type


def test_sized_files_cut_by_rows_and_bytes():
    folder = OutputFolder("unused")
    rng = __import__("random").Random(0)
    text = ["".join(rng.choice("abcdefghij") for _ in range(2000)) for _ in range(400)]
    t = pa.table({"text": text})
    whole = sized_files(t, folder.encode_parquet, 10_000, 10**9)
    assert len(whole) == 1
    size = len(whole[0])
    cut = sized_files(t, folder.encode_parquet, 10_000, size // 3)
    assert len(cut) >= 3 and all(len(b) <= size // 3 for b in cut)
    assert sum(pq.read_table(pa.BufferReader(b)).num_rows for b in cut) == 400
    assert len(sized_files(t, folder.encode_parquet, 150, 10**9)) == 3  # 150+150+100 rows


def partitioned_write(tmp_path, **out):
    cfg = OutputConfig(path=str(tmp_path / "out"), partition_by=["language", "type"], **out)
    folder = OutputFolder(cfg.path)
    sink = OutputSink(folder, cfg, "run1", "a1", layout=Layout.of(cfg.partition_by))
    table = pa.Table.from_pylist(stream_rows(), schema=S.STREAM_SCHEMA)
    counts = sink.write([table], SimpleNamespace(task_idx=7))
    return cfg, folder, counts


def test_partitioned_sink_one_file_per_partition(tmp_path):
    cfg, folder, counts = partitioned_write(tmp_path)
    [m] = read_manifests(folder)
    assert sorted(m.files) == [
        "_rejected/reason=too_short/part-run1-a1-000007.parquet",
        "_rejected/reason=unsupported_language/part-run1-a1-000007.parquet",
        "language=english/type=query/part-run1-a1-000007-0000.parquet",
        "language=english/type=title/part-run1-a1-000007-0001.parquet",
    ]
    for rel in m.files:  # every file carries the schema version; values match folders
        f = pq.read_table(f"{cfg.path}/{rel}")
        assert S.schema_version_of(f.schema) == S.SCHEMA_VERSION
        for part in rel.split("/")[:-1]:
            if "=" in part:
                col, value = part.split("=")
                assert set(f[col].to_pylist()) == {value}
    data = pads.dataset(cfg.path + "/" + "language=english", format="parquet",
                        partitioning="hive").to_table()
    assert data.num_rows == 3 and counts.outputs == {"ok": 2, "none": 1}
    assert remove_orphans(folder, [m]) == []  # nested committed files are not orphans
    folder.write_bytes("_checkpoints/0000000001-x.ckpt", b"x")  # bookkeeping: neither
    folder.write_bytes("_temporary/t.parquet", b"x")
    listing = list_output(folder)  # what a resume and the finalise list, in one listing
    assert listing.manifests == [m.name] and sorted(listing.files) == sorted(m.files)
    (tmp_path / "out/language=english/type=query/stray.parquet").write_bytes(b"x")
    (tmp_path / "out/_rejected/reason=too_short/stray.parquet").write_bytes(b"x")
    assert sorted(remove_orphans(folder, [m])) == [
        "_rejected/reason=too_short/stray.parquet", "language=english/type=query/stray.parquet"]


def test_partition_by_type_gathers_rows_for_every_type(tmp_path):
    """Each passage yields one row per type: a write task gathers min_rows_per_file rows
    per type, so each type's file still gets about min_rows_per_file rows."""
    from qcraft_ray.config import RunConfig
    from qcraft_ray.mode import Mode
    from qcraft_ray.pipeline import output_sink

    def rows_per_write(partition_by, mode=Mode.GENERATE):
        cfg = RunConfig.model_validate({
            "input": {"paths": ["x"]},
            "output": {"path": str(tmp_path), "partition_by": partition_by,
                       "min_rows_per_file": 100},
            "generation": {"types": ["query", "title", "keywords"]}})
        state = SimpleNamespace(folder=OutputFolder(str(tmp_path)), run_id="r", attempt="a",
                                mode=mode)
        return output_sink(cfg, state, None).min_rows_per_write

    assert rows_per_write(["language", "type"]) == 300
    assert rows_per_write(["language"]) == 100 and rows_per_write([]) == 100
    assert rows_per_write(["type"], Mode.PASSAGES) == 100  # passages have no type


@pytest.mark.parametrize("bad", [["language", "language"], ["url"]])
def test_partition_by_refuses_duplicates_and_free_text_columns(bad):
    with pytest.raises(ValueError):
        OutputConfig(path="o", partition_by=bad)
