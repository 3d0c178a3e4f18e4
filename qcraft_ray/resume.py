"""Start, resume or refuse a run in ``output.path``; what a resumed run may skip.

``_run.json`` records the run id, the mode, the config settings that decide the output
(the *fingerprint*) and the input files. Re-running against the same folder:

* finished (``_SUCCESS`` present): nothing to do, and the caller says so;
* same fingerprint: resume. Orphan files are removed, manifests are read, units whose
  rows are all committed are skipped, and rows already written in other units are
  dropped before the engine;
* different fingerprint: refused with the keys that differ, unless
  ``output.if_exists=overwrite``.

Resource settings (replicas, batch sizes, Ray resources, storage endpoints, retries)
are not in the fingerprint: a run may resume on a smaller or larger cluster.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.io import filesystems
from qcraft_ray.io.commit import (RUN_FILE, SUCCESS_FILE, Manifest, exists, get_json, put_json,
                                  read_manifests, remove_orphans)
from qcraft_ray.io.discover import InputPlan
from qcraft_ray.stages.units import identity, is_complete, is_overfull, merge_units

# Settings that change how fast a run goes, never what it writes.
RESOURCE_KEYS = (
    "output.if_exists", "output.min_rows_per_file", "generation.replicas",
    "generation.cpus_per_replica", "generation.batch_size", "generation.batches_in_flight",
    "generation.max_replica_deaths_per_row",
    "generation.engine.gpu_memory_utilization", "generation.engine.max_num_seqs",
    "generation.engine.max_num_batched_tokens", "generation.engine.env",
    "storage", "ray", "estimate", "report", "score.replicas", "score.gpus_per_replica",
    "score.cpus_per_replica", "score.batch_size", "score.device",
)  # not input.rows_per_task: it defines the work units that resume counts


class OutputPathError(RuntimeError):
    """output.path cannot be used for this run; the message says why and what to do."""


def _checked(out_path: str, what: str, fn):
    try:
        return fn()
    except OSError as e:
        raise OutputPathError(f"output.path {out_path}: cannot {what}: {e}") from e


@dataclass
class RunState:
    run_id: str
    attempt: str
    resumed: bool = False
    complete: bool = False  # a finished run: nothing to do
    done_units: dict[str, int] = field(default_factory=dict)  # unit -> documents
    written: pa.Table | None = None  # identities already written in unfinished units
    removed_orphans: list[str] = field(default_factory=list)
    attempts: list[dict] = field(default_factory=list)
    known_manifests: set[str] = field(default_factory=set)  # committed before this attempt

    def accepts(self, manifest: Manifest) -> bool:
        """Whether a manifest belongs to this run: committed before this attempt began,
        or by it. A task of an earlier, killed attempt that committed after the resume
        started (a zombie) is not accepted: its rows were generated again."""
        return manifest.attempt == self.attempt or manifest.name in self.known_manifests


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key not in ("input.language_map",):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def fingerprint(cfg: RunConfig, mode: str, plan: InputPlan) -> dict[str, Any]:
    """The settings and inputs that decide a run's output, as flat dotted keys."""
    flat = _flatten(cfg.model_dump(mode="json"))
    keep = {k: v for k, v in flat.items()
            if not any(k == r or k.startswith(r + ".") for r in RESOURCE_KEYS)}
    keep["mode"] = mode
    keep["input.files"] = [[f.display, f.num_rows] for f in plan.files]
    return keep


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}"
            for k in keys if old.get(k) != new.get(k)]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def open_run(cfg: RunConfig, plan: InputPlan, mode: str) -> RunState:
    """Prepare ``output.path`` for a run: start fresh, resume, or refuse."""
    out = cfg.output
    fs, root = filesystems.resolve(out.path, cfg.storage)
    info = _checked(out.path, "read it", lambda: fs.get_file_info(root))
    if info.type == pafs.FileType.File:
        raise OutputPathError(f"output.path {out.path} is a file, not a folder")
    entries = (_checked(out.path, "list it", lambda: fs.get_file_info(pafs.FileSelector(root)))
               if info.type == pafs.FileType.Directory else [])
    if entries and out.if_exists == "overwrite":
        fs.delete_dir_contents(root)
        entries = []
    current = fingerprint(cfg, mode, plan)
    attempt = uuid.uuid4().hex[:6]
    if not entries:
        _checked(out.path, "create it", lambda: fs.create_dir(root, recursive=True))
        state = RunState(new_run_id(), attempt,
                         attempts=[{"attempt": attempt, "started": now_iso()}])
        # the first write doubles as the check that output.path is writable, before any
        # engine starts
        _checked(out.path, "write to it", lambda: _save(fs, root, state, mode, current))
        return state
    if out.if_exists == "error":
        raise OutputPathError(f"output.path {out.path} is not empty (output.if_exists=error)")
    run_file = filesystems.join(root, RUN_FILE)
    if not exists(fs, run_file):
        raise OutputPathError(
            f"output.path {out.path} is not empty and holds no qcraft run ({RUN_FILE} is "
            "missing); choose another path, or set output.if_exists=overwrite to delete it")
    previous = get_json(fs, run_file)
    diffs = _differences(previous["fingerprint"], current)
    if diffs:
        raise OutputPathError(
            f"output.path {out.path} holds run {previous['run_id']} made with a different "
            f"config or input; refusing to mix them. Differences: {'; '.join(diffs)}. "
            "Set output.if_exists=overwrite to start over, or choose another output.path.")
    state = RunState(previous["run_id"], attempt, resumed=True,
                     attempts=[*previous.get("attempts", []),
                               {"attempt": attempt, "started": now_iso()}])
    if exists(fs, filesystems.join(root, SUCCESS_FILE)):
        state.complete = True
        return state
    manifests = read_manifests(fs, root)
    state.known_manifests = {m.name for m in manifests}
    state.removed_orphans = remove_orphans(fs, root, manifests)
    state.done_units, unfinished = _units(manifests)
    state.written = _written(fs, root, manifests, unfinished)
    _save(fs, root, state, mode, current)
    return state


def _save(fs, root: str, state: RunState, mode: str, current: dict) -> None:
    put_json(fs, filesystems.join(root, RUN_FILE),
             {"run_id": state.run_id, "mode": mode, "fingerprint": current,
              "attempts": state.attempts})


def _units(manifests: list[Manifest]) -> tuple[dict[str, int], set[str]]:
    done, unfinished = {}, set()
    for unit, counts in merge_units(m.units for m in manifests).items():
        if is_overfull(counts):
            raise RuntimeError(f"output holds more rows of unit {unit} than it yields "
                               f"(rows, expected, documents seen, documents: {counts}): "
                               "duplicated rows; start over with output.if_exists=overwrite")
        if is_complete(counts):
            done[unit] = counts[3]
        else:
            unfinished.add(unit)
    return done, unfinished


def _written(fs, root: str, manifests: list[Manifest], unfinished: set[str]
             ) -> pa.Table | None:
    """Identities of rows in files that hold rows of unfinished units."""
    files = sorted({f for m in manifests if unfinished & set(m.units) for f in m.files})
    if not files:
        return None
    return pa.concat_tables([_identity_of(fs, filesystems.join(root, f)) for f in files])


def _identity_of(fs, path: str) -> pa.Table:
    with fs.open_input_file(path) as f:
        source = pq.ParquetFile(f)
        table = source.read(columns=[c for c in S.ROW_IDENTITY
                                     if c in source.schema_arrow.names])
    if S.TYPE not in table.column_names:  # passage rows have no type
        table = table.append_column(S.TYPE, pa.nulls(table.num_rows, pa.string()))
    return identity(table)
