"""The columnar unit table adds up as the per-unit dicts do, stores and reads back
exactly, and refuses a stored form whose columns disagree. No Ray, no storage."""

from __future__ import annotations

import json
import random

import pytest

from qcraft_ray.ledger import unit_table
from qcraft_ray.ledger.unit_table import UnitTable
from qcraft_ray.ledger.units import UnitCounts, merge_units


def parts(n: int, seed: int = 0) -> list[tuple[dict[str, UnitCounts], range]]:
    """``n`` manifests' units (some shared, some complete, some not) and file indexes."""
    rng = random.Random(seed)
    out, first = [], 0
    for _ in range(n):
        units = {}
        for _ in range(rng.randint(1, 4)):
            unit = f"s3://b/in/{rng.randint(0, 30):03d}.parquet@{rng.randint(0, 5) * 2000}"
            units[unit] = UnitCounts(*(rng.randint(0, 9) for _ in range(4)))
        files = range(first, first + rng.randint(1, 3))
        first = files.stop
        out.append((units, files))
    return out


def table_of(manifests: list[tuple[dict[str, UnitCounts], range]]) -> UnitTable:
    table = UnitTable()
    for units, files in manifests:
        for unit, counts in units.items():
            table.add(unit, counts, files)
    return table


def test_it_adds_up_as_merge_units_does_across_several_merges(monkeypatch):
    monkeypatch.setattr(unit_table, "_MIN_PENDING", 7)  # merge every few additions
    manifests = parts(400)
    table = table_of(manifests)
    expected = merge_units(units for units, _ in manifests)
    assert table.to_dict() == expected
    assert len(table) == len(expected)
    assert table.documents == sum(c.documents for c in expected.values())
    assert table.done() == {u: c.documents for u, c in expected.items() if c.complete}
    assert set(table.unfinished()) == {u for u, c in expected.items() if not c.complete}
    for unit in list(expected)[:20]:
        holders = sorted({f for units, files in manifests if unit in units for f in files})
        assert table.files_of([unit]) == holders
    assert table.files_of(["s3://b/in/unknown.parquet@0"]) == []


def test_the_stored_form_reads_back_exactly():
    table = table_of(parts(300, seed=1))
    back = UnitTable.from_json(json.loads(json.dumps(table.to_json())))
    assert back.to_dict() == table.to_dict()
    for unit in table.to_dict():
        assert back.files_of([unit]) == table.files_of([unit])
    back.add("s3://b/in/new.parquet@0", UnitCounts(1, 1, 1, 1), [999])  # it grows on
    assert back.done()["s3://b/in/new.parquet@0"] == 1
    empty = UnitTable.from_json(UnitTable().to_json())
    assert len(empty) == 0 and empty.unfinished() == []


def test_overfull_units_are_found():
    table = UnitTable()
    table.add("f@0", UnitCounts(3, 3, 1, 1))
    table.add("f@10", UnitCounts(2, 3, 1, 1))
    assert table.first_overfull() is None
    table.add("f@0", UnitCounts(3, 3, 1, 1))  # the same rows twice
    assert table.first_overfull() == ("f@0", UnitCounts(6, 6, 2, 1))
    assert table.unfinished() == ["f@0", "f@10"]


@pytest.mark.parametrize("unit", ["no-row", "f@x", "f@-1", "f@²", f"f@{1 << 32}"])
def test_a_unit_name_not_source_at_row_is_refused(unit):
    with pytest.raises(ValueError, match="is not '<source file>@<first row>'"):
        UnitTable().add(unit, UnitCounts(1, 1, 1, 1))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d.update(row=d["row"] + ",5"), "different lengths"),
        (lambda d: d.update(files=d["files"] + ",5"), "different lengths"),
        (lambda d: d.update(source="0,0", row="10,10"), "not in order"),
        (lambda d: d.update(sources=[]), "source file"),
    ],
)
def test_a_stored_form_that_disagrees_is_refused(damage, message):
    table = UnitTable()
    table.add("a@0", UnitCounts(1, 1, 1, 1), [0])
    table.add("b@10", UnitCounts(1, 1, 1, 1), [1])
    data = table.to_json()
    damage(data)
    with pytest.raises(ValueError, match=message):
        UnitTable.from_json(data)
