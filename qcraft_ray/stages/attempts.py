"""Rows that keep killing their replica: counted across restarts, then recorded as errors.

When a replica process dies (OOM, segfault, a killed node), Ray restarts the actor and
retries its batch. If one row is what kills it, that would repeat forever. The replica
therefore notes the rows of a batch in an :class:`AttemptLedger` (one small Ray actor
per run attempt, outliving replica processes) before generating and clears them after.
A batch that finds any of its rows already noted was interrupted before: it is retried
row by row, each row noted on its own, and a row noted ``max_attempts`` times is not
tried again but returned as an error row with the reason. Rows are keyed by their
:data:`~qcraft_ray.schema.ROW_IDENTITY`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class AttemptLedger:
    """Attempts in flight per row key (a plain class; run as a Ray actor by the pipeline)."""

    def __init__(self) -> None:
        self._attempts: Counter = Counter()

    def get(self, keys: list[str]) -> list[int]:
        return [self._attempts.get(k, 0) for k in keys]

    def mark(self, keys: list[str]) -> None:
        self._attempts.update(keys)

    def clear(self, keys: list[str]) -> None:
        for k in keys:
            self._attempts.pop(k, None)


class RemoteLedger:
    """Synchronous calls to an :class:`AttemptLedger` actor (picklable: a handle)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def get(self, keys: list[str]) -> list[int]:
        import ray

        return ray.get(self._handle.get.remote(keys))

    def mark(self, keys: list[str]) -> None:
        import ray

        ray.get(self._handle.mark.remote(keys))

    def clear(self, keys: list[str]) -> None:
        import ray

        ray.get(self._handle.clear.remote(keys))


class ReplicaDiedOnRow(RuntimeError):
    """Recorded (not raised) for a row whose replica died ``max_attempts`` times."""
