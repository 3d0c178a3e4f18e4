import pytest

from qcraft_ray.stages.clean import clean_output


@pytest.mark.parametrize("raw,expected", [
    ("  what is photosynthesis?\n", ("what is photosynthesis?", "ok")),
    ("<think>\nhmm\n</think>\n\nwhat is X?", ("what is X?", "ok")),
    ("<think></think>NONE", ("NONE", "none")),
    ("NONE\n", ("NONE", "none")),
    ("NONE of them", ("NONE of them", "ok")),
    ("", ("", "empty")),
    (None, ("", "empty")),
    ("\n\n  \n", ("", "empty")),
    ("<think>never closed", ("", "empty")),
    ("stray</think> real query", ("real query", "ok")),
    ("query <think>trailing thoughts", ("query", "ok")),
])
def test_clean_output(raw, expected):
    assert clean_output(raw) == expected
