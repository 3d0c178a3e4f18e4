"""The ``qcraft`` command: the only place that starts or joins Ray.

qcraft run CONFIG.yaml [--set dotted.key=value ...] [--address ADDR] [--shard I/N] [--dry-run]
    [--progress auto|bar|plain|none] [--json] [--verbose]
qcraft plan CONFIG.yaml [--set ...] [--address ADDR] [--shard I/N] [--measure N]
qcraft passages CONFIG.yaml [--set ...] [--address ADDR]
qcraft doctor CONFIG.yaml [--set ...] [--address ADDR]
qcraft report OUTPUT_PATH [OUTPUT_PATH ... | GLOB] [--html FILE] [--json FILE]
qcraft inspect OUTPUT_PATH [--language L] [--type T] [--lowest K | --none | --wrong-language] [-k N]
qcraft score OUTPUT_PATH [--model NAME] [--batch-size N] [--device DEV]
qcraft make-tiny-model DIR [--realistic-lengths [--mean-tokens N]]
qcraft make-sample-corpus DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

from qcraft_ray.config import RunConfig
from qcraft_ray.config_loader import load_config
from qcraft_ray.errors import ConfigError, UserError

log = logging.getLogger("qcraft")

# Errors that are the user's to fix (UserError): printed as one clear message, exit code 2.
EXIT_USAGE = 2


def cluster_address(cfg: RunConfig, address: str | None) -> str | None:
    return address or cfg.ray.address or os.environ.get("RAY_ADDRESS")


def init_ray(cfg: RunConfig, address: str | None) -> None:
    """Join the cluster named by --address / ray.address / RAY_ADDRESS, else start a
    local instance that listens on loopback only."""
    address = cluster_address(cfg, address)
    if not address:
        # Read by Ray at import time: a single-node instance on the loopback address,
        # instead of one that binds every interface.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if address:
        ray.init(address=address)
        return
    ray.init(
        num_cpus=cfg.ray.local_num_cpus,
        num_gpus=cfg.ray.local_num_gpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
    )


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (value parsed as YAML)",
    )
    p.add_argument("--address", default=None, help="Ray cluster address to join")
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="this job's share of the input, one of N (same as --set input.shard=I/N)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="read inputs and report documents/passages/prompts; no engine",
    )
    p.add_argument(
        "--measure",
        type=int,
        default=0,
        metavar="N",
        help="with plan / --dry-run: time one engine replica on N prompts sampled from the "
        "input, and estimate from that rate",
    )
    p.add_argument(
        "--progress",
        choices=["auto", "bar", "plain", "none"],
        default="auto",
        help="a live bar (auto: when stderr is a terminal), plain log lines (auto otherwise: "
        "ray job submit logs, CI, files), or nothing",
    )
    p.add_argument(
        "--json", action="store_true", help="end with the JSON summary instead of the short one"
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show every message (vLLM, Ray, Ray Data's operator progress) instead of keeping "
        "the known-harmless ones in OUTPUT/_logs/",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qcraft", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    _add_config_args(sub.add_parser("run", help="run the job"))
    _add_config_args(sub.add_parser("plan", help="same as run --dry-run"))
    _add_config_args(
        sub.add_parser(
            "passages", help="read -> passages -> write: pre-chunk a corpus, no generation"
        )
    )
    doc = sub.add_parser(
        "doctor", help="check what a run would need (versions, GPUs, model, input, output)"
    )
    doc.add_argument("config", help="YAML config file")
    doc.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    doc.add_argument("--address", default=None, help="the Ray cluster to check")
    rep = sub.add_parser(
        "report",
        help="summarize finished outputs (one, or several of one configuration: shards); "
        "write an HTML report",
    )
    rep.add_argument(
        "paths",
        nargs="+",
        metavar="path",
        help="a run's output.path; several (or a glob in the last part) combine into one",
    )
    rep.add_argument(
        "--html",
        default=None,
        help="where to write the page (default: OUTPUT_PATH/_report.html for one output)",
    )
    rep.add_argument(
        "--json", default=None, help="also write the report, in _report.json's shape, here"
    )
    ins = sub.add_parser(
        "inspect",
        help="print the outputs to look at (lowest scores, NONE, "
        "wrong language) with passage excerpts; no Ray",
    )
    ins.add_argument("path", help="the run's output.path")
    ins.add_argument("--language", default=None, help="only this language")
    ins.add_argument("--type", dest="type_", default=None, help="only this type")
    kind = ins.add_mutually_exclusive_group()
    kind.add_argument(
        "--lowest",
        type=int,
        default=None,
        metavar="K",
        help="the K lowest-scoring outputs per language",
    )
    kind.add_argument("--none", action="store_true", help="NONE answers only")
    kind.add_argument("--wrong-language", action="store_true", help="wrong-language outputs only")
    ins.add_argument("-k", type=int, default=5, help="examples per language and kind (5)")
    sc = sub.add_parser("score", help="score an existing output's faithfulness")
    sc.add_argument("path", help="the run's output.path")
    sc.add_argument("--model", default="BAAI/bge-m3", help="sentence-transformers model")
    sc.add_argument("--batch-size", type=int, default=64)
    sc.add_argument("--device", default=None, help="torch device; default: auto")
    tiny = sub.add_parser("make-tiny-model", help="write a tiny random Qwen3 (for tests)")
    tiny.add_argument("path")
    tiny.add_argument(
        "--realistic-lengths",
        action="store_true",
        help="outputs end after --mean-tokens tokens on average, with a tail (for benchmarks)",
    )
    tiny.add_argument("--mean-tokens", type=float, default=20.0)
    sample = sub.add_parser("make-sample-corpus", help="write the FineWeb-style sample corpus")
    sample.add_argument("path")
    return p


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def doctor_command(args: argparse.Namespace) -> int:
    """One line per check; exit code 1 if any failed. Writes no data."""
    from qcraft_ray.doctor import diagnose, failed, render

    cfg = load_config(args.config, args.overrides)
    address = cluster_address(cfg, args.address)
    try:
        found = diagnose(cfg, address, join=lambda a: init_ray(cfg, a))
    finally:
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            sys.modules["ray"].shutdown()
    print(render(found))
    return 1 if failed(found) else 0


def _preflight(cfg: RunConfig) -> None:
    """The cheap checks before anything else: a FAIL stops the run, a WARN is logged."""
    from qcraft_ray.compat.versions import Verdict
    from qcraft_ray.doctor import preflight
    from qcraft_ray.errors import UnsupportedVersionError

    found = preflight(cfg)
    bad = [f.line() for f in found if f.verdict == Verdict.FAIL]
    if bad:
        raise UnsupportedVersionError("; ".join(bad))
    for f in found:
        if f.verdict == Verdict.WARN:
            log.warning("%s", f.line())


def run_command(args: argparse.Namespace) -> int:
    from qcraft_ray.io.discover import plan_input
    from qcraft_ray.mode import Mode
    from qcraft_ray.store import OutputFolder

    t0 = time.monotonic()
    estimating = args.command == "plan" or args.dry_run
    if args.measure < 0 or (args.measure and not estimating):
        raise ConfigError(
            f"--measure {args.measure}: a number of prompts >= 1, with qcraft plan or --dry-run"
        )
    shard = [f"input.shard={args.shard}"] if args.shard else []
    cfg = load_config(args.config, [*args.overrides, *shard])
    _preflight(cfg)
    plan = plan_input(cfg)  # bad input fails here, before Ray starts
    log.info(
        "inputs checked: %d files, %d documents (%.1f s)",
        len(plan.files),
        plan.total_rows,
        time.monotonic() - t0,
    )
    if estimating:
        init_ray(cfg, args.address)
        from qcraft_ray.run import estimate_run  # imports Ray: only after init_ray's setup

        _print({"plan": estimate_run(cfg, plan, measure=args.measure)})
        return 0
    from qcraft_ray.terminal.session import terminal
    from qcraft_ray.terminal.summary import human_summary, json_summary

    with terminal(args.progress, args.verbose) as session:
        t0 = time.monotonic()
        init_ray(cfg, args.address)
        log.info("ray ready (%.1f s)", time.monotonic() - t0)
        if not args.verbose:
            import ray.data

            # Ray Data's own bars and operator tables: our progress says it, once
            ray.data.DataContext.get_current().enable_progress_bars = False
        from qcraft_ray.run import run  # imports Ray: only after init_ray's setup

        mode = Mode.PASSAGES if args.command == "passages" else Mode.GENERATE
        try:
            report = run(cfg, plan, mode, view=session.view)
        finally:
            import ray

            ray.shutdown()  # the workers' last lines arrive now, through the filter
            folder = OutputFolder(cfg.output.path, cfg.storage)
            kept = session.keep_log(folder) if folder.root_kind() == "folder" else None
    if report.already_complete:
        log.info(
            "run %s in %s is already complete: nothing to do (set "
            "output.if_exists=overwrite to run it again)",
            report.run_id,
            cfg.output.path,
        )
    if args.json:
        _print(json_summary(report, kept))
    else:
        print(human_summary(report, folder, kept))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parser().parse_args(argv)
    if args.command == "make-tiny-model":
        from qcraft_ray.devtools.tiny_model import build_tiny_qwen3

        print(
            build_tiny_qwen3(
                args.path, realistic_lengths=args.realistic_lengths, mean_tokens=args.mean_tokens
            )
        )
        return 0
    if args.command == "make-sample-corpus":
        from qcraft_ray.devtools.sample_corpus import write_sample_corpus

        for path in write_sample_corpus(args.path):
            print(path)
        return 0
    try:
        if args.command in ("report", "inspect"):
            from qcraft_ray.report import commands

            if args.command == "report":
                return commands.report_command(args)
            return commands.inspect_command(args)
        if args.command == "doctor":
            return doctor_command(args)
        if args.command == "score":
            from qcraft_ray.config import ScoreConfig, StorageConfig
            from qcraft_ray.passes.rescore import rescore

            cfg = ScoreConfig(model=args.model, batch_size=args.batch_size, device=args.device)
            _print({"mean_scores": rescore(args.path, StorageConfig(), cfg).mean_scores})
            return 0
        return run_command(args)
    except UserError as e:
        print(f"qcraft: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
