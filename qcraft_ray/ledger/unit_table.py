"""Many manifests' work units, held in columns: no Python object per unit.

A FineWeb2-HQ run commits ~335k manifests of ~8 units each: ~190k units, and ~2.7M
(unit, file) pairs saying which files hold a unit's rows. :class:`UnitTable` keeps
them as numpy arrays. A unit is a key, its source file's index in ``sources`` and its
first row (``"<source>@<row>"``, :func:`~qcraft_ray.ledger.units.unit_id`); its counts
are the four columns of :class:`~qcraft_ray.ledger.units.UnitCounts`. Additions are
appended and merged in bulk: rows and documents written summed, ``documents`` the
largest seen (as ``UnitCounts.__add__``).

Stored (:meth:`UnitTable.to_json`) as columns of comma-separated integers, the sorted
ones as differences, which gzip packs well and numpy parses without a Python int each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from qcraft_ray.ledger.units import UnitCounts

COUNTS = ("rows_written", "rows_expected", "documents_written", "documents")
_ROW_BITS = 32  # a key is source << 32 | first row
_MIN_PENDING = 65536  # units appended before a merge (more as the table grows)


def _text(values: np.ndarray, delta: bool = False) -> str:
    if delta and len(values):
        values = np.diff(values, prepend=0)
    return ",".join(map(str, values.tolist()))


def _ints(text: str, delta: bool = False) -> np.ndarray:
    values = np.fromstring(text, dtype=np.int64, sep=",") if text else np.empty(0, np.int64)
    return np.cumsum(values) if delta else values


class UnitTable:
    """Work units' counts and the files holding their rows, merged across manifests."""

    def __init__(self) -> None:
        self.sources: list[str] = []  # source files, by index
        self._source_index: dict[str, int] = {}
        self._keys = np.empty(0, np.int64)  # sorted, unique
        self._counts = np.empty((0, len(COUNTS)), np.int64)  # aligned with _keys
        self._ref_keys = np.empty(0, np.int64)  # (unit key, file index) pairs
        self._ref_files = np.empty(0, np.int64)
        self._pending: list[int] = []  # appended, not merged: key and the 4 counts each
        self._pending_refs: list[int] = []  # key, file index

    def _key(self, unit: str) -> int:
        key = self._known_key(unit, add=True)
        assert key is not None
        return key

    def _known_key(self, unit: str, add: bool = False) -> int | None:
        """``unit``'s key; None when its source is not in the table (and ``add`` is off)."""
        source, sep, row = unit.rpartition("@")
        if not sep or not (row.isascii() and row.isdigit()) or int(row) >= 1 << _ROW_BITS:
            raise ValueError(f"work unit {unit!r} is not '<source file>@<first row>'")
        index = self._source_index.get(source)
        if index is None:
            if not add:
                return None
            index = self._source_index[source] = len(self.sources)
            self.sources.append(source)
        return index << _ROW_BITS | int(row)

    def add(self, unit: str, counts: UnitCounts, files: Iterable[int] = ()) -> None:
        """Add a manifest's counts of ``unit``, and the indexes of the files it names."""
        key = self._key(unit)
        self._pending += (key, *(getattr(counts, c) for c in COUNTS))
        for f in files:
            self._pending_refs += (key, f)
        if len(self._pending) > 5 * max(_MIN_PENDING, len(self._keys)):
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            new = np.array(self._pending, np.int64).reshape(-1, 1 + len(COUNTS))
            self._pending = []
            keys = np.concatenate([self._keys, new[:, 0]])
            counts = np.concatenate([self._counts, new[:, 1:]])
            order = np.argsort(keys, kind="stable")
            keys, counts = keys[order], counts[order]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            merged = np.add.reduceat(counts, starts, axis=0)
            merged[:, 3] = np.maximum.reduceat(counts[:, 3], starts)
            self._keys, self._counts = keys[starts], merged
        if self._pending_refs:
            refs = np.array(self._pending_refs, np.int64).reshape(-1, 2)
            self._pending_refs = []
            self._ref_keys = np.concatenate([self._ref_keys, refs[:, 0]])
            self._ref_files = np.concatenate([self._ref_files, refs[:, 1]])

    def __len__(self) -> int:
        self._merge()
        return len(self._keys)

    def _masks(self) -> tuple[np.ndarray, np.ndarray]:
        """Which units are complete, and which overfull (:class:`UnitCounts`'s rules)."""
        self._merge()
        written, expected, docs_written, docs = self._counts.T
        complete = (docs_written == docs) & (written == expected)
        overfull = (docs_written > docs) | ((docs_written == docs) & (written > expected))
        return complete, overfull

    def _units(self, mask: np.ndarray) -> Iterator[tuple[str, UnitCounts]]:
        for name, row in zip(self._names(mask), self._counts[mask].tolist(), strict=True):
            yield name, UnitCounts(*row)

    def items(self) -> Iterator[tuple[str, UnitCounts]]:
        """Every unit and its counts, in key order."""
        self._merge()
        return self._units(np.ones(len(self._keys), bool))

    def to_dict(self) -> dict[str, UnitCounts]:
        return dict(self.items())

    @property
    def documents(self) -> int:
        """The documents of every unit."""
        self._merge()
        return int(self._counts[:, 3].sum())

    def first_overfull(self) -> tuple[str, UnitCounts] | None:
        """A unit with more rows than it yields (rows written twice), if any."""
        _, overfull = self._masks()
        return next(self._units(overfull), None)

    def _names(self, mask: np.ndarray) -> list[str]:
        keys = self._keys[mask]
        sources, rows = (keys >> _ROW_BITS).tolist(), (keys & ((1 << _ROW_BITS) - 1)).tolist()
        return [f"{self.sources[s]}@{r}" for s, r in zip(sources, rows, strict=True)]

    def done(self) -> dict[str, int]:
        """Complete units -> their documents (what a resume skips)."""
        complete, _ = self._masks()
        return dict(zip(self._names(complete), self._counts[complete, 3].tolist(), strict=True))

    def unfinished(self) -> list[str]:
        """Units not fully written, in key order."""
        complete, _ = self._masks()
        return self._names(~complete)

    def files_of(self, units: Iterable[str]) -> list[int]:
        """Indexes of the files that hold rows of ``units`` (sorted, each once)."""
        self._merge()
        keys = [k for k in (self._known_key(u) for u in units) if k is not None]
        return np.unique(self._ref_files[np.isin(self._ref_keys, keys)]).tolist()

    def to_json(self) -> dict[str, Any]:
        self._merge()
        order = np.lexsort((self._ref_files, self._ref_keys))
        ref_keys, ref_files = self._ref_keys[order], self._ref_files[order]
        per_unit = np.searchsorted(ref_keys, self._keys, "right") - np.searchsorted(
            ref_keys, self._keys, "left"
        )
        out = {
            "sources": self.sources,
            "source": _text(self._keys >> _ROW_BITS, delta=True),
            "row": _text(self._keys & ((1 << _ROW_BITS) - 1)),
            "files_per_unit": _text(per_unit),
            "files": _text(ref_files, delta=True),
        }
        out.update({c: _text(self._counts[:, i]) for i, c in enumerate(COUNTS)})
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitTable:
        """From :meth:`to_json`'s form; a table whose columns disagree raises ValueError."""
        table = cls()
        table.sources = list(data["sources"])
        table._source_index = {s: i for i, s in enumerate(table.sources)}
        source, row = _ints(data["source"], delta=True), _ints(data["row"])
        counts = [_ints(data[c]) for c in COUNTS]
        per_unit, files = _ints(data["files_per_unit"]), _ints(data["files"], delta=True)
        lengths = {len(source), len(row), len(per_unit), *(len(c) for c in counts)}
        if len(lengths) != 1 or int(per_unit.sum()) != len(files):
            raise ValueError("the units' columns are of different lengths")
        keys = source << _ROW_BITS | row
        if len(keys) and (keys[0] < 0 or (keys[:-1] >= keys[1:]).any()):
            raise ValueError("the units are not in order")
        if len(keys) and int(keys[-1] >> _ROW_BITS) >= len(table.sources):
            raise ValueError("a unit names a source file the table does not have")
        table._keys = keys
        table._counts = np.stack(counts, axis=1) if len(keys) else table._counts
        table._ref_keys, table._ref_files = np.repeat(keys, per_unit), files
        return table
