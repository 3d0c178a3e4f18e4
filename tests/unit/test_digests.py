"""The compact digest set: a set's answers in 8-16 bytes an entry."""

from __future__ import annotations

import random

from qcraft_ray.digests import DigestSet, digest


def test_answers_as_a_set_through_growth():
    rng = random.Random(7)
    values = [rng.getrandbits(64) for _ in range(20_000)] + [0, 2**64 - 1]
    s, ref = DigestSet(capacity=4), set()
    for v in values + values[:500]:
        assert s.add(v) == (v not in ref)
        ref.add(v)
    assert len(s) == len(ref)
    assert all(v in s for v in ref)
    assert not any(rng.getrandbits(64) in s for _ in range(1000))
    assert s.nbytes <= 16 * 8 * len(ref)  # at most 16 bytes an entry after a doubling


def test_zero_and_one_are_one_slot_each_time():
    """0 is the empty marker, so it is stored as 1: the two share an entry (odds 2^-63)."""
    s = DigestSet()
    assert s.add(0) and not s.add(1) and 0 in s and 1 in s


def test_digest_of_a_key_is_stable():
    assert digest("batch:1") == digest("batch:1") != digest("batch:2")
    assert 0 <= digest("x") < 2**64
