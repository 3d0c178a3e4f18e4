"""The bad-input catalogue through the real job: awkward rows and a corrupt file are
recorded by reason and the counts reconcile; unusable inputs and outputs fail before
any engine starts, with messages that name the file and never the credentials."""

from __future__ import annotations

import collections

import pyarrow.compute as pc

from qcraft_ray import schema as S
from tests import bad_inputs as B
from tests.integration.conftest import EAGER, base_overrides, read_output, run_cli
from tests.integration.test_job import LOCAL, SAMPLE


def sets(items: list[str]) -> list[str]:
    return sum((["--set", o] for o in items), [])


def test_bad_rows_and_corrupt_file_recorded(ray_cluster, tiny_model, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    expected = B.mixed_rows_file(corpus / "mixed.parquet")
    B.zero_rows_file(corpus / "zero.parquet")
    B.other_schema_file(corpus / "other.parquet")
    first_bad = B.corrupt_file(corpus / "corrupt.parquet")
    out_dir = str(tmp_path / "out")
    res = run_cli(["run", LOCAL, "--address", ray_cluster.address,
                   *sets(base_overrides(tiny_model, [str(corpus)], out_dir)),
                   "--set", "generation.types=[query]", "--set", "input.rows_per_task=10",
                   "--set", EAGER], ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    out, rej, report = read_output(out_dir)
    total = 9 + 0 + 2 + 40
    assert report["status"] == "complete" and report["documents_accounted"] == total
    reasons = collections.Counter(rej[S.REASON].to_pylist())
    assert dict(reasons) == report["counts"]["rejected"]
    assert reasons[S.REASON_UNREADABLE] == 10 and reasons[S.REASON_INVALID_TEXT] == 1
    assert reasons[S.REASON_MISSING_TEXT] == 3
    # the integer-id file has no language information: rejected, not guessed
    assert reasons[S.REASON_UNSUPPORTED_LANGUAGE] == 1 + 2
    unreadable = rej.filter(pc.equal(rej[S.REASON], S.REASON_UNREADABLE))
    assert sorted(unreadable[S.SOURCE_ROW].to_pylist()) == list(range(first_bad, first_bad + 10))
    assert all("deserialize" in e.lower() for e in unreadable[S.ERROR].to_pylist())
    by_doc = collections.defaultdict(set)
    for t, col in ((out, S.STATUS), (rej, S.REASON)):
        for d, v in zip(t[S.DOC_ID].to_pylist(), t[col].to_pylist(), strict=False):
            by_doc[d].add(v)
    for doc_id, outcome in expected.items():
        assert outcome in by_doc[doc_id] or (outcome == "ok" and by_doc[doc_id] & set(
            S.OUTPUT_STATUSES)), (doc_id, by_doc[doc_id])
    dups = out.filter(pc.equal(out[S.DOC_ID], "dup"))
    assert sorted(set(dups[S.SOURCE_ROW].to_pylist())) == [0, 1]  # two documents kept


def test_unwritable_object_store_output_fails_before_engines(ray_cluster, seaweed,
                                                             tiny_model):
    """(A bad input file fails even earlier, before Ray: tests/unit/test_cli.py.)"""
    out_uri = "s3://no-such-bucket-qcraft/out"
    res = run_cli(["run", LOCAL, "--address", ray_cluster.address,
                   *sets(base_overrides(tiny_model, [SAMPLE], out_uri))], ray_cluster.env)
    assert res.returncode == 2, res.stderr[-3000:]
    assert f"output.path {out_uri}" in res.stderr and "engine replica" not in res.stderr
    secret = seaweed.env["AWS_SECRET_ACCESS_KEY"]
    assert secret not in res.stderr and secret not in res.stdout
