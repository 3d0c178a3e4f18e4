"""What a set of manifests adds up to, folded one manifest at a time.

The driver never holds every manifest: it folds each into a :class:`Committed` (names,
files, counters merged as they come, work units and which files hold each unit's rows
merged in columns: :class:`~qcraft_ray.ledger.unit_table.UnitTable`) and lets it go. A
:class:`Committed` is also what a checkpoint stores
(:mod:`qcraft_ray.ledger.checkpoints`), in a compact JSON form: files by index, units
as columns, in :data:`PARTS` so a reader that needs only the counts stops before the
files and units. With ``output.iceberg``, it also holds the Iceberg manifests staged for
its data files (:mod:`qcraft_ray.lake.staged`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from qcraft_ray.lake.staged import StagedManifest
from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.ledger.manifests import Manifest
from qcraft_ray.ledger.unit_table import UnitTable
from qcraft_ray.store import REJECTED_DIR

# what a checkpoint stores, in this order; a reader reads up to the part it needs
PARTS = ("counts", "names", "files", "lake", "units")
Part = Literal["counts", "files", "units"]  # "counts" reads the names too (to check them);
# "units" reads all


@dataclass
class Committed:
    names: set[str] = field(default_factory=set)  # the manifests folded in
    files: list[str] = field(default_factory=list)  # their files, data and rejected
    counts: RowCounts = field(default_factory=RowCounts)
    units: UnitTable = field(default_factory=UnitTable)  # and which files hold their rows
    lake: list[StagedManifest] = field(default_factory=list)  # staged for data_files, in order
    from_checkpoint: int = 0  # how many of the names came from a checkpoint (not stored)
    read_upto: Part = "units"  # what of a checkpoint was read: less is never written back
    whole: bool = False  # read from a whole checkpoint (a finished output's; not stored)

    def add(self, m: Manifest) -> None:
        """Fold ``m`` in (a manifest already folded in is an error: rows twice)."""
        if m.name in self.names:
            raise ValueError(f"manifest {m.name} folded in twice")
        self.names.add(m.name)
        first = len(self.files)
        self.files.extend(m.files)
        indexes = range(first, len(self.files))
        self.counts.add(m.counts)
        for unit, c in m.units.items():
            self.units.add(unit, c, indexes)

    def _need(self, part: Part) -> None:
        if PARTS.index(self.read_upto) < PARTS.index(part):
            raise ValueError(f"a fold read up to its {self.read_upto} has no {part}")

    @property
    def data_files(self) -> list[str]:
        self._need("files")
        return [f for f in self.files if not f.startswith(REJECTED_DIR + "/")]

    @property
    def staged_upto(self) -> int:
        """How many of :attr:`data_files` the staged Iceberg manifests cover."""
        return self.lake[-1].end if self.lake else 0

    def files_of(self, units: Iterable[str]) -> list[str]:
        """The files that hold rows of ``units``."""
        self._need("units")
        return sorted({self.files[i] for i in self.units.files_of(units)})

    def to_json(self) -> dict[str, Any]:
        if self.read_upto != "units":
            raise ValueError(f"a fold read up to its {self.read_upto} is not whole")
        return {
            "names": sorted(self.names),
            "files": self.files,
            "counts": self.counts.to_json(),
            "lake": [s.model_dump(mode="json") for s in self.lake],
            "units": self.units.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], upto: Part = "units") -> Committed:
        """From :meth:`to_json`'s parts, read up to ``upto`` (the rest may be absent)."""
        files = list(data["files"]) if upto != "counts" else []
        out = cls(set(data["names"]), files, RowCounts.from_json(data["counts"]), read_upto=upto)
        if upto == "units":
            out.units = UnitTable.from_json(data["units"])
            out.lake = [StagedManifest.model_validate(s) for s in data.get("lake", [])]
        return out
