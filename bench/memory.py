"""Memory benchmark: peak RSS at 20k and 200k documents through read -> passages -> write.

    python bench/memory.py [--small 20000] [--large 200000]

Runs `qcraft passages` (no engine) with configs/local.yaml on FineWeb2-HQ-style corpora
made of the sample passages repeated (distinct ids), and samples every 0.2 s the RSS of
the driver and of every Ray process under it (workers are named ``ray::...``). Streaming
means memory must not grow with the corpus: the target is the large run's peaks within
+20% of the small run's. Results go to bench/RESULTS-memory.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WORK = REPO / ".cache" / "bench-memory"


def make_corpus(n_docs: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from qcraft_ray.devtools.sample_corpus import load_passages

    root = WORK / f"corpus-{n_docs}"
    if (root / "_done").exists():
        return root
    src = load_passages()
    per_file = 50_000
    for f in range(0, n_docs, per_file):
        rows = [{"text": src[i % len(src)]["text"], "id": f"m{i}",
                 "language": src[i % len(src)]["lang"].split("_")[0],
                 "language_script": src[i % len(src)]["lang"].split("_")[1],
                 "quality_score": 0.5} for i in range(f, min(f + per_file, n_docs))]
        path = root / "fineweb2-hq" / "mixed" / f"{f // per_file:03d}_00000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=5000,
                       compression="zstd")
    (root / "_done").write_text("ok")
    return root


def measure(corpus: Path, model: str) -> dict:
    import psutil

    cmd = [sys.executable, "-m", "qcraft_ray.cli", "passages", str(REPO / "configs/local.yaml"),
           "--set", f"input.paths=[{corpus}]", "--set", f"output.path={WORK / 'out'}",
           "--set", "output.if_exists=overwrite", "--set", f"model.name={model}",
           "--set", "input.rows_per_task=1000"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {"driver": 0, "worker": 0, "worker_uss": 0, "worker_heap": 0}
    names: dict[str, str] = {}  # which process held each worker peak
    stop = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                peaks["driver"] = max(peaks["driver"], root.memory_info().rss)
                for child in root.children(recursive=True):
                    try:
                        if child.name().startswith("ray::"):
                            info = child.memory_full_info()
                            for key, value in (("worker", info.rss), ("worker_uss", info.uss),
                                               ("worker_heap", heap(child))):
                                if value > peaks[key]:
                                    peaks[key], names[key] = value, child.name()
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(err[-4000:])
    return {"wall_s": time.monotonic() - t0, "driver_mib": peaks["driver"] / 2**20,
            "worker_mib": peaks["worker"] / 2**20, "worker_uss_mib": peaks["worker_uss"] / 2**20,
            "worker_heap_mib": peaks["worker_heap"] / 2**20,
            "worker_heap_process": names.get("worker_heap", "?")}


def heap(proc) -> int:
    """A worker's own memory: its private pages outside Ray's object store. USS also
    counts the object store's shared-memory pages that only this worker has touched
    (blocks it wrote), which grow as the store fills, up to the store's size."""
    return sum(m.private_clean + m.private_dirty for m in proc.memory_maps(grouped=True)
               if not m.path.startswith("/dev/shm") and "plasma" not in m.path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--small", type=int, default=20_000)
    p.add_argument("--large", type=int, default=200_000)
    p.add_argument("--results", default=str(REPO / "bench" / "RESULTS-memory.md"))
    args = p.parse_args()
    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3

    model = str(build_tiny_qwen3(REPO / ".cache" / "tiny-qwen3"))
    res = {}
    for n in (args.small, args.large):
        res[n] = measure(make_corpus(n), model)
        print(n, res[n], flush=True)
    s, lg = res[args.small], res[args.large]
    lines = [
        "# Memory benchmark (read -> passages -> write, `qcraft passages`)", "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; configs/local.yaml "
        "(2 logical CPUs, rows_per_task=1000); peak RSS sampled every 0.2 s.", "",
        "| documents | wall s | driver peak RSS MiB | largest worker peak RSS MiB | "
        "largest worker peak USS MiB | largest worker peak heap MiB | that worker |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, r in res.items():
        lines.append(f"| {n} | {r['wall_s']:.1f} | {r['driver_mib']:.0f} | "
                     f"{r['worker_mib']:.0f} | {r['worker_uss_mib']:.0f} | "
                     f"{r['worker_heap_mib']:.0f} | `{r['worker_heap_process']}` |")
    lines += ["", f"Large/small: driver {lg['driver_mib'] / s['driver_mib']:.2f}x; largest "
              f"worker {lg['worker_heap_mib'] / s['worker_heap_mib']:.2f}x heap (target <= "
              f"1.20x), {lg['worker_mib'] / s['worker_mib']:.2f}x RSS, "
              f"{lg['worker_uss_mib'] / s['worker_uss_mib']:.2f}x USS. Heap: the worker's "
              "private pages outside Ray's object store. RSS and USS also count object-store "
              "pages (shared memory) the worker has touched; they grow as the store fills, "
              "up to its size, whatever the corpus size.",
              "", f"Reproduce: `python bench/memory.py --small {args.small} "
              f"--large {args.large}`", ""]
    Path(args.results).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
