"""The pipeline's ceiling: the whole job with an engine that answers at once.

    python bench/ceiling.py [--copies 95] [--small-copies 10] [--runs 3] [--types 1,7] [--by-process]

``generation.engine.backend=instant`` answers every prompt at once with a span of the
prompt (seeded lengths, mean 20 tokens), so what is left is the pipeline itself: read,
tokenize and chunk, render prompts, hand blocks to the replicas, rows in and out of the
replica, the quality checks, write and commit. Corpus: copies of the bundled sample,
each copy's words in another order (bench/corpus.py). Each size runs as a fresh
``qcraft run configs/local.yaml`` process; the steady-state rate is the marginal one,
``(prompts(N) - prompts(n)) / (T(N) - T(n))``, so start-up and shutdown cancel out; per
core, over the machine's cores. The profile is the run report's ``stage_seconds``
(seconds inside each stage's code, summed over its tasks) per 1,000 prompts.
With ``--by-process``, also the CPU seconds of every process by kind (bench/process_cpu.py),
per 1,000 prompts in steady state. Results: bench/RESULTS-ceiling.md (newest first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
WORK = REPO / ".cache" / "bench-ceiling"
TYPES = ["query", "alt_query", "keywords", "synonym_keywords", "title", "faq", "summary"]


def job(corpus: Path, types: int, extra: list[str], by_process: bool = False) -> dict:
    out = WORK / "out"
    cmd = [sys.executable, "-m", "qcraft_ray.cli", "run", str(REPO / "configs/local.yaml"),
           "--set", f"model.name={REPO / '.cache' / 'tiny-qwen3'}",
           "--set", f"input.paths=[{corpus}]", "--set", f"output.path={out}",
           "--set", "output.if_exists=overwrite", "--set", "generation.engine.backend=instant",
           "--set", f"generation.types={json.dumps(TYPES[:types])}",
           *sum((["--set", e] for e in extra), [])]
    if by_process:
        from process_cpu import profile

        res, wall, cpu = profile(cmd, cwd=REPO)
    else:
        t0 = time.monotonic()
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        wall, cpu = time.monotonic() - t0, None
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-4000:])
    rep = json.loads((out / "_report.json").read_text())
    found = {"wall_s": wall, "prompts": rep["throughput"]["prompts"],
             "stage_seconds": rep["stage_seconds"]}
    if cpu is not None:
        found["cpu_by_process"] = {k: round(v, 2) for k, v in cpu.most_common()}
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--copies", type=int, default=95)
    p.add_argument("--small-copies", type=int, default=10)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--types", default="1,7")
    p.add_argument("--by-process", action="store_true",
                   help="also sum CPU seconds by process (bench/process_cpu.py)")
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=dotted.key=value[,dotted.key=value]: also run with these settings")
    args = p.parse_args()
    from corpus import write_corpus

    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3

    build_tiny_qwen3(REPO / ".cache" / "tiny-qwen3")
    for name, copies in (("big", args.copies), ("small", args.small_copies)):
        write_corpus(WORK / name, copies)
    variants = {"defaults": []}
    for v in args.variant:
        name, sets = v.split("=", 1)
        variants[name] = sets.split(",")
    results: dict = {}
    for types in (int(t) for t in args.types.split(",")):
        for name, extra in variants.items():
            runs = []
            for _ in range(args.runs):  # big and small alternated
                big = job(WORK / "big", types, extra, args.by_process)
                small = job(WORK / "small", types, extra, args.by_process)
                runs.append({"big": big, "small": small})
                print(types, name, json.dumps(runs[-1]), flush=True)
            results[f"{types} type{'s' if types > 1 else ''}, {name}"] = runs
    write_results(args, results)


def summarize(runs: list[dict]) -> dict:
    cores = os.cpu_count() or 1
    rates = [(r["big"]["prompts"] - r["small"]["prompts"])
             / (r["big"]["wall_s"] - r["small"]["wall_s"]) / cores for r in runs]
    whole = [r["big"]["prompts"] / r["big"]["wall_s"] / cores for r in runs]
    stages = {k: statistics.median(1000 * r["big"]["stage_seconds"].get(k, 0)
                                   / r["big"]["prompts"] for r in runs)
              for k in runs[0]["big"]["stage_seconds"]}
    return {"steady": statistics.median(rates), "steady_range": (min(rates), max(rates)),
            "whole": statistics.median(whole), "prompts": runs[0]["big"]["prompts"],
            "wall": statistics.median(r["big"]["wall_s"] for r in runs), "stages": stages}


def cpu_table(results: dict) -> list[str]:
    """CPU seconds by process per 1,000 prompts, marginal between the two corpora
    (medians over runs): where the steady state's cores go."""
    lines: list[str] = []
    for name, runs in results.items():
        if "cpu_by_process" not in runs[0]["big"]:
            continue
        groups = sorted({g for r in runs for g in r["big"]["cpu_by_process"]})
        per: dict[str, float] = {}
        for g in groups:
            per[g] = statistics.median(
                1000 * (r["big"]["cpu_by_process"].get(g, 0) - r["small"]["cpu_by_process"].get(g, 0))
                / (r["big"]["prompts"] - r["small"]["prompts"]) for r in runs)
        lines += ["", f"CPU seconds per 1,000 prompts by process, steady state ({name}):", "",
                  "| process | CPU s / 1,000 prompts |", "| --- | --- |"]
        lines += [f"| {g} | {v:.3f} |" for g, v in sorted(per.items(), key=lambda kv: -kv[1])
                  if abs(v) >= 0.005]
        lines.append(f"| **all** | **{sum(per.values()):.3f}** |")
    return lines


def write_results(args: argparse.Namespace, results: dict) -> None:
    from generation import machine, versions
    from results import add_newest_run

    lines = [f"## Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"Machine: {machine()}. Versions: {versions()}. {args.runs} runs each, "
             f"medians; corpora of {args.copies} and {args.small_copies} copies of the "
             "sample.", "",
             "| workload | prompts | whole job s | steady prompts/s/core [range] | with start-up "
             "prompts/s/core | seconds in stages per 1,000 prompts |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, runs in results.items():
        s = summarize(runs)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in sorted(s["stages"].items()))
        lines.append(f"| {name} | {s['prompts']:,} | {s['wall']:.1f} | {s['steady']:.0f} "
                     f"[{s['steady_range'][0]:.0f}-{s['steady_range'][1]:.0f}] | "
                     f"{s['whole']:.0f} | {stages} |")
    lines += cpu_table(results)
    lines += ["", "Raw: `" + json.dumps(results) + "`", "",
              f"Reproduce: `python bench/ceiling.py --copies {args.copies} --small-copies "
              f"{args.small_copies} --runs {args.runs} --types {args.types}"
              + (" --by-process" if args.by_process else "")
              + "".join(f" --variant {v}" for v in args.variant) + "`", ""]
    add_newest_run(REPO / "bench" / "RESULTS-ceiling.md", "The pipeline's ceiling (bench/ceiling.py)", lines)


if __name__ == "__main__":
    main()
