"""Which committed manifests are the run's output, and whether they account for its input.

A manifest of the run is accepted when it was committed before this attempt began, or
by this attempt; the late commit of an earlier, killed attempt (a zombie task) is
deleted, its rows having been generated again. The accepted manifests must then account
for every input document and every work unit.
"""

from __future__ import annotations

from qcraft_ray.ledger.checkpoints import fold
from qcraft_ray.ledger.committed import Committed
from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.ledger.manifests import list_output, remove, remove_uncommitted
from qcraft_ray.ledger.state import RunState
from qcraft_ray.ledger.unit_table import UnitTable
from qcraft_ray.store import OutputFolder


def accepted(folder: OutputFolder, state: RunState) -> tuple[Committed, list[str]]:
    """What the manifests this run accepts add up to (late commits of a killed attempt
    are deleted: their rows were generated again), and the orphan files removed. Starts
    from what the driver holds (``state.committed``: what the resume found and the
    checkpoint writer added), reading only the manifests it does not."""
    listing = list_output(folder)  # one listing for the manifests and the files
    committed = fold(
        folder,
        state.accepts,
        rejected=lambda m: remove(folder, m),
        names=listing.manifests,
        start=state.committed,
    )
    return committed, remove_uncommitted(folder, set(committed.files), listing.files)


def reconcile(documents: int, counts: RowCounts, units: UnitTable) -> list[str]:
    """What keeps the output from accounting for ``documents`` input documents."""
    problems = []
    if counts.documents != documents or units.documents != documents:
        problems.append(
            f"{documents} input documents but {counts.documents} accounted for in the output"
        )
    unfinished = units.unfinished()
    if unfinished:
        problems.append(f"{len(unfinished)} work units not fully written (first: {unfinished[0]})")
    return problems
