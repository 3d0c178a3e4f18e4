"""input.shard: n jobs cover the input exactly once, balanced by rows, with no talk."""

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qcraft_ray.config import InputConfig, StorageConfig
from qcraft_ray.errors import InputError
from qcraft_ray.io.discover import discover
from qcraft_ray.io.plan import InputFile, all_fragments, shard_of


def files(sizes: list[list[int]]) -> tuple[InputFile, ...]:
    return tuple(InputFile(f"f{i}", f"f{i}", sum(g), tuple(g), ("text",), None, 1)
                 for i, g in enumerate(sizes))


@pytest.mark.parametrize("seed", range(20))
def test_shards_partition_the_fragments_and_balance_rows(seed):
    rng = random.Random(seed)
    sizes = [[rng.randint(1, 400) for _ in range(rng.randint(1, 6))]
             for _ in range(rng.randint(1, 12))]
    frags = all_fragments(files(sizes), rows_per_task=rng.choice([1, 100, 500]))
    total = sum(f.num_rows for f in frags)
    biggest = max(f.num_rows for f in frags)
    for n in (1, 2, 3, 7):
        shards = [shard_of(frags, i, n) for i in range(n)]
        keys = [f.key for s in shards for f in s]
        assert sorted(keys) == sorted(f.key for f in frags)  # each fragment once
        assert len(set(keys)) == len(keys)
        for s in shards:  # within one fragment of an even share
            assert abs(sum(f.num_rows for f in s) - total / n) <= biggest
        again = [shard_of(list(frags), i, n) for i in range(n)]
        assert again == shards  # deterministic


def corpus(tmp_path, n_files=3, rows=50):
    for i in range(n_files):
        pq.write_table(pa.table({"text": [f"doc {i}-{r}" for r in range(rows)]}),
                       tmp_path / f"part-{i}.parquet", row_group_size=10)
    return str(tmp_path)


def test_discover_keeps_the_shard_and_reports_its_share(tmp_path):
    path = corpus(tmp_path)
    whole = discover(InputConfig(paths=[path], rows_per_task=10), StorageConfig())
    shares = [discover(InputConfig(paths=[path], rows_per_task=10, shard=f"{i}/4"),
                       StorageConfig()) for i in range(4)]
    assert sum(p.total_rows for p in shares) == whole.total_rows == 150
    assert sorted(p.shard.describe()["documents"] for p in shares) == [30, 40, 40, 40]
    assert all(p.shard.all_rows == 150 and p.shard.all_fragments == 15 for p in shares)
    # a shard keeps only the files it reads
    assert [f.display.rsplit("/", 1)[-1] for f in shares[0].files] == ["part-0.parquet"]


def test_empty_shard_and_bad_shard_are_refused(tmp_path):
    path = corpus(tmp_path, n_files=1, rows=10)
    shares = []
    for i in range(2):  # one read unit: one shard gets it, the other is refused by name
        try:
            shares.append(discover(InputConfig(paths=[path], rows_per_task=10,
                                               shard=f"{i}/2"), StorageConfig()).total_rows)
        except InputError as e:
            assert f"shard {i}/2 holds no rows" in str(e) and "1 read units" in str(e)
            shares.append(None)
    assert sorted(shares, key=str) == [10, None]
    for bad in ("2/2", "1", "-1/3", "a/b"):
        with pytest.raises(ValueError, match="shard"):
            InputConfig(paths=[path], shard=bad)
