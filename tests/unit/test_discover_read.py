"""Input discovery and the reader's document tables, on the bundled sample corpus."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import InputConfig, StorageConfig
from qcraft_ray.errors import InputError
from qcraft_ray.io.discover import discover
from qcraft_ray.io.read import fragments_to_read, read_fragment
from tests.conftest import REPO

SAMPLE = str(REPO / "data/sample")
STORAGE = StorageConfig()


def read_all(cfg):
    plan = discover(cfg, STORAGE)
    return plan, pa.concat_tables(t for f in fragments_to_read(plan, cfg.rows_per_task)
                                  for t in read_fragment(f, cfg, STORAGE))


def test_sample_layouts_and_languages():
    plan, docs = read_all(InputConfig(paths=[SAMPLE]))
    assert len(plan.files) == 22 and plan.total_rows == docs.num_rows == 75
    by_code = {}
    for r in docs.to_pylist():
        by_code.setdefault(r[S.SOURCE_LANGUAGE], set()).add(r[S.LANGUAGE])
    assert by_code["eng_Latn"] == {"english"}  # FineWeb-Edu: language="en"
    assert by_code["jpn_Jpan"] == {"japanese"}  # FineWeb2: language + language_script
    assert by_code["kor_Hang"] == {None}  # unsupported: rejected downstream
    assert len(by_code) == 22
    hq = docs.filter(pa.compute.equal(docs[S.SOURCE_LANGUAGE], "fra_Latn")).to_pylist()
    assert all(r[S.QUALITY_SCORE] is not None and r[S.DATE] for r in hq)
    edu = docs.filter(pa.compute.equal(docs[S.SOURCE_LANGUAGE], "eng_Latn")).to_pylist()
    assert all(r[S.DATE] is None and r[S.URL] and r[S.DOC_ID].startswith("<urn:uuid:")
               for r in edu)


def test_only_needed_columns_are_read():
    plan = discover(InputConfig(paths=[SAMPLE]), STORAGE)
    for f in plan.files:
        assert "file_path" not in f.columns and "top_langs" not in f.columns
        assert "minhash_cluster_size" not in f.columns and "text" in f.columns


def test_language_from_folder_and_forced(tmp_path):
    d = tmp_path / "fineweb2-hq" / "deu_Latn"
    d.mkdir(parents=True)
    pq.write_table(pa.table({"text": ["Hallo Welt"] * 3}), d / "000_00000.parquet")
    _, docs = read_all(InputConfig(paths=[str(tmp_path)]))
    assert docs[S.LANGUAGE].to_pylist() == ["german"] * 3
    assert docs[S.DOC_ID].to_pylist()[1].endswith("000_00000.parquet#1")  # no id column
    _, docs = read_all(InputConfig(paths=[str(tmp_path)], language="dutch"))
    assert docs[S.LANGUAGE].to_pylist() == ["dutch"] * 3


def test_one_file_many_blocks(tmp_path):
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"text": [f"doc {i}" for i in range(1000)], "language": ["en"] * 1000}),
                   path, row_group_size=1000)  # one row group
    cfg = InputConfig(paths=[str(path)], rows_per_task=100)
    plan = discover(cfg, STORAGE)
    blocks = [t for f in fragments_to_read(plan, 100) for t in read_fragment(f, cfg, STORAGE)]
    assert len(blocks) == 10 and all(b.num_rows == 100 for b in blocks)
    rows = pa.concat_tables(blocks)[S.SOURCE_ROW].to_pylist()
    assert rows == list(range(1000))


def test_row_groups_become_separate_tasks(tmp_path):
    path = tmp_path / "rg.parquet"
    pq.write_table(pa.table({"text": ["x"] * 1000}), path, row_group_size=100)
    plan = discover(InputConfig(paths=[str(path)]), STORAGE)
    frags = fragments_to_read(plan, 250)
    assert [f.num_rows for f in frags] == [300, 300, 300, 100]
    assert [f.first_row for f in frags] == [0, 300, 600, 900]


def test_glob(tmp_path):
    plan = discover(InputConfig(paths=[SAMPLE + "/fineweb2-hq/*/*.parquet"]), STORAGE)
    assert len(plan.files) == 15


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.write_bytes(b"not parquet at all"), "not a readable Parquet file"),
    (lambda p: pq.write_table(pa.table({"body": ["x"]}), p), "text column 'text' not found"),
    (lambda p: pq.write_table(pa.table({"text": [1, 2]}), p), "field 'text' has type int64"),
])
def test_bad_files_named(tmp_path, make, needle):
    p = tmp_path / "bad.parquet"
    make(p)
    with pytest.raises(InputError, match=needle) as e:
        discover(InputConfig(paths=[str(tmp_path)]), STORAGE)
    assert str(p) in str(e.value)


def test_no_match():
    with pytest.raises(InputError, match="matches no Parquet file"):
        discover(InputConfig(paths=["/nonexistent/dir"]), STORAGE)
