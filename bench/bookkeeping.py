"""Bookkeeping at FineWeb2-HQ scale, simulated: N write tasks' manifests committed
through the job's own commit path, then the driver-side reads timed, each in a fresh
process (peak RSS is that process's).

    python bench/bookkeeping.py --sizes 10000,50000 [--s3] [--no-write]

A manifest is a real one's shape at the real setting: 21 languages x 7 types of
counters (the counters of a real 1-type manifest of the held-out corpus, spread over
the 7 types), ``--units`` work units with FineWeb2-HQ-length object-store names, two
file names (written, as one-row Parquet files, only with ``--iceberg``). Phases:

- the run: manifests committed in rounds of ``--checkpoint-every``, the driver's
  checkpoint writer after each round but the last (timed, with its memory); with
  ``--iceberg``, the writer also stages an Iceberg manifest of each round's data files
  (timed apart: a real run spreads it over its days).
- ``resume``: a resume's start (``open_run``'s reads: the newest checkpoint and the
  manifests since; orphans listed, units done); with ``--cold``, also ``resume_cold``:
  the same reads with every manifest read one by one (what there was before checkpoints).
- ``finalise``: the accepted manifests folded (the same), orphans listed, reconciled, the
  final checkpoint written (the Iceberg commit is timed apart).
- ``report``: what ``qcraft report`` reads and merges (the final checkpoint).
- ``iceberg`` (with ``--iceberg``): the finalise's commit of every data file to the
  run's table, the staged manifests as they are and the files after them converted.
- ``iceberg_next`` (with ``--iceberg``): the next run's commit (another shard) of one
  file to the same table, which checks the table does not already reference it.
- ``percentile_reads`` and ``score_reads``: the bookkeeping of the passes that rewrite
  every manifest (the percentile filter, ``qcraft score``), without their data work:
  every manifest read again and folded (and for ``qcraft score``, orphans listed from
  the whole checkpoint and a whole checkpoint written again).
- ``tracker``: the progress tracker fed ``--batches`` batch records (one per batch of
  1,024 prompts: 6.5M for 6.7B prompts), and the replica-death ledger the same.

One JSON line per size; the results go to bench/RESULTS-bookkeeping.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qcraft_ray.config import StorageConfig  # noqa: E402
from qcraft_ray.config.iceberg import IcebergTable  # noqa: E402
from qcraft_ray.ledger.checkpoints import invalidate  # noqa: E402
from qcraft_ray.ledger.counts import RowCounts  # noqa: E402
from qcraft_ray.ledger.manifests import (  # noqa: E402
    Manifest,
    commit,
    iter_manifests,
    manifest_names,
)
from qcraft_ray.ledger.units import UnitCounts  # noqa: E402
from qcraft_ray.store import OutputFolder  # noqa: E402

WORK = REPO / ".cache" / "bench-bookkeeping"
TYPES = ["query", "alt_query", "keywords", "synonym_keywords", "title", "faq", "summary"]
TEMPLATE = REPO / "bench" / "manifest-template.json"
ATTEMPT = "a00001"


def template_counts() -> dict:
    """A real manifest's counters (held-out corpus, 21 languages, one type), spread over
    the 7 types as a 7-type run's write task has them."""
    counts = json.loads(TEMPLATE.read_text())["counts"]
    for key in ("by_language_type", "output_tokens_histogram", "output_scores", "score_histogram"):
        spread = {}
        for k, v in counts.get(key, {}).items():
            lang = k.split("/", 1)[0]
            for t in TYPES:
                spread[f"{lang}/{t}"] = v
        counts[key] = spread
    counts["by_type"] = {t: next(iter(counts["by_type"].values()), {}) for t in TYPES}
    counts["copy_checked"] = {t: 1 for t in TYPES}
    return counts


def manifest(task: int, counts: dict, units: int, spread: int = 1, size: int = 0) -> Manifest:
    """Write task ``task``'s manifest: ``units`` work units, each of whose rows the
    ``spread`` consecutive tasks of its group hold a share of (3 documents a task);
    ``size``: the tasks in all (the last group may be short)."""
    group, first = task // spread, task // spread * units
    in_group = min(spread, size - group * spread) if size else spread
    unit_names = {
        f"s3://fineweb2-hq/data/jpn_Jpan/train/{(first + i) // 40:06d}.parquet@{(first + i) % 40 * 1000}": UnitCounts(
            21, 21, 3, 3 * in_group
        )
        for i in range(units)
    }
    files = [
        f"part-run-{ATTEMPT}-{task:06d}-0000.parquet",
        f"_rejected/part-run-{ATTEMPT}-{task:06d}.parquet",
    ]
    # every unit complete once its group is in, 3 documents a task: the counters
    # account for the same documents
    return Manifest(
        ATTEMPT, task, files, unit_names, RowCounts.from_json({**counts, "documents": 3 * units})
    )


def folder_for(size: int, s3_env: dict | None) -> OutputFolder:
    if s3_env is None:
        return OutputFolder(str(WORK / f"out-{size}"))
    from tests.integration.services import S3_BUCKET

    return OutputFolder(f"s3://{S3_BUCKET}/bookkeeping/out-{size}", StorageConfig())


def simulate_run(
    folder: OutputFolder,
    size: int,
    units: int,
    spread: int,
    every: int,
    writer_every: int,
    data: bytes,
    reuse: bool = False,
    held: frozenset[int] = frozenset(),
    stager=None,
) -> dict:
    """Commit ``size`` manifests through the commit path in rounds of ``every``, and do
    what the driver's checkpoint writer does (read the manifests since its last
    checkpoint, fold them in, publish a checkpoint) after every ``writer_every`` commits
    and after the last round but one: a run killed just before its next checkpoint.
    ``data``: the bytes of each manifest's data and rejected files (none written when
    empty). ``held``: tasks that die between their files and their manifest (their
    files are written, their manifest is not; :func:`commit_held` commits them later).
    ``stager``: with ``--iceberg``, what the writer also does before each checkpoint
    (stage Iceberg manifests of the data files folded in since, ``every`` files each, as
    the real writer's steps do; timed apart).
    Returns the writer's time (in all, and its last checkpoint's: what the driver pays
    per checkpoint at this size), the last checkpoint's size and this process's peak RSS
    (the driver's, with what the writer holds)."""
    from qcraft_ray.ledger.checkpoints import write_checkpoint
    from qcraft_ray.ledger.committed import Committed
    from qcraft_ray.ledger.manifests import iter_manifests

    counts = template_counts()
    committed, commit_s, writer_s, last_s, last, written = Committed(), 0.0, 0.0, 0.0, b"", 0
    staging_s = staging_last_s = 0.0

    def one(i: int) -> None:
        write_task(folder, manifest(i, counts, units, spread, size), data, i not in held)

    folded = 0
    with ThreadPoolExecutor(64) as pool:
        for start in range(0, size, every):
            end = min(size, start + every)
            t0 = time.monotonic()
            if not reuse:
                list(pool.map(one, range(start, end)))
            commit_s += time.monotonic() - t0
            if end >= size:
                break
            if end % writer_every and end + every < size:
                continue
            t0 = time.monotonic()
            names = [manifest(i, counts, 0).name for i in range(folded, end) if i not in held]
            for m in iter_manifests(folder, names):
                committed.add(m)
            folded = end
            if stager is not None:  # as the real writer's steps do, --checkpoint-every each
                t1 = time.monotonic()
                names = committed.data_files
                first = committed.staged_upto
                while first < len(names):
                    staged = stager(names[first : first + every], first)
                    if staged is None:
                        break
                    committed.lake.append(staged)
                    first = staged.end
                staging_last_s = time.monotonic() - t1
                staging_s += staging_last_s
                t0 += staging_last_s  # the checkpoint's own time, apart
            rel = write_checkpoint(folder, committed)
            last_s = time.monotonic() - t0
            writer_s += last_s
            written += 1
    if committed.names:
        last = folder.read_bytes(rel)
    return {
        "commit_s": round(commit_s, 1),
        "checkpoint_writer_s": round(writer_s, 1),
        "checkpoint_last_s": round(last_s, 2),
        "checkpoints": written,
        "checkpoint_bytes": len(last),
        "staging_s": round(staging_s, 1),
        "staging_last_s": round(staging_last_s, 2),
        "staged_manifests": len(committed.lake),
        "driver_writer_rss_mb": round(rss_mb("VmHWM"), 1),
    }


def write_task(folder: OutputFolder, m: Manifest, data: bytes, commits: bool = True) -> None:
    """What a write task does: its files (when ``data``), then its manifest."""
    for rel in m.files if data else ():
        folder.write_bytes(rel, data)
    if commits:
        commit(folder, m)


def held_tasks(size: int, spread: int, crashed: int) -> frozenset[int]:
    """The last task of ``crashed`` groups spread over the run: each leaves its group's
    units unfinished (a resume reads the rows their other tasks wrote)."""
    groups = -(-size // spread)
    picked = {(j * groups) // crashed for j in range(crashed)} if crashed else set()
    return frozenset(min(g * spread + spread - 1, size - 1) for g in picked)


def commit_held(folder: OutputFolder, args: argparse.Namespace, size: int, data: bytes) -> None:
    """The resumed attempt's work: the held tasks' files and manifests, written again."""
    counts = template_counts()
    for i in sorted(held_tasks(size, args.spread, args.crashed)):
        write_task(folder, manifest(i, counts, args.units, args.spread, size), data)


def data_file_bytes() -> bytes:
    """One output row as a Parquet file of the output schema (what Iceberg's commit
    reads the footer of)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from qcraft_ray.mode import Mode

    def value(t: pa.DataType):
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "x"
        if pa.types.is_integer(t):
            return 0
        if pa.types.is_floating(t):
            return 0.0
        if pa.types.is_boolean(t):
            return False
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return []
        return None

    schema = Mode.GENERATE.schema
    table = pa.Table.from_pylist([{f.name: value(f.type) for f in schema}], schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


# --- phases, each run in a fresh process ---


def phase_resume(folder: OutputFolder) -> dict:
    """open_run's reads on a resume: the fold (newest checkpoint + the manifests after
    it), orphans listed, units done, rows written in unfinished units."""
    from qcraft_ray.ledger.state import committed_so_far

    committed, orphans = committed_so_far(folder)
    return {
        **_resume_rest(folder, committed),
        "from_checkpoint": committed.from_checkpoint,
        "orphans": len(orphans),
    }


def phase_resume_cold(folder: OutputFolder) -> dict:
    """The same reads with no checkpoint: every manifest, one at a time (orphans are
    listed, and left for the resume timed next)."""
    from qcraft_ray.ledger.committed import Committed
    from qcraft_ray.ledger.manifests import list_output

    listing = list_output(folder)
    committed = Committed()
    for m in iter_manifests(folder, listing.manifests):
        committed.add(m)
    known = set(committed.files)
    orphans = [f for f in listing.files if f not in known]
    return {**_resume_rest(folder, committed), "orphans": len(orphans)}


def _resume_rest(folder: OutputFolder, committed) -> dict:
    from qcraft_ray.ledger.state import _units, _written

    done, unfinished = _units(committed.units)
    written = _written(folder, committed.files_of(unfinished))
    return {
        "manifests": len(committed.names),
        "units_done": len(done),
        "rows_written": written.num_rows if written is not None else 0,
    }


def phase_finalise(folder: OutputFolder) -> dict:
    """The finalise's bookkeeping: the accepted manifests folded, orphans removed,
    reconciled, the final checkpoint written (not the Iceberg commit)."""
    from qcraft_ray.ledger.checkpoints import read_checkpoint, write_checkpoint
    from qcraft_ray.ledger.committed import Committed
    from qcraft_ray.ledger.manifests import manifest_names
    from qcraft_ray.ledger.reconcile import accepted, reconcile
    from qcraft_ray.ledger.state import RunState
    from qcraft_ray.mode import Mode

    # the driver holds what its checkpoint writer folded (loaded here: a conservative
    # stand-in for what a real driver already has in memory)
    held = read_checkpoint(folder, set(manifest_names(folder))) or Committed()
    state = RunState("bench", ATTEMPT, Mode.GENERATE, folder, committed=held)
    committed, _ = accepted(folder, state)
    units = committed.units
    problems = reconcile(units.documents, committed.counts, units)
    write_checkpoint(folder, committed, whole=True)
    return {"manifests": len(committed.names), "problems": len(problems), "units": len(units)}


def phase_report(folder: OutputFolder) -> dict:
    """What qcraft report reads and merges (the final checkpoint's counts), and its
    summary."""
    from qcraft_ray.ledger.checkpoints import fold
    from qcraft_ray.report.summary import summarize

    summary = summarize(folder.path, fold(folder, upto="counts", finished=True).counts)
    return {"rows": summary.rows, "languages": len(summary.language_rates)}


def bench_table(folder: OutputFolder) -> IcebergTable:
    """The table the bench commits to: a SQL catalog (SQLite beside the bench's work
    folder), its warehouse in the output folder."""
    name = folder.path.rstrip("/").rsplit("/", 1)[-1]
    db = WORK / f"catalog-{name}{'-s3' if folder.path.startswith('s3://') else ''}.db"
    return IcebergTable(
        catalog={"type": "sql", "uri": f"sqlite:///{db}", "warehouse": folder.uri("_warehouse")},
        table="bench.queries",
    )


def new_table(folder: OutputFolder):
    """A new, empty table for this run (made before the run, as the job's check does),
    and the checkpoint writer's stager for it."""
    from qcraft_ray.lake.commit import check_table
    from qcraft_ray.lake.staged import Stager
    from qcraft_ray.mode import Mode

    cfg = bench_table(folder)
    db = Path(cfg.catalog["uri"][len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no work folder yet
    db.unlink(missing_ok=True)
    check_table(cfg, StorageConfig(), Mode.GENERATE.schema, [])
    return Stager(cfg, StorageConfig(), folder)


def phase_iceberg(folder: OutputFolder) -> dict:
    """The finalise's Iceberg commit: every data file added to the run's table in one
    commit, the manifests the checkpoint writer staged as they are, as finalise does."""
    from qcraft_ray.lake.commit import commit_run
    from qcraft_ray.ledger.checkpoints import fold
    from qcraft_ray.mode import Mode

    committed = fold(folder, finished=True)
    files = [folder.uri(f) for f in committed.data_files]
    got = commit_run(
        bench_table(folder),
        StorageConfig(),
        "bench-run",
        files,
        Mode.GENERATE.schema,
        [],
        committed.lake,
    )
    return {
        "files": got.files,
        "snapshot": got.snapshot_id is not None,
        "staged_manifests": got.staged_manifests,
        "staged_files": got.staged_files,
    }


def phase_iceberg_next(folder: OutputFolder) -> dict:
    """The next run's commit to the same table (another shard of the corpus): one data
    file added to a table that holds this run's, which the commit checks it does not
    already reference."""
    from qcraft_ray.lake.commit import commit_run
    from qcraft_ray.mode import Mode

    rel = "_next/part-next-000000-0000.parquet"
    folder.write_bytes(rel, data_file_bytes())
    got = commit_run(
        bench_table(folder), StorageConfig(), "bench-next", [folder.uri(rel)],
        Mode.GENERATE.schema, [],
    )  # fmt: skip
    return {"files": got.files}


def phase_percentile_reads(folder: OutputFolder) -> dict:
    """The percentile filter's bookkeeping (finalise's ``filtered``, without the data
    pass): every accepted manifest read again, one at a time, and folded as it is
    switched."""
    from qcraft_ray.ledger.committed import Committed

    names = sorted(fold_names(folder))
    out = Committed()
    for m in iter_manifests(folder, names):
        out.add(m)
    return {"manifests": len(out.names)}


def phase_score_reads(folder: OutputFolder) -> dict:
    """``qcraft score``'s bookkeeping (``each_manifest``, with every manifest already
    scored: no data pass): the committed files from the whole checkpoint, orphans
    listed, every manifest read and folded, the whole checkpoint written again."""
    from qcraft_ray.passes.rescore import each_manifest

    done = each_manifest(folder, lambda m: m)
    return {"manifests": len(done.names)}


def fold_names(folder: OutputFolder) -> set[str]:
    from qcraft_ray.ledger.checkpoints import fold

    return fold(folder, upto="counts", finished=True).names


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmHWM``: its peak), from /proc. Not
    ``ru_maxrss``: a child process's starts at its parent's peak, as exec keeps it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def phase_tracker(batches: int) -> dict:
    """The progress tracker and the replica-death ledger, each fed one record per batch
    as the replicas send them."""
    from qcraft_ray.progress import ProgressTracker
    from qcraft_ray.stages.deaths import RowDeaths, batch_digest

    before = rss_mb()
    tracker = ProgressTracker()
    for i in range(batches):
        tracker.add({"prompts_done": 1024, "outputs": 1024}, once=f"batch:{batch_digest([str(i)])}")
    tracker_mb = rss_mb() - before
    before = rss_mb()
    deaths = RowDeaths()
    for i in range(batches):
        deaths.clear([], batch_digest([str(i)]))
    return {"tracker_mb": round(tracker_mb, 1), "ledger_mb": round(rss_mb() - before, 1)}


PHASES = ("resume", "finalise", "report")
PASSES = ("percentile_reads", "score_reads")  # last: score's pass drops the checkpoints


def child(args: argparse.Namespace) -> None:
    s3_env = json.loads(sys.stdin.read()) if args.s3 else None
    if s3_env:
        os.environ.update(s3_env)
    t0 = time.monotonic()
    if args.child == "tracker":
        got = phase_tracker(args.batches)
    else:
        folder = folder_for(int(args.sizes), s3_env)
        phases = {
            "resume": phase_resume,
            "resume_cold": phase_resume_cold,
            "finalise": phase_finalise,
            "report": phase_report,
            "iceberg": phase_iceberg,
            "iceberg_next": phase_iceberg_next,
            "percentile_reads": phase_percentile_reads,
            "score_reads": phase_score_reads,
        }
        got = phases[args.child](folder)
    got["seconds"] = round(time.monotonic() - t0, 2)
    got["peak_rss_mb"] = round(rss_mb("VmHWM"), 1)
    print(json.dumps(got), flush=True)


def run_phase(phase: str, size: int, s3_env: dict | None, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        phase,
        "--sizes",
        str(size),
        "--batches",
        str(args.batches),
        *(["--s3"] if s3_env else []),
    ]
    res = subprocess.run(
        cmd, input=json.dumps(s3_env) if s3_env else "", capture_output=True, text=True, cwd=REPO
    )
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure(size: int, s3_env: dict | None, args: argparse.Namespace) -> dict:
    folder = folder_for(size, s3_env)
    reuse = args.reuse and len(manifest_names(folder)) == size
    if reuse:  # the manifests of an earlier run of the bench: only its checkpoints go
        invalidate(folder)
    else:
        folder.remove() if s3_env is None else folder.clear()
    sample = json.dumps(manifest(0, template_counts(), args.units, args.spread, size).to_json())
    writer_every = args.writer_every or args.checkpoint_every
    data = data_file_bytes() if args.iceberg else b""
    held = held_tasks(size, args.spread, args.crashed)
    if held and not data:
        raise SystemExit("--crashed needs --iceberg: a resume reads the unfinished units' files")
    row = {
        "manifests": size,
        "manifest_bytes": len(sample),
        "storage": "s3" if s3_env else "local",
        **simulate_run(
            folder,
            size,
            args.units,
            args.spread,
            args.checkpoint_every,
            writer_every,
            data,
            reuse,
            held,
            new_table(folder) if data else None,
        ),
    }
    lake = ("iceberg", "iceberg_next") if data else ()
    phases = (("resume_cold",) if args.cold else ()) + PHASES + lake + PASSES
    for phase in phases:  # finalise writes the final checkpoint; score's pass ends it
        got = run_phase(phase, size, s3_env, args)
        row[f"{phase}_s"] = got["seconds"]
        row[f"{phase}_peak_rss_mb"] = got["peak_rss_mb"]
        if phase in ("resume", "finalise", *PASSES):  # what each saw: every manifest
            row[f"{phase}_manifests"] = got["manifests"]
        if phase == "resume":
            row["resume_from_checkpoint"] = got["from_checkpoint"]
            row["resume_units_done"] = got["units_done"]
            row["resume_rows_written"] = got["rows_written"]
            row["resume_orphans"] = got["orphans"]
            commit_held(folder, args, size, data)  # the resumed attempt finishes them
        if phase == "finalise":
            row["finalise_problems"] = got["problems"]
            row["units"] = got["units"]
        if phase == "iceberg":
            row["iceberg_files"] = got["files"]
            row["iceberg_staged_manifests"] = got["staged_manifests"]
            row["iceberg_staged_files"] = got["staged_files"]
    row["peak_rss_mb"] = max(row[f"{p}_peak_rss_mb"] for p in phases)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="10000,50000")
    p.add_argument(
        "--units",
        type=int,
        default=8,
        help="work units a manifest records (~8 with the cluster config's "
        "rows_per_task 2000 and 20,000-row files)",
    )
    p.add_argument(
        "--spread",
        type=int,
        default=14,
        help="write tasks a work unit's rows are spread over (FineWeb2-HQ: ~190k units "
        "of 2,000 documents, 335k tasks of ~8 units each: ~14); 1: every unit in one "
        "manifest (the bench before 2026-12-05's second session: 14x the units)",
    )
    p.add_argument("--batches", type=int, default=6_500_000)
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=2000,
        help="the driver's checkpoint every this many commits "
        "(output.checkpoint_every); the last round is left uncovered",
    )
    p.add_argument(
        "--writer-every",
        type=int,
        default=0,
        help="while setting up, the checkpoint writer runs every this many commits "
        "(default: --checkpoint-every; a larger value spares the set-up the writer's "
        "growing checkpoints, which a real run spreads over its days). The last round is "
        "still left uncovered",
    )
    p.add_argument(
        "--iceberg",
        action="store_true",
        help="also write a one-row data file per manifest and time the finalise's "
        "Iceberg commit of them all",
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="also time a resume that reads every manifest (no checkpoint)",
    )
    p.add_argument(
        "--crashed",
        type=int,
        default=0,
        help="with --iceberg: this many write tasks, spread over the run, die between their "
        "files and their manifest; the resume removes their files as orphans and reads the "
        "rows the other tasks of their units wrote, then the resumed attempt commits them",
    )
    p.add_argument("--s3", action="store_true", help="on a SeaweedFS S3 server (started here)")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="keep the manifests an earlier run of the bench committed at the same size and "
        "settings (only the checkpoints are written again; commit_s then reads 0)",
    )
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child", default=None)
    args = p.parse_args()
    if args.child:
        return child(args)
    server, s3_env = None, None
    if args.s3:
        from tests.integration.services import start_seaweedfs

        server = start_seaweedfs(WORK / "seaweedfs")
        s3_env = server.env
        os.environ.update(s3_env)
    rows = []
    try:
        tracker = run_phase("tracker", 0, None, args)
        for size in (int(s) for s in args.sizes.split(",")):
            row = measure(size, s3_env, args)
            row.update(
                tracker_mb=tracker["tracker_mb"],
                ledger_mb=tracker["ledger_mb"],
                tracker_s=tracker["seconds"],
                batches=args.batches,
            )
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        if server is not None:
            server.stop()
    if not args.no_write:
        write_results(args, rows)


def write_results(args: argparse.Namespace, rows: list[dict]) -> None:
    from generation import machine, versions
    from results import add_newest_run

    lines = [
        f"## Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {machine()}. Versions: {versions()}. Storage: "
        f"{'SeaweedFS S3 on loopback' if args.s3 else 'local disk'}. {args.units} units a "
        f"manifest, each unit spread over {args.spread}; tracker and ledger fed "
        f"{args.batches:,} batch records.",
        "",
        "| manifests | bytes each | resume, s (with no checkpoint) | finalise, s "
        "(+ Iceberg commit; the next run's to the same table) | report, s | percentile filter's, qcraft score's reads, s "
        "| peak RSS of a phase, MB | checkpoint writer: "
        "checkpoints, s in all, s for the last, last MB, driver RSS MB (+ staging, s) "
        "| tracker, MB | ledger, MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cold = f" ({r['resume_cold_s']})" if "resume_cold_s" in r else ""
        lake = f" (+ {r['iceberg_s']}; next run's {r['iceberg_next_s']})" if "iceberg_s" in r else ""
        staging = f" (+ {r['staging_s']})" if r["staged_manifests"] else ""
        lines.append(
            f"| {r['manifests']:,} | {r['manifest_bytes']:,} | {r['resume_s']}{cold} | "
            f"{r['finalise_s']}{lake} | {r['report_s']} | "
            f"{r['percentile_reads_s']}, {r['score_reads_s']} | {r['peak_rss_mb']} | "
            f"{r['checkpoints']}, {r['checkpoint_writer_s']}, {r['checkpoint_last_s']}, "
            f"{r['checkpoint_bytes'] / 1e6:.1f}, {r['driver_writer_rss_mb']}{staging} | "
            f"{r['tracker_mb']} | {r['ledger_mb']} |"
        )
    writer = f" --writer-every {args.writer_every}" if args.writer_every else ""
    lines += [
        "",
        f"Raw: `{json.dumps(rows)}`",
        "",
        f"Reproduce: `python bench/bookkeeping.py --sizes {args.sizes} --units {args.units} "
        f"--spread {args.spread} --checkpoint-every {args.checkpoint_every}{writer}"
        f"{' --cold' if args.cold else ''}{' --iceberg' if args.iceberg else ''}"
        f"{f' --crashed {args.crashed}' if args.crashed else ''}"
        f"{' --s3' if args.s3 else ''}`",
        "",
    ]
    add_newest_run(
        REPO / "bench" / "RESULTS-bookkeeping.md",
        "Bookkeeping at FineWeb2-HQ scale (bench/bookkeeping.py)",
        lines,
    )


if __name__ == "__main__":
    main()
