"""One report across several finished outputs of the same configuration (the shards of
``--shard i/n``, or runs appending to one table): ``qcraft report OUT1 OUT2 ...``.

Each output's counters come from its own bookkeeping (its accepted manifests), and are
added up; so are its documents, files, engine-hours and retries. Outputs are refused,
naming the first setting that differs, when their configurations differ in anything but
the output path and the shard, or when their schema or bookkeeping versions differ.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from qcraft_ray.config import StorageConfig
from qcraft_ray.errors import OutputPathError
from qcraft_ray.ledger.checkpoints import fold
from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.ledger.fingerprint import may_change_keys
from qcraft_ray.report.cost import Cost
from qcraft_ray.report.model import InputInfo, OutputInfo, Retries, RunReport, Throughput, read_run
from qcraft_ray.report.quality import quality_of
from qcraft_ray.store import OutputFolder
from qcraft_ray.telemetry import EngineOccupancy

# settings that may differ between the outputs of one job (dotted keys)
MAY_DIFFER = ("output.path", "input.shard")
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Finished:
    """One output: where, its report, and its counters (from its bookkeeping)."""

    path: str
    run: RunReport
    counts: RowCounts


def expand(paths: list[str], storage: StorageConfig) -> list[str]:
    """``paths`` with a glob in the last part of a path (``s3://b/out/shard-*``) replaced
    by the folders it matches, sorted; a glob that matches nothing is an error."""
    out: list[str] = []
    for path in paths:
        path = path.rstrip("/")
        parent, _, last = path.rpartition("/")
        if not any(c in last for c in GLOB_CHARS):
            out.append(path)
            continue
        found = sorted(
            f"{parent}/{name}"
            for name in OutputFolder(parent, storage).root_entries()
            if fnmatch.fnmatchcase(name, last)
        )
        if not found:
            raise OutputPathError(f"{path}: no output matches")
        out += found
    return out


def read_finished(path: str, storage: StorageConfig) -> Finished:
    folder, run = read_run(path, storage)
    if not run.mode.generates:
        raise OutputPathError(
            f"{path} holds passages (qcraft passages), not generated outputs; its "
            "_report.json has the counts"
        )
    return Finished(path, run, fold(folder, upto="counts", finished=True).counts)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def check_same(outputs: list[Finished]) -> None:
    """Refuse outputs that are not of one configuration and schema."""
    first = outputs[0]
    base = _flat(first.run.config.model_dump(mode="json"))
    for other in outputs[1:]:
        for what in ("schema_version", "bookkeeping", "mode"):
            a, b = getattr(first.run, what), getattr(other.run, what)
            if a != b:
                raise OutputPathError(
                    f"{other.path} has {what} {b}, {first.path} has {a}: not one job's outputs"
                )
        theirs = _flat(other.run.config.model_dump(mode="json"))
        free = (*MAY_DIFFER, *may_change_keys())  # a shard may run on a cluster of its own
        for key in sorted(set(base) | set(theirs)):
            if any(key == k or key.startswith(k + ".") for k in free):
                continue
            if base.get(key) != theirs.get(key):
                raise OutputPathError(
                    f"{other.path} was made with {key}={theirs.get(key)!r}, {first.path} with "
                    f"{key}={base.get(key)!r}: only outputs of one configuration combine "
                    f"(they may differ in {', '.join(MAY_DIFFER)} and the settings that may "
                    "change when resuming)"
                )


def _common_parent(paths: list[str]) -> str:
    parts = [p.split("/") for p in paths]
    common = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return "/".join(common) or paths[0]


def _cost(runs: list[RunReport]) -> Cost | None:
    costs = [r.cost for r in runs if r.cost is not None]
    if not costs:
        return None
    hours = sum(c.engine_hours for c in costs)
    by_gpus: dict[str, float] = {}
    for c in costs:
        for k, v in c.engine_hours_by_gpus.items():
            by_gpus[k] = round(by_gpus.get(k, 0.0) + v, 4)
    estimated = [c.estimated_engine_hours for c in costs]
    est = sum(e for e in estimated if e is not None) if None not in estimated else None
    money = [c.money for c in costs]
    return Cost(
        engine_hours=round(hours, 4),
        gpu_hours=round(sum(c.gpu_hours for c in costs), 4),
        engine_hours_by_gpus=by_gpus,
        estimated_engine_hours=round(est, 4) if est is not None else None,
        ratio=round(hours / est, 3) if est else None,
        gpu_hour_price=costs[0].gpu_hour_price,
        money=round(sum(m for m in money if m is not None), 2) if None not in money else None,
    )


def combine(outputs: list[Finished]) -> tuple[RunReport, RowCounts]:
    """One report in ``_report.json``'s shape, and the counters added up."""
    if not outputs:
        raise OutputPathError("no output to report on")
    check_same(outputs)
    runs = [o.run for o in outputs]
    first = runs[0]
    counts = RowCounts.merge(o.counts for o in outputs)
    k = first.config.report.examples_per_language
    examples: dict[str, dict[str, list]] = {}
    for r in runs:
        for lang, kinds in r.examples.items():
            for kind, picked in kinds.items():
                have = examples.setdefault(lang, {}).setdefault(kind, [])
                have += picked[: max(0, k - len(have))]
    stage: dict[str, float] = {}
    for r in runs:
        for name, s in r.stage_seconds.items():
            stage[name] = round(stage.get(name, 0.0) + s, 3)
    replicas = {f"{i}/{n}": e for i, r in enumerate(runs) for n, e in r.engine.replicas.items()}
    problems = [f"{o.path}: {p}" for o in outputs for p in (o.run.problems or [])]
    combined = first.model_copy(
        update={
            "run_id": "+".join(r.run_id for r in runs),
            "status": "complete" if all(r.status == "complete" for r in runs) else "incomplete",
            "started_at": min(r.started_at for r in runs),
            "finished_at": max(r.finished_at for r in runs),
            "wall_seconds": max(r.wall_seconds for r in runs),  # side by side
            "stage_seconds": stage,
            "throughput": Throughput(
                prompts=sum(r.throughput.prompts for r in runs),
                outputs_per_second=round(sum(r.throughput.outputs_per_second for r in runs), 3),
                generated_tokens_per_second=round(
                    sum(r.throughput.generated_tokens_per_second for r in runs), 3
                ),
            ),
            "replicas": sum(r.replicas for r in runs),
            "engine": EngineOccupancy(replicas=replicas),
            "retries": Retries(
                replicas_lost=sum(r.retries.replicas_lost for r in runs),
                prompts_retried=sum(r.retries.prompts_retried for r in runs),
                prompts_repeated=sum(r.retries.prompts_repeated for r in runs),
            ),
            "attempts": [a for r in runs for a in r.attempts],
            "resumed": any(r.resumed for r in runs),
            "input": InputInfo(
                files=sum(r.input.files for r in runs),
                documents=sum(r.input.documents for r in runs),
                paths=list(dict.fromkeys(p for r in runs for p in r.input.paths)),
            ),
            "output": OutputInfo(
                path=_common_parent([o.path for o in outputs]),
                partition_by=first.output.partition_by,
                data_glob=first.output.data_glob,
                rows=sum(r.output.rows for r in runs),
                rejected_rows=sum(r.output.rejected_rows for r in runs),
                files=sum(r.output.files for r in runs),
            ),
            "documents_accounted": sum(r.documents_accounted for r in runs),
            "orphan_files_removed": sum(r.orphan_files_removed for r in runs),
            "counts": counts,
            "mean_scores": counts.mean_scores(),
            "quality": quality_of(counts, first.config.generation.samples_per_prompt),
            "examples": examples,
            "problems": problems or None,
            "iceberg": None,
            "scored": None,
            "timeline": None,  # each output's own report has its timeline
            "cost": _cost(runs),
            "combined_from": [o.path for o in outputs],
        }
    )
    return combined, counts
