"""The driver's checkpoint writer while a run goes (:mod:`qcraft_ray.ledger.checkpoints`).

Every ``output.checkpoint_poll_s`` it lists ``_manifests/``; once
``output.checkpoint_every`` manifests were committed since its last checkpoint, it reads
them, folds the ones the run accepts into what it holds (the state ``open_run`` left:
every manifest of earlier attempts), stages an Iceberg manifest of their data files when
the run commits to a table (``stage``: :class:`~qcraft_ray.lake.staged.Stager`), and
publishes a checkpoint, while this attempt still holds the folder's lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from qcraft_ray.config import OutputConfig
from qcraft_ray.lake.staged import StagedManifest
from qcraft_ray.ledger.checkpoints import write_checkpoint
from qcraft_ray.ledger.lease import LeaseLost, check
from qcraft_ray.ledger.manifests import iter_manifests, manifest_names
from qcraft_ray.ledger.state import RunState

log = logging.getLogger(__name__)

SLOW_STEP_S = 60.0  # a step still running this long after the run's end is logged

# stages an Iceberg manifest of the run's data files from a first one (lake.staged.Stager)
Stage = Callable[[list[str], int], StagedManifest | None]


class Compactor:
    def __init__(self, state: RunState, every: int, stage: Stage | None = None) -> None:
        self._state = state
        self._every = max(1, every)
        self._stage = stage
        self._skipped: set[str] = set()  # late commits of an earlier attempt: not ours
        self.written = 0

    def step(self) -> bool:
        """Fold in what was committed since; publish a checkpoint when it is enough."""
        state, committed = self._state, self._state.committed
        new = [
            n
            for n in manifest_names(state.folder)
            if n not in committed.names and n not in self._skipped
        ]
        if len(new) < self._every:
            return False
        for m in iter_manifests(state.folder, new):
            if state.accepts(m):
                committed.add(m)
            else:
                self._skipped.add(m.name)
        check(state.folder, state.attempt)  # a driver that lost its lease writes nothing
        if self._stage is not None:
            first = committed.staged_upto
            staged = self._stage(committed.data_files[first:], first)
            if staged is not None:
                committed.lake.append(staged)
        write_checkpoint(state.folder, committed)
        self.written += 1
        return True


@contextmanager
def compacting(
    state: RunState, output: OutputConfig, stage: Stage | None = None
) -> Iterator[Compactor | None]:
    """Run a :class:`Compactor` in a thread while the block runs (none when
    ``output.checkpoint_every`` is 0)."""
    if output.checkpoint_every == 0:
        yield None
        return
    compactor, stop = Compactor(state, output.checkpoint_every, stage), threading.Event()

    def loop() -> None:
        while not stop.wait(output.checkpoint_poll_s):
            try:
                compactor.step()
            except LeaseLost:
                return
            except OSError as e:  # storage down: the next poll tries again
                log.warning("checkpoint of %s: %s", state.folder.path, e)

    thread = threading.Thread(target=loop, name="qcraft-checkpoints", daemon=True)
    thread.start()
    try:
        yield compactor
    finally:
        stop.set()  # a step under way ends first: the finalise then reads a settled state
        thread.join(timeout=SLOW_STEP_S)
        if thread.is_alive():
            log.warning(
                "checkpoint of %s: the writer's step runs past %.0f s; waiting for it",
                state.folder.path,
                SLOW_STEP_S,
            )
            thread.join()
