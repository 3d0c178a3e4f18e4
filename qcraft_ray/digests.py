"""A set of 64-bit digests in 8 bytes a slot (a Python set of ints takes ~90 bytes an
entry): what the progress tracker and the replica-death ledger remember of every batch
they have counted, one entry per batch of a multi-billion-prompt run."""

from __future__ import annotations

import hashlib
from array import array

_MASK = (1 << 64) - 1
_EMPTY = 0  # slot marker; the digest 0 is stored as 1
_MAX_LOAD = 0.7


def digest(key: str) -> int:
    """A 64-bit digest of ``key`` (two keys of a run share one with odds ~n^2 / 2^65:
    about 1e-6 at 6.5M batches)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class DigestSet:
    """Open addressing with linear probing over an ``array('Q')``; grows by doubling."""

    def __init__(self, capacity: int = 1024) -> None:
        size = 1
        while size < capacity:
            size *= 2
        self._slots = array("Q", bytes(8 * size))
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _find(self, d: int) -> int:
        """The slot of ``d``, or the empty slot where it would go."""
        slots, mask = self._slots, len(self._slots) - 1
        i = (d * 0x9E3779B97F4A7C15 & _MASK) & mask  # digests are spread; mix anyway
        while True:
            s = slots[i]
            if s in (_EMPTY, d):
                return i
            i = (i + 1) & mask

    def add(self, value: int) -> bool:
        """Add ``value`` (any int; its low 64 bits are kept); True if it was not there."""
        d = (value & _MASK) or 1
        i = self._find(d)
        if self._slots[i] == d:
            return False
        if (self._n + 1) > _MAX_LOAD * len(self._slots):
            self._grow()
            i = self._find(d)
        self._slots[i] = d
        self._n += 1
        return True

    def __contains__(self, value: int) -> bool:
        d = (value & _MASK) or 1
        return self._slots[self._find(d)] == d

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        for d in old:
            if d != _EMPTY:
                self._slots[self._find(d)] = d

    @property
    def nbytes(self) -> int:
        return self._slots.itemsize * len(self._slots)
