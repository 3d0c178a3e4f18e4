"""The realistic-length stand-in model's calibration, on given token streams."""

import numpy as np

from qcraft_ray.devtools.realistic_lengths import first_hits


def test_first_trigger_ends_the_output_and_the_cap_holds():
    rank = np.ones(100)
    rank[[7, 9]] = 0.01  # tokens 7 and 9 trigger at p > 0.01
    seqs = [[1, 2, 7, 3], [9], [1, 2, 3, 4, 5, 6], [5] * 10]
    assert first_hits(seqs, rank, 0.5, cap=8) == [3, 1, 8, 8]
    assert first_hits(seqs, rank, 0.005, cap=8) == [8, 8, 8, 8]  # nothing triggers
