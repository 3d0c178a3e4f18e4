"""One live driver per output folder: a lease in ``output.path`` that the driver renews.

``_lease.json`` names its holder (run, attempt, host, process) and when it expires. A
driver takes the lease before it touches the folder and renews it every quarter of
``output.lease_ttl_s``; a second driver that finds a live lease held by another attempt
refuses, naming it. A lease not renewed in time (its driver died) is taken over; so is
one whose driver process, on this same host, is gone. Write tasks check the lease before
each commit, so a driver that lost its lease (it stalled past the TTL and another attempt
took over) stops committing instead of mixing its rows with the new attempt's.

Object stores offer no compare-and-swap through pyarrow: a taker writes its lease, waits,
and reads it back; of two drivers racing, only the last writer finds its own lease and
goes on.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from qcraft_ray.store import LEASE_FILE, OutputFolder

log = logging.getLogger("qcraft")


class LeaseHeld(RuntimeError):
    """Another live driver holds the output folder."""


class LeaseLost(RuntimeError):
    """This attempt's lease was taken over: it must not commit anything more."""


@dataclass(frozen=True)
class Lease:
    run_id: str
    attempt: str
    host: str
    pid: int
    renewed_at: float  # wall clock, seconds since the epoch
    ttl_s: float

    @property
    def expires_at(self) -> float:
        return self.renewed_at + self.ttl_s

    def live(self, now: float) -> bool:
        """Not expired, and (on this host) its driver process still runs."""
        if self.host == socket.gethostname() and not _running(self.pid):
            return False
        return now < self.expires_at

    def describe(self) -> str:
        return (
            f"run {self.run_id} attempt {self.attempt} (host {self.host}, pid {self.pid}; "
            f"lease renewed {time.time() - self.renewed_at:.0f} s ago, "
            f"expires in {self.expires_at - time.time():.0f} s)"
        )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


TORN_READS = 5  # reads of a lease that does not parse before giving up
TORN_PAUSE_S = 0.2


def holder(folder: OutputFolder) -> Lease | None:
    """The lease in the folder, live or not; None when there is none. A lease that does
    not parse is read again a few times: a store can serve a half-written object while
    the driver renews it (seen on SeaweedFS)."""
    for tries in range(1, TORN_READS + 1):
        if not folder.exists(LEASE_FILE):
            return None
        try:
            return Lease(**folder.read_json(LEASE_FILE))
        except json.JSONDecodeError:
            if tries == TORN_READS:
                raise
            time.sleep(TORN_PAUSE_S)
    return None


def acquire(
    folder: OutputFolder, run_id: str, attempt: str, ttl_s: float, settle_s: float | None = None
) -> Lease:
    """Take the folder's lease for ``attempt``, or raise :class:`LeaseHeld`.

    ``settle_s``: how long to wait before reading the lease back; default five times what
    writing it took (a racer needs about two such round trips), at least 0.2 s."""
    current = holder(folder)
    if current is not None and current.attempt != attempt and current.live(time.time()):
        raise LeaseHeld(f"output.path {folder.path} is in use by {current.describe()}")
    mine = Lease(run_id, attempt, socket.gethostname(), os.getpid(), time.time(), ttl_s)
    t0 = time.monotonic()
    folder.write_json(LEASE_FILE, asdict(mine))
    if settle_s is None:
        settle_s = max(0.2, 5 * (time.monotonic() - t0))
    time.sleep(settle_s)  # a driver racing us writes in this window; the last write wins
    won = holder(folder)
    if won is None or won.attempt != attempt:
        raise LeaseHeld(
            f"output.path {folder.path} was taken at the same moment by "
            f"{won.describe() if won else 'another driver'}"
        )
    return mine


def check(folder: OutputFolder, attempt: str) -> None:
    """Raise :class:`LeaseLost` unless ``attempt`` still holds the lease."""
    current = holder(folder)
    if current is None or current.attempt != attempt:
        who = current.describe() if current else "nobody (the lease file is gone)"
        raise LeaseLost(
            f"attempt {attempt} lost its lease on {folder.path} to {who}; it stops committing"
        )


def release(folder: OutputFolder, attempt: str) -> None:
    """Give the lease up, if this attempt still holds it."""
    current = holder(folder)
    if current is not None and current.attempt == attempt:
        folder.delete(LEASE_FILE)


@contextmanager
def renewing(folder: OutputFolder, lease: Lease) -> Iterator[threading.Event]:
    """Renew ``lease`` every quarter of its TTL while the block runs; yields an event set
    when the lease was lost (another attempt took it over)."""
    stop, lost = threading.Event(), threading.Event()

    def renew() -> None:
        while not stop.wait(lease.ttl_s / 4):
            try:
                check(folder, lease.attempt)
                folder.write_json(
                    LEASE_FILE,
                    asdict(
                        Lease(
                            lease.run_id,
                            lease.attempt,
                            lease.host,
                            lease.pid,
                            time.time(),
                            lease.ttl_s,
                        )
                    ),
                )
            except LeaseLost as e:
                log.error("%s", e)
                lost.set()
                return
            except OSError as e:  # storage down: the write tasks' own checks decide
                log.warning("renewing the lease on %s: %s", folder.path, e)

    thread = threading.Thread(target=renew, name="qcraft-lease", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join(timeout=10)
