"""A hung engine call, for real: a vLLM logits processor blocks every engine step once a
marked prompt joins the batch. The replica's watchdog ends it, Ray restarts it, and the
row that hangs every time ends as an error row; every other row is generated."""

from __future__ import annotations

import collections
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from tests.conftest import REPO
from tests.integration.conftest import EAGER, base_overrides, read_output
from tests.integration.test_job import SAMPLE, check_accounting, wait_for_job_agent


def marker_token(tokenizer) -> tuple[int, tuple[str, int]]:
    """A token id found in exactly one sample passage, and that passage's key."""
    from qcraft_ray.config import InputConfig, PassageConfig, StorageConfig
    from qcraft_ray.io.discover import discover
    from qcraft_ray.io.read import fragments_to_read, read_fragment
    from qcraft_ray.stages.passages import make_passages
    from qcraft_ray.stages.prompts import PromptRenderer

    cfg = InputConfig(paths=[SAMPLE])
    docs = pa.concat_tables(t for f in fragments_to_read(discover(cfg, StorageConfig()), 1000)
                            for t in read_fragment(f, cfg, StorageConfig()))
    rows = make_passages(docs, PassageConfig(), tokenizer)
    rows = rows.filter(pc.equal(rows[S.STATUS], S.STATUS_PENDING)).to_pylist()
    template = set(PromptRenderer(tokenizer).render_ids("", [], "english", "query"))
    holders = collections.defaultdict(set)
    for r in rows:
        for t in set(r[S.PASSAGE_TOKEN_IDS]) - template:
            holders[t].add((r[S.DOC_ID], r[S.CHUNK_INDEX]))
    token = min(t for t, keys in holders.items() if len(keys) == 1)
    return token, next(iter(holders[token]))


def test_hung_engine_row_becomes_an_error(ray_cluster, tiny_model, tokenizer, tmp_path):
    token, hung = marker_token(tokenizer)
    wait_for_job_agent(ray_cluster)
    out_dir = str(tmp_path / "out")
    sets = [*base_overrides(tiny_model, [SAMPLE], out_dir), "generation.types=[query]",
            "generation.batch_size=8", "generation.call_timeout_s=6",
            "generation.max_new_tokens=8",  # short calls: one running 6 s is hung
            "generation.max_replica_deaths_per_row=2", EAGER,
            "quality.language_id=false",
            "generation.engine.kwargs="
            + json.dumps({"logits_processors": ["tests.hang_processor:HangOnToken"]}),
            f"generation.engine.env.QCRAFT_TEST_HANG_TOKEN='{token}'"]
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit",
           "--address", ray_cluster.dashboard, "--working-dir", str(REPO), "--",
           "python", "jobs/generate_queries.py", "--config", "configs/local.yaml",
           *sum((["--set", o] for o in sets), [])]
    res = subprocess.run(cmd, env=ray_cluster.env, capture_output=True, text=True,
                         timeout=900, cwd=REPO)
    assert res.returncode == 0, res.stdout[-5000:] + "\n---\n" + res.stderr[-3000:]
    assert "ran past generation.call_timeout_s (6 s)" in res.stdout
    out, rej, report = read_output(out_dir)
    check_accounting(out, rej, report, 75, ["query"])
    status = {(r[S.DOC_ID], r[S.CHUNK_INDEX]): r for r in out.to_pylist()}
    assert status[hung][S.STATUS] == S.STATUS_ERROR
    assert status[hung][S.ERROR] == ("ReplicaDiedOnRow: the engine replica died 2 times "
                                     "while generating this row")
    others = [r[S.STATUS] for k, r in status.items() if k != hung]
    assert S.STATUS_ERROR not in others and len(others) == len(status) - 1
    assert report["retries"]["replicas_lost"] == 2
