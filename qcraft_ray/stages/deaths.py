"""Rows that keep killing their replica: deaths counted across restarts, then errors.

When a replica process dies (OOM, segfault, a killed node), Ray restarts the actor and
retries its batch. If one row is what kills it, that would repeat forever. The replica
therefore marks the rows of a batch in :class:`RowDeaths` (one small Ray actor per run
attempt, outliving replica processes) before generating and clears them after: a mark
still there when the batch comes back is a replica that died with the row. A batch that
finds any of its rows marked is retried row by row, each row marked on its own, and a
row whose replica died ``max_deaths`` times is not tried again but returned as an error
row with the reason. Rows are keyed by their :data:`~qcraft_ray.schema.ROW_IDENTITY`.

The counter also keeps a digest of every batch finished in this run attempt, so a batch
that Ray runs again after finishing it (its result was lost with a node) is told apart,
and progress counts each prompt once. It lives on the driver's node.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from qcraft_ray.digests import DigestSet, digest


def batch_digest(keys: list[str]) -> int:
    """A 64-bit digest of a batch's row keys: the same batch, the same digest."""
    return digest("\n".join(keys))


class RowDeaths:
    """Marks per row key (each a replica that had the row in its engine and has not
    cleared it), and the batches finished in this run attempt (a plain class; run as a
    Ray actor by the pipeline)."""

    def __init__(self) -> None:
        self._marks: Counter = Counter()
        self._by: dict[str, str] = {}  # row key -> the replica that last marked it
        self._finished = DigestSet()  # the digest of each finished batch, 8 bytes a slot

    def get(self, keys: list[str]) -> list[int]:
        return [self._marks.get(k, 0) for k in keys]

    def marked_by(self, keys: list[str]) -> set[str]:
        """The replicas whose marks ``keys`` still carry: replicas that died with them."""
        return {self._by[k] for k in keys if k in self._by}

    def mark(self, keys: list[str], replica: str = "") -> None:
        self._marks.update(keys)
        for k in keys:
            self._by[k] = replica

    def begin(self, keys: list[str], replica: str = "") -> list[int]:
        """:meth:`get`, and :meth:`mark` in the same call when no key is marked yet (the
        usual case: one round trip per batch)."""
        before = self.get(keys)
        if not any(before):
            self.mark(keys, replica)
        return before

    def clear(self, keys: list[str], batch: int | None = None) -> bool:
        """Clear ``keys``; with ``batch`` (its :func:`batch_digest`), note the batch as
        finished and say whether it had finished before: generated again, because Ray
        re-ran a task whose result was lost (a node died after it finished)."""
        for k in keys:
            self._marks.pop(k, None)
            self._by.pop(k, None)
        if batch is None:
            return False
        return not self._finished.add(batch)


class RemoteRowDeaths:
    """Synchronous calls to a :class:`RowDeaths` actor (picklable: a handle)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def get(self, keys: list[str]) -> list[int]:
        import ray

        return ray.get(self._handle.get.remote(keys))

    def marked_by(self, keys: list[str]) -> set[str]:
        import ray

        return set(ray.get(self._handle.marked_by.remote(keys)))

    def mark(self, keys: list[str], replica: str = "") -> None:
        import ray

        ray.get(self._handle.mark.remote(keys, replica))

    def begin(self, keys: list[str], replica: str = "") -> list[int]:
        import ray

        return list(ray.get(self._handle.begin.remote(keys, replica)))

    def clear(self, keys: list[str], batch: int | None = None) -> bool:
        import ray

        return bool(ray.get(self._handle.clear.remote(keys, batch)))


class ReplicaDiedOnRow(RuntimeError):
    """Recorded (not raised) for a row whose replica died ``max_deaths`` times."""
