"""``qcraft report`` and ``qcraft inspect``: read finished outputs, print, write pages.
No Ray."""

from __future__ import annotations

import argparse
import json

from qcraft_ray.config import StorageConfig
from qcraft_ray.ledger.checkpoints import fold
from qcraft_ray.report.combine import combine, expand, read_finished
from qcraft_ray.report.examples import KINDS, inert, pick
from qcraft_ray.report.model import read_run
from qcraft_ray.report.page import render_html, render_text
from qcraft_ray.report.summary import summarize
from qcraft_ray.store import REPORT_HTML, TEMP_DIR, OutputFolder


def _write_local(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def report_command(args: argparse.Namespace) -> int:
    """Print the summary table and write the self-contained HTML page: of one output, or
    of several of one configuration added up (:mod:`qcraft_ray.report.combine`)."""
    storage = StorageConfig()
    paths = expand(args.paths, storage)
    outputs = [read_finished(p, storage) for p in paths]  # the accepted manifests' counts
    if len(outputs) == 1:
        run, counts, title = outputs[0].run, outputs[0].counts, "qcraft run report"
    else:
        run, counts = combine(outputs)
        title = f"qcraft report of {len(outputs)} outputs"
    summary = summarize(run.output.path, counts, run.config.generation.types)
    print(render_text(summary, run))
    if len(outputs) > 1:
        print("\noutputs: " + ", ".join(o.path for o in outputs))
    html = render_html(summary, run, title).encode("utf-8")
    if args.html:
        _write_local(args.html, html)
        target = args.html
    elif len(outputs) == 1:
        folder = OutputFolder(outputs[0].path, storage)
        made_temp = TEMP_DIR not in folder.root_entries()
        folder.write_bytes(REPORT_HTML, html)
        if made_temp:  # the write's own temporary folder (local outputs): not left behind
            folder.delete_dir(TEMP_DIR)
        target = folder.display(REPORT_HTML)
    else:
        target = "combined_report.html"
        _write_local(target, html)
    print(f"\nHTML report: {target}")
    if args.json:
        _write_local(args.json, json.dumps(run.to_json(), indent=1).encode("utf-8"))
        print(f"JSON report: {args.json}")
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    """Print examples picked from the data files (see qcraft_ray.report.examples)."""
    folder, _ = read_run(args.path, StorageConfig())
    files = fold(folder, upto="files", finished=True).data_files
    kinds: tuple[str, ...] = KINDS
    k = args.k
    if args.lowest is not None:
        kinds, k = ("lowest_score",), args.lowest
    elif args.none:
        kinds = ("none",)
    elif args.wrong_language:
        kinds = ("wrong_language",)
    found = pick(folder, files, k, kinds, args.language, args.type_)
    if not found:
        print("no such outputs")
    for lang, by_kind in found.items():
        for kind, examples in by_kind.items():
            print(f"== {lang}: {kind.replace('_', ' ')} ==")
            for e in examples:
                score = "" if e.score is None else f" score={e.score:.4f}"
                found_as = f" found={e.detected_language}" if e.detected_language else ""
                print(f"[{e.type}] {e.doc_id}#{e.chunk_index}{score}{found_as}")
                print(f"  output:  {inert(e.output)}")
                print(f"  passage: {inert(e.passage)}")
    return 0
