"""Feeding at GPU rates on 2 cores: the job on the paced engine against the same engine fed
everything at once.

    python bench/paced.py [--copies 30] [--scenarios one-h200,four-h200] [--runs 1]
                          [--set dotted.key=value ...]

The paced engine (``generation.engine.backend: paced``) steps as vLLM's scheduler does,
at an H200's measured rate (``generation.engine.paced``: 150,000 prompt tokens/s). The
job runs ``configs/cluster-8xh100.yaml`` as it is (batch 256, 16 batches in flight,
max_num_seqs 512, 16,384 tokens a step, 7 types) on a local instance with logical GPUs,
one replica per GPU, with only the CPU sizes shrunk to 2 cores, on copies of the sample
corpus in which no passage repeats (bench/corpus.py), language id off as in the H200 run.

Scenarios: ``one-h200`` (1 replica) and ``four-h200`` (4 replicas: ~1,000 prompts/s).
Baseline, per scenario: the same prompts handed to one paced engine at once, in this
process (what bare vLLM's one ``generate`` call does), split evenly over the replicas:
its span is the engine's best time. Measured per replica from the run report: occupancy,
the share of the span no request waited (``queue_empty_fraction``), the span; and the
whole job's wall time. Targets (issue 23): queue empty <= 2% of the span, occupancy >=
0.95. Results: bench/RESULTS-paced.md (newest first).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
WORK = REPO / ".cache" / "bench-paced"
MODEL = REPO / ".cache" / "tiny-qwen3"
SCENARIOS = {"one-h200": 1, "four-h200": 4}
CPU_SIZES = [  # the cluster config's CPU requests, shrunk to 2 cores
    "ray.local_num_cpus=2", "ray.read_cpus=0.25", "ray.passage_cpus=0.5", "ray.write_cpus=0.25",
    "generation.cpus_per_replica=0.25", "quality.language_id=false",
    "generation.engine.backend=paced", "generation.engine.device=cpu",
    "input.rows_per_task=200",
]


def job_cmd(corpus: Path, out: Path, replicas: int, sets: list[str]) -> list[str]:
    settings = [f"model.name={MODEL}", f"input.paths=[{corpus}]", f"output.path={out}",
                "output.if_exists=overwrite", f"ray.local_num_gpus={replicas}",
                f"generation.replicas={replicas}", *CPU_SIZES, *sets]
    return [sys.executable, "-m", "qcraft_ray.cli", "run",
            str(REPO / "configs/cluster-8xh100.yaml"),
            *sum((["--set", s] for s in settings), [])]


def job(corpus: Path, replicas: int, sets: list[str]) -> dict:
    out = WORK / f"out-{replicas}"
    t0 = time.monotonic()
    res = subprocess.run(job_cmd(corpus, out, replicas, sets), capture_output=True, text=True,
                         cwd=REPO)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-4000:])
    rep = json.loads((out / "_report.json").read_text())
    engines = [r for r in rep["engine"]["replicas"].values() if r["span_s"]]
    return {"wall_s": wall, "prompts": rep["throughput"]["prompts"],
            "replicas": len(engines),
            "occupancy": min(r["occupancy"] for r in engines),
            "queue_empty_fraction": max(r["queue_empty_fraction"] for r in engines),
            "span_s": max(r["span_s"] for r in engines),
            "per_replica": [{k: r[k] for k in ("span_s", "occupancy", "queue_empty_fraction",
                                               "load_s", "steps")} for r in engines]}


def job_prompts(corpus: Path, sets: list[str]) -> list[list[int]]:
    """The token-id prompts the job makes of ``corpus``, through its own stages."""
    import pyarrow as pa

    from qcraft_ray import schema as S
    from qcraft_ray.config_loader import load_config
    from qcraft_ray.io.discover import discover
    from qcraft_ray.io.read import fragments_to_read, read_fragment
    from qcraft_ray.stages.prompts import PromptStage, TypeDraw

    cfg = load_config(REPO / "configs/cluster-8xh100.yaml",
                      [f"model.name={MODEL}", f"input.paths=[{corpus}]", *CPU_SIZES, *sets])
    plan = discover(cfg.input, cfg.storage)
    gen = cfg.generation
    stage = PromptStage(cfg.passages, cfg.model, TypeDraw.of(gen),
                        gen.engine.max_model_len - gen.max_new_tokens)
    docs = pa.concat_tables(t for f in fragments_to_read(plan, 10**7)
                            for t in read_fragment(f, cfg.input, cfg.storage))
    rows = stage(docs)
    pending = rows.filter(pa.compute.equal(rows[S.STATUS], S.STATUS_PENDING))
    return pending[S.PROMPT_TOKEN_IDS].to_pylist()


def baseline(prompts: list[list[int]], replicas: int, sets: list[str]) -> dict:
    """One paced engine fed its share of the prompts at once (one generate call)."""
    from qcraft_ray.config_loader import load_config
    from qcraft_ray.stages.paced import PacedEngine

    cfg = load_config(REPO / "configs/cluster-8xh100.yaml",
                      [f"model.name={MODEL}", *CPU_SIZES, *sets])
    engine = PacedEngine(cfg.generation, cfg.model)
    share = prompts[: len(prompts) // replicas]
    t0 = time.monotonic()
    engine.generate(share)
    gen_s = time.monotonic() - t0
    snap = engine.occupancy.snapshot()
    return {"prompts": len(share), "gen_s": gen_s, "span_s": snap.span_s,
            "occupancy": snap.occupancy, "queue_empty_fraction": snap.queue_empty_s / snap.span_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--copies", type=int, default=30)
    p.add_argument("--scenarios", default="one-h200,four-h200")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--set", action="append", default=[], dest="sets")
    args = p.parse_args()
    from corpus import write_corpus

    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3

    build_tiny_qwen3(MODEL)
    corpus = WORK / "corpus"
    write_corpus(corpus, args.copies)
    prompts = job_prompts(corpus, args.sets)
    tokens = sum(len(x) for x in prompts)
    print(f"{len(prompts)} prompts, {tokens / len(prompts):.0f} tokens each", flush=True)
    results = {}
    for name in args.scenarios.split(","):
        replicas = SCENARIOS[name]
        runs = {"bare": [], "qcraft": []}
        for i in range(args.runs):
            for mode in (("bare", "qcraft") if i % 2 == 0 else ("qcraft", "bare")):
                got = (baseline(prompts, replicas, args.sets) if mode == "bare"
                       else job(corpus, replicas, args.sets))
                runs[mode].append(got)
                print(name, i + 1, mode, json.dumps(got), flush=True)
        results[name] = runs
    write_results(args, len(prompts), tokens, results)


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def write_results(args: argparse.Namespace, prompts: int, tokens: int, results: dict) -> None:
    from generation import machine, versions
    from results import add_newest_run

    lines = [f"## Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"Machine: {machine()}. Versions: {versions()}.", "",
             f"Workload: {args.copies} copies of the sample, {prompts:,} prompts of "
             f"{tokens / prompts:.0f} tokens on average (7 types), paced at the config's "
             "rate per replica. Extra settings: "
             + (", ".join(f"`{s}`" for s in args.sets) or "none") + ".", "",
             "| scenario | engine span, s (bare / job) | job rate vs bare | occupancy (bare / "
             "job, worst replica) | queue empty (bare / job, worst replica) | job wall, s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, runs in results.items():
        b, q = runs["bare"], runs["qcraft"]
        per_replica = q[0]["prompts"] / q[0]["replicas"]
        lines.append(
            f"| {name} ({SCENARIOS[name]} replica{'s' if SCENARIOS[name] > 1 else ''}) | "
            f"{med(b, 'span_s'):.1f} / {med(q, 'span_s'):.1f} | "
            f"{(per_replica / med(q, 'span_s')) / (med(b, 'prompts') / med(b, 'span_s')):.3f}x | "
            f"{med(b, 'occupancy'):.3f} / {med(q, 'occupancy'):.3f} | "
            f"{med(b, 'queue_empty_fraction'):.3f} / {med(q, 'queue_empty_fraction'):.3f} | "
            f"{med(q, 'wall_s'):.1f} |")
    lines += ["", "Raw: `" + json.dumps(results) + "`", "",
              f"Reproduce: `python bench/paced.py --copies {args.copies} --scenarios "
              f"{args.scenarios} --runs {args.runs}"
              + "".join(f" --set {x}" for x in args.sets) + "`", ""]
    add_newest_run(REPO / "bench" / "RESULTS-paced.md",
                   "Feeding at GPU rates on the paced engine (bench/paced.py)", lines)


if __name__ == "__main__":
    main()
