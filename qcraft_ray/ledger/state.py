"""Start, resume or refuse a run in ``output.path``; what a resumed run may skip.

``_run.json`` records the run id, the mode, the fingerprint
(:mod:`qcraft_ray.ledger.fingerprint`) and the attempts. Re-running against the same
folder:

* finished (``_SUCCESS`` present): nothing to do, and the caller says so;
* same fingerprint: resume. Orphan files are removed, manifests are read, units whose
  rows are all committed are skipped, and rows already written in other units are
  dropped before the engine;
* different fingerprint: refused with the keys that differ, unless
  ``output.if_exists=overwrite``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

import pyarrow as pa

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.errors import OutputPathError
from qcraft_ray.io.plan import InputPlan
from qcraft_ray.ledger.checkpoints import fold
from qcraft_ray.ledger.committed import Committed
from qcraft_ray.ledger.fingerprint import SNAPSHOT_KEY, differences, fingerprint
from qcraft_ray.ledger.lease import Lease, LeaseHeld, acquire, holder
from qcraft_ray.ledger.manifests import Manifest, list_output, remove_uncommitted
from qcraft_ray.ledger.unit_table import UnitTable
from qcraft_ray.ledger.units import UnitCounts, identity
from qcraft_ray.mode import Mode
from qcraft_ray.store import (
    LEASE_FILE,
    RUN_FILE,
    SUCCESS_FILE,
    TEMP_DIR,
    OutputFolder,
    RetryPolicy,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Attempt:
    """One try at a run: its id and when it started."""

    attempt: str
    started: str


@dataclass
class RunState:
    run_id: str
    attempt: str
    mode: Mode
    folder: OutputFolder  # output.path: built once here, used by every step of the run
    resumed: bool = False
    complete: bool = False  # a finished run: nothing to do
    done_units: dict[str, int] = field(default_factory=dict)  # unit -> documents
    written: pa.Table | None = None  # identities already written in unfinished units
    removed_orphans: list[str] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    known_manifests: set[str] = field(default_factory=set)  # committed before this attempt
    lease: Lease | None = None  # this attempt's hold on the folder (none: nothing to do)
    committed: Committed = field(default_factory=Committed)  # what earlier attempts left

    def accepts(self, manifest: Manifest) -> bool:
        """Whether a manifest belongs to this run: committed before this attempt began,
        or by it. A task of an earlier, killed attempt that committed after the resume
        started (a zombie) is not accepted: its rows were generated again."""
        return manifest.attempt == self.attempt or manifest.name in self.known_manifests

    @property
    def documents_done(self) -> int:
        return sum(self.done_units.values())

    @property
    def rows_already_written(self) -> int:
        return self.written.num_rows if self.written is not None else 0


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def _checked(folder: OutputFolder, what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except OSError as e:
        raise OutputPathError(f"output.path {folder.path}: cannot {what}: {e}") from e


def pinned_snapshot(cfg: RunConfig) -> int | None:
    """The Iceberg snapshot an earlier attempt of the run in ``output.path`` read, so a
    resume reads the same rows (None: no such run, or its input is not a table)."""
    if cfg.input.iceberg is None or cfg.input.iceberg.snapshot_id is not None:
        return None
    if cfg.output.if_exists != "resume":
        return None
    folder = OutputFolder.for_run(cfg.output, cfg.storage)
    if not folder.exists(RUN_FILE):
        return None
    value = folder.read_json(RUN_FILE).get("fingerprint", {}).get(SNAPSHOT_KEY)
    return int(value) if value is not None else None


def open_run(cfg: RunConfig, plan: InputPlan, mode: Mode) -> RunState:
    """Prepare ``output.path`` for a run: start fresh, resume, or refuse."""
    out = cfg.output
    folder = OutputFolder.for_run(out, cfg.storage)
    # the first calls double as the check that output.path can be used, before any
    # engine starts: a few quick tries, so a wrong path fails in seconds
    probe = folder.with_retry(RetryPolicy(min(3, cfg.storage.attempts), 2.0))
    kind = _checked(probe, "read it", probe.root_kind)
    if kind == "file":
        raise OutputPathError(f"output.path {out.path} is a file, not a folder")
    entries = _checked(probe, "list it", probe.root_entries) if kind == "folder" else []
    if entries:
        _refuse_if_held(folder)
        # what a driver that died before writing its run file leaves is not a run
        entries = [e for e in entries if e not in (LEASE_FILE, TEMP_DIR)]
    if entries and out.if_exists == "overwrite":
        folder.clear()
        entries = []
    current = fingerprint(cfg, mode, plan)
    attempt = Attempt(uuid.uuid4().hex[:6], now_iso())
    if not entries:
        _checked(probe, "create it", probe.create)
        state = RunState(new_run_id(), attempt.attempt, mode, folder, attempts=[attempt])
        state.lease = _checked(
            probe,
            "write to it",
            lambda: _take_lease(probe, state.run_id, state.attempt, out.lease_ttl_s),
        )
        save(folder, state, current)
        return state
    if out.if_exists == "error":
        raise OutputPathError(f"output.path {out.path} is not empty (output.if_exists=error)")
    if not folder.exists(RUN_FILE):
        raise OutputPathError(
            f"output.path {out.path} is not empty and holds no qcraft run ({RUN_FILE} is "
            "missing); choose another path, or set output.if_exists=overwrite to delete it"
        )
    previous = folder.read_json(RUN_FILE)
    diffs = differences(previous["fingerprint"], current)
    if diffs:
        raise OutputPathError(
            f"output.path {out.path} holds run {previous['run_id']} made with a different "
            f"config or input; refusing to mix them. Differences: {'; '.join(diffs)}. "
            "Set output.if_exists=overwrite to start over, or choose another output.path."
        )
    state = RunState(
        previous["run_id"],
        attempt.attempt,
        mode,
        folder,
        resumed=True,
        attempts=[*(Attempt(**a) for a in previous.get("attempts", [])), attempt],
    )
    if folder.exists(SUCCESS_FILE):
        state.complete = True
        return state
    state.lease = _take_lease(folder, state.run_id, state.attempt, out.lease_ttl_s)
    committed, state.removed_orphans = committed_so_far(folder)
    state.committed = committed
    state.known_manifests = set(committed.names)
    state.done_units, unfinished = _units(committed.units)
    state.written = _written(folder, committed.files_of(unfinished))
    save(folder, state, current)
    return state


def committed_so_far(folder: OutputFolder) -> tuple[Committed, list[str]]:
    """A resume's reads: what every committed manifest adds up to (the newest checkpoint
    and the manifests after it), and the orphan files removed; one listing for both."""
    listing = list_output(folder)
    committed = fold(folder, names=listing.manifests)
    return committed, remove_uncommitted(folder, set(committed.files), listing.files)


_HELD = "; wait for it to finish, or stop it (its lease then expires) and run again"


def _refuse_if_held(folder: OutputFolder) -> None:
    """A live driver's folder is neither overwritten nor resumed."""
    current = holder(folder)
    if current is not None and current.live(time.time()):
        raise OutputPathError(
            f"output.path {folder.path} is in use by {current.describe()}" + _HELD
        )


def _take_lease(folder: OutputFolder, run_id: str, attempt: str, ttl_s: float) -> Lease:
    try:
        return acquire(folder, run_id, attempt, ttl_s)
    except LeaseHeld as e:
        raise OutputPathError(f"{e}{_HELD}") from e


def save(folder: OutputFolder, state: RunState, current: dict[str, Any]) -> None:
    folder.write_json(
        RUN_FILE,
        {
            "run_id": state.run_id,
            "mode": state.mode.value,
            "fingerprint": current,
            "attempts": [asdict(a) for a in state.attempts],
        },
    )


def _units(units: UnitTable) -> tuple[dict[str, int], list[str]]:
    """Complete units -> documents, and the units not fully written."""
    overfull = units.first_overfull()
    if overfull is not None:
        unit, counts = overfull
        raise RuntimeError(
            f"output holds more rows of unit {unit} than it yields "
            f"({_describe(counts)}): duplicated rows; start over with "
            "output.if_exists=overwrite"
        )
    return units.done(), units.unfinished()


def _describe(c: UnitCounts) -> str:
    return (
        f"{c.rows_written} rows written of {c.rows_expected} expected, "
        f"{c.documents_written} of {c.documents} documents"
    )


def _written(folder: OutputFolder, files: list[str], threads: int = 32) -> pa.Table | None:
    """Identities of the rows in ``files`` (those that hold rows of unfinished units),
    read by a pool of threads (on an object store each file is a request or two)."""
    if not files:
        return None
    with ThreadPoolExecutor(max(1, min(threads, len(files)))) as pool:
        return pa.concat_tables(list(pool.map(lambda f: _identity_of(folder, f), files)))


def _identity_of(folder: OutputFolder, rel: str) -> pa.Table:
    table = folder.read_parquet(rel, columns=list(S.ROW_IDENTITY))
    for name, kind in ((S.TYPE, pa.string()), (S.SAMPLE_INDEX, pa.int32())):
        if name not in table.column_names:  # passage rows have neither
            table = table.append_column(name, pa.nulls(table.num_rows, kind))
    return identity(table)
