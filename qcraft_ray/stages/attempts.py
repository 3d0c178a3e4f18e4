"""Rows that keep killing their replica: counted across restarts, then recorded as errors.

When a replica process dies (OOM, segfault, a killed node), Ray restarts the actor and
retries its batch. If one row is what kills it, that would repeat forever. The replica
therefore notes the rows of a batch in an :class:`AttemptLedger` (one small Ray actor
per run attempt, outliving replica processes) before generating and clears them after.
A batch that finds any of its rows already noted was interrupted before: it is retried
row by row, each row noted on its own, and a row noted ``max_attempts`` times is not
tried again but returned as an error row with the reason. Rows are keyed by their
:data:`~qcraft_ray.schema.ROW_IDENTITY`.

The ledger also keeps a digest of every batch finished in this attempt, so a batch that
Ray runs again after finishing it (its result was lost with a node) is told apart, and
progress counts each prompt once. The ledger lives on the driver's node.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any


def batch_digest(keys: list[str]) -> int:
    """A 64-bit digest of a batch's row keys: the same batch, the same digest."""
    return int.from_bytes(hashlib.blake2b("\n".join(keys).encode(), digest_size=8).digest(), "big")


class AttemptLedger:
    """Attempts in flight per row key, and the batches finished in this run attempt
    (a plain class; run as a Ray actor by the pipeline)."""

    def __init__(self) -> None:
        self._attempts: Counter = Counter()
        self._by: dict[str, str] = {}  # row key -> the replica that last marked it
        self._finished: set[int] = set()  # digests: 8 bytes of key per batch

    def get(self, keys: list[str]) -> list[int]:
        return [self._attempts.get(k, 0) for k in keys]

    def marked_by(self, keys: list[str]) -> set[str]:
        """The replicas whose marks ``keys`` still carry: replicas that died with them."""
        return {self._by[k] for k in keys if k in self._by}

    def mark(self, keys: list[str], replica: str = "") -> None:
        self._attempts.update(keys)
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
            self._attempts.pop(k, None)
            self._by.pop(k, None)
        if batch is None:
            return False
        again = batch in self._finished
        self._finished.add(batch)
        return again


class RemoteLedger:
    """Synchronous calls to an :class:`AttemptLedger` actor (picklable: a handle)."""

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
    """Recorded (not raised) for a row whose replica died ``max_attempts`` times."""
