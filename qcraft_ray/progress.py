"""Live progress: stages send counters to one small actor; the driver logs a line.

Stages call ``progress.add({...})`` (fire and forget, never blocking a task); the
driver's :func:`track_progress` polls the tracker every ``report.progress_interval_s``
and logs, to the job's log under ``ray job submit`` as under ``qcraft run``::

    qcraft progress: documents 1,200/75,000 (1.6%), 75,000 read | passages 3,400 |
    prompts 2,100/5,400 | outputs 2,000 (45.1/s) | generated tokens 820/s | rejected 310 |
    ETA 12m30s

``documents`` and ``rejected`` count what is committed to storage (``read``: documents
the passage stage has taken in, shown while ahead of the committed ones); ``outputs`` and
generated tokens count what the engine replicas have produced (written a little later,
once a write task gathers ``output.min_rows_per_file`` rows).

``prompts`` gets its total once every document has been read (before that the total is
not known without a second pass); the ETA then comes from prompts. Work done twice (a
block or a commit that Ray ran again, a batch a lost replica had started, a finished
batch generated again after its result was lost with a node) is counted apart, so each
prompt counts once. The tracker's final snapshot (seconds spent per stage, summed over
tasks, and where each engine replica ran and how full it kept its engine) goes into
the run report.
The driver also keeps the run's timeline (:mod:`qcraft_ray.report.timeline`): a point
per interval, and the replicas' and nodes' events, for the report.
The tracker lives on the driver's node, so it outlives any worker node.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from qcraft_ray.digests import DigestSet, digest
from qcraft_ray.placement import on_this_node
from qcraft_ray.telemetry import (
    EngineOccupancy,
    EngineReport,
    OccupancySnapshot,
    ReplicaReady,
    engine_occupancy,
)
from qcraft_ray.timeline import Timeline, TimelineRecorder

log = logging.getLogger("qcraft")


class ProgressTracker:
    """Counters added by stages, and how busy each engine replica kept its engine
    (a plain class; run as a Ray actor)."""

    def __init__(self) -> None:
        self._counts: Counter = Counter()
        self._ready: dict[str, ReplicaReady] = {}
        self._engines: dict[str, OccupancySnapshot | None] = {}  # replica -> latest
        self._seen = DigestSet()  # digests of the keys of counters already counted
        self._starting: set[str] = set()
        self._lost: set[str] = set()
        self._events: list[tuple[float, str, str | None, str | None]] = []  # epoch, kind, ...

    def add(self, counters: dict[str, float], once: str | None = None) -> None:
        """Add ``counters``. ``once``: what they count (a work unit read, a manifest
        committed); a task that Ray runs again sends the same key, and is counted once."""
        if once is not None and not self._seen.add(digest(once)):
            return
        self._counts.update(counters)

    def snapshot(self) -> dict[str, float]:
        return dict(self._counts)

    def sample(self) -> Sample:
        """The counters, and the replicas up, loading and lost."""
        up = set(self._ready) - self._lost
        loading = self._starting - set(self._ready) - self._lost
        return Sample(dict(self._counts), len(up), len(loading), len(self._lost))

    def replica_starting(self, replica: str) -> None:
        """A replica's constructor began (its engine is loading)."""
        self._starting.add(replica)

    def events(self) -> list[tuple[float, str, str | None, str | None]]:
        return list(self._events)

    def replica_ready(self, ready: ReplicaReady) -> None:
        """A replica's engine is up (it may never get work: it is listed all the same)."""
        self._ready[ready.replica] = ready
        node = ready.node_address
        self._events.append((ready.started_at, "replica_started", ready.replica, node))
        self._events.append((ready.started_at + ready.load_s, "replica_ready", ready.replica, node))

    def replica_lost(self, replica: str, at: float | None = None) -> None:
        """A replica died while generating, found at ``at`` (epoch; default now); counted
        once, however many batches it held."""
        if replica in self._lost:
            return
        self._lost.add(replica)
        node = self._ready[replica].node_address if replica in self._ready else None
        self._events.append((time.time() if at is None else at, "replica_lost", replica, node))

    def engine(self, report: EngineReport) -> None:
        """A replica's occupancy so far (the latest replaces the earlier ones)."""
        self._engines[report.replica] = report.occupancy

    def engine_summary(self) -> EngineOccupancy:
        """:func:`~qcraft_ray.telemetry.engine_occupancy` of every replica that came up."""
        return engine_occupancy(self._ready, self._engines)


@dataclass(frozen=True)
class Sample:
    """What the tracker holds at one moment."""

    counters: dict[str, float]
    replicas_up: int = 0
    replicas_loading: int = 0
    replicas_lost: int = 0


class ProgressView(Protocol):
    """Where the driver shows progress: log lines (:class:`LogLines`), or a live bar
    (``qcraft_ray.terminal.bar``) when the CLI runs in a terminal. A view with a
    ``redraw_s`` attribute is shown that often; the others once an interval."""

    def show(self, sample: Sample, total_documents: int, elapsed: float, already: int) -> None: ...

    def close(self, sample: Sample, total_documents: int, elapsed: float, already: int) -> None: ...


class LogLines:
    """One ``qcraft progress:`` log line per interval, and one at the end."""

    def show(self, sample: Sample, total_documents: int, elapsed: float, already: int) -> None:
        log.info("%s", format_line(sample.counters, total_documents, elapsed, already))

    close = show


class Silent:
    """No progress shown (``--progress none``)."""

    def show(self, sample: Sample, total_documents: int, elapsed: float, already: int) -> None:
        pass

    close = show


@dataclass
class FinalProgress:
    """What the tracker held when the pipeline ended: the counters, and
    :meth:`ProgressTracker.engine_summary`."""

    counters: dict[str, float] = field(default_factory=dict)
    engine: EngineOccupancy = field(default_factory=EngineOccupancy)
    timeline: Timeline | None = None


class RemoteProgress:
    """Fire-and-forget ``add`` to a :class:`ProgressTracker` actor (picklable)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def add(self, counters: dict[str, float], once: str | None = None) -> None:
        self._handle.add.remote(counters, once)

    def replica_ready(self, ready: ReplicaReady) -> None:
        self._handle.replica_ready.remote(ready)

    def engine(self, report: EngineReport) -> None:
        self._handle.engine.remote(report)

    def replica_lost(self, replica: str) -> None:
        self._handle.replica_lost.remote(replica, time.time())

    def replica_starting(self, replica: str) -> None:
        self._handle.replica_starting.remote(replica)


def duration(seconds: float) -> str:
    """'1h02m' or '3m05s'."""
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def format_line(
    snap: dict[str, float], total_documents: int, elapsed: float, already_done: int = 0
) -> str:
    """One progress line from a tracker snapshot (pure; unit-tested). ``already_done``:
    documents a resumed run had finished before, left out of the ETA's rate."""
    get = lambda k: int(snap.get(k, 0))  # noqa: E731
    done, read = get("documents_done"), get("documents_read")
    share = 100 * done / max(total_documents, 1)
    documents = f"documents {done:,}/{total_documents:,} ({share:.1f}%)"
    if read > done:  # read and in the pipeline, not yet committed
        documents += f", {read:,} read"
    parts = [documents, f"passages {get('passages'):,}"]
    repeated = get("prompts_repeated")  # generated twice (prompts_done counts them once)
    prompts_done, prompts_total = get("prompts_done"), get("prompts")
    known = read >= total_documents  # every document read: the prompt total is known
    parts.append(f"prompts {prompts_done:,}" + (f"/{prompts_total:,}" if known else ""))
    outputs = get("outputs")
    rate = outputs / elapsed if elapsed > 0 else 0.0
    parts.append(f"outputs {outputs:,} ({rate:.1f}/s)")
    parts.append(f"generated tokens {get('output_tokens') / max(elapsed, 1e-9):.0f}/s")
    parts.append(f"rejected {get('rejected'):,}")
    if get("replicas_lost") or repeated:
        parts.append(
            f"retried: {get('replicas_lost')} replicas lost, "
            f"{get('prompts_retried'):,} prompts retried, {repeated:,} generated again"
        )
    eta = eta_seconds(snap, total_documents, elapsed, already_done)
    if eta is not None:
        parts.append(f"ETA {duration(eta)}")
    return "qcraft progress: " + " | ".join(parts)


def eta_seconds(
    snap: dict[str, float], total_documents: int, elapsed: float, already_done: int = 0
) -> float | None:
    """Seconds left: from prompts once their total is known, from documents before;
    None before either has moved."""
    get = lambda k: int(snap.get(k, 0))  # noqa: E731
    done, prompts_done, prompts_total = get("documents_done"), get("prompts_done"), get("prompts")
    if get("documents_read") >= total_documents and 0 < prompts_done < prompts_total:
        return elapsed * (prompts_total - prompts_done) / prompts_done
    if already_done < done < total_documents:
        return elapsed * (total_documents - done) / (done - already_done)
    return None


@contextmanager
def track_progress(
    total_documents: int,
    interval_s: float,
    already_done: int = 0,
    view: ProgressView | None = None,
) -> Iterator[tuple[RemoteProgress, FinalProgress]]:
    """Start a tracker actor and a thread that shows progress on ``view`` (log lines by
    default) and keeps the timeline; yields ``(progress, final)``, where ``final`` is
    filled from the tracker on exit."""
    view = view or LogLines()
    import ray

    handle: Any = on_this_node(ProgressTracker)
    progress, final, stop = RemoteProgress(handle), FinalProgress(), threading.Event()
    if already_done:
        progress.add({"documents_done": already_done, "documents_read": already_done})
    t0 = time.monotonic()
    timeline = TimelineRecorder(interval_s, time.time(), resumed=already_done > 0)

    # a live view is redrawn more often than the interval's lines and timeline points
    poll_s = min(interval_s, getattr(view, "redraw_s", interval_s))

    def report() -> None:
        next_point = interval_s
        while not stop.wait(poll_s):
            elapsed = time.monotonic() - t0
            try:
                sample: Sample = ray.get(handle.sample.remote(), timeout=10)
                if elapsed >= next_point:
                    next_point = elapsed + interval_s
                    timeline.point(sample.counters, sample.replicas_up)
                    timeline.watch_nodes()
            except Exception as e:  # a progress line must never break the run
                log.debug("progress unavailable: %s", e)
                continue
            view.show(sample, total_documents, elapsed, already_done)

    try:
        timeline.watch_nodes()
    except Exception as e:  # the timeline must never break the run
        log.debug("nodes unavailable: %s", e)
    thread = threading.Thread(target=report, name="qcraft-progress", daemon=True)
    thread.start()
    try:
        yield progress, final
    finally:
        stop.set()
        thread.join(timeout=5)
        last: Sample = ray.get(handle.sample.remote(), timeout=30)
        final.counters = last.counters
        final.engine = ray.get(handle.engine_summary.remote(), timeout=30)
        timeline.point(last.counters, last.replicas_up)
        final.timeline = timeline.finish(ray.get(handle.events.remote(), timeout=30))
        view.close(last, total_documents, time.monotonic() - t0, already_done)
        ray.kill(handle)
