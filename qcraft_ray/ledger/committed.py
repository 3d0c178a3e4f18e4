"""What a set of manifests adds up to, folded one manifest at a time.

The driver never holds every manifest: it folds each into a :class:`Committed` (names,
files, counters merged as they come, work units merged, which files hold each unit's
rows) and lets it go. A :class:`Committed` is also what a checkpoint stores
(:mod:`qcraft_ray.ledger.checkpoints`), in a compact JSON form: units grouped by
source file, files by index, in :data:`PARTS` so a reader that needs only the counts
stops before the files and units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.ledger.manifests import Manifest
from qcraft_ray.ledger.units import UnitCounts
from qcraft_ray.store import REJECTED_DIR

# what a checkpoint stores, in this order; a reader reads up to the part it needs
PARTS = ("counts", "names", "files", "units")
Part = Literal["counts", "files", "units"]  # "counts" reads the names too (to check them)


@dataclass
class Committed:
    names: set[str] = field(default_factory=set)  # the manifests folded in
    files: list[str] = field(default_factory=list)  # their files, data and rejected
    counts: RowCounts = field(default_factory=RowCounts)
    units: dict[str, UnitCounts] = field(default_factory=dict)
    unit_files: dict[str, list[int]] = field(default_factory=dict)  # unit -> file indexes
    from_checkpoint: int = 0  # how many of the names came from a checkpoint (not stored)
    read_upto: Part = "units"  # what of a checkpoint was read: less is never written back

    def add(self, m: Manifest) -> None:
        """Fold ``m`` in (a manifest already folded in is an error: rows twice)."""
        if m.name in self.names:
            raise ValueError(f"manifest {m.name} folded in twice")
        self.names.add(m.name)
        first = len(self.files)
        self.files.extend(m.files)
        indexes = list(range(first, len(self.files)))
        self.counts.add(m.counts)
        for unit, c in m.units.items():
            have = self.units.get(unit)
            self.units[unit] = c if have is None else have + c
            self.unit_files.setdefault(unit, []).extend(indexes)

    def _need(self, part: Part) -> None:
        if PARTS.index(self.read_upto) < PARTS.index(part):
            raise ValueError(f"a fold read up to its {self.read_upto} has no {part}")

    @property
    def data_files(self) -> list[str]:
        self._need("files")
        return [f for f in self.files if not f.startswith(REJECTED_DIR + "/")]

    def files_of(self, units: set[str]) -> list[str]:
        """The files that hold rows of ``units``."""
        self._need("units")
        return sorted({self.files[i] for u in units for i in self.unit_files.get(u, [])})

    def to_json(self) -> dict[str, Any]:
        if self.read_upto != "units":
            raise ValueError(f"a fold read up to its {self.read_upto} is not whole")
        by_source: dict[str, dict[str, list[int]]] = {}
        for unit, c in self.units.items():
            source, row = unit.rsplit("@", 1)
            files = self.unit_files.get(unit, [])
            by_source.setdefault(source, {})[row] = [
                c.rows_written,
                c.rows_expected,
                c.documents_written,
                c.documents,
                *files,
            ]
        return {
            "names": sorted(self.names),
            "files": self.files,
            "counts": self.counts.to_json(),
            "units": by_source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], upto: Part = "units") -> Committed:
        """From :meth:`to_json`'s parts, read up to ``upto`` (the rest may be absent)."""
        files = list(data["files"]) if upto != "counts" else []
        out = cls(set(data["names"]), files, RowCounts.from_json(data["counts"]), read_upto=upto)
        if upto != "units":
            return out
        for source, rows in data["units"].items():
            for row, (rw, re, dw, d, *files) in rows.items():
                unit = f"{source}@{row}"
                out.units[unit] = UnitCounts(rw, re, dw, d)
                out.unit_files[unit] = list(files)
        return out
