"""Entry point for `ray job submit`: the same job as `qcraft run`, same config.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/generate_queries.py --config configs/cluster-8xh100.yaml [--set k=v ...]

Ray sets RAY_ADDRESS for the job's driver, so this joins the cluster it was submitted to.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# `python jobs/generate_queries.py` puts jobs/ first on sys.path; the package sits beside it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qcraft_ray.cli import main  # noqa: E402


def to_cli_args(argv: list[str]) -> list[str]:
    p = argparse.ArgumentParser(prog="generate_queries.py")
    p.add_argument("--config", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--address", default=None)
    p.add_argument("--shard", default=None)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--measure", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    out = ["run", args.config]
    for item in args.overrides:
        out += ["--set", item]
    if args.address:
        out += ["--address", args.address]
    if args.shard:
        out += ["--shard", args.shard]
    if args.dry_run:
        out.append("--dry-run")
    if args.measure:
        out += ["--measure", str(args.measure)]
    out += [flag for flag, on in (("--json", args.json), ("--verbose", args.verbose)) if on]
    return out


if __name__ == "__main__":
    sys.exit(main(to_cli_args(sys.argv[1:])))
