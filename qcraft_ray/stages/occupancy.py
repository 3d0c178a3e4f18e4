"""How full an engine was kept: time-averaged running sequences, from its scheduler.

vLLM's scheduler reports, at every engine step, how many sequences it runs and how many
wait. :class:`Occupancy` integrates those over time, from the engine's first request
on: a step's counts hold from the previous record to this one. Time the engine spends
with nothing to do (between the pipeline's batches) is recorded by the feeder as idle:
no sequence runs, none waits. So

- ``occupancy`` = mean running sequences / ``max_num_seqs`` (1: every slot always busy);
- ``queue_empty_fraction`` = share of the time no request waited (a sequence that
  ended could not be replaced at once);
- ``idle_fraction`` = share of the time nothing ran at all.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from qcraft_ray.telemetry import OccupancySnapshot


class Occupancy:
    """Integrates scheduler counts over time (thread-safe; ``clock`` for tests)."""

    def __init__(
        self, max_num_seqs: int, clock: Any = time.monotonic, wall: Any = time.time
    ) -> None:
        self._max = max_num_seqs
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._start: float | None = None
        self._last: float | None = None
        self._running = self._queue_empty = self._idle = 0.0
        self._steps = 0
        self._first_output: float | None = None
        self._first_step: float | None = None

    def requested(self) -> None:
        """Requests are in the engine (from now on, steps account for the time)."""
        with self._lock:
            now = self._clock()
            if self._start is None:
                self._start = self._last = now

    def step(self, running: int, waiting: int) -> None:
        """A scheduler record: ``running`` sequences ran since the last record."""
        with self._lock:
            now = self._clock()
            if self._first_step is None:
                self._first_step = self._wall()
            if self._last is None:
                self._start = self._last = now
                return
            dt = now - self._last
            self._running += dt * running
            self._queue_empty += dt if waiting == 0 else 0.0
            self._idle += dt if running == 0 else 0.0
            self._steps += 1
            self._last = now

    def output(self) -> None:
        """A request finished (the first one sets ``first_output_at``)."""
        with self._lock:
            if self._first_output is None:
                self._first_output = self._wall()

    def idle(self, since: float) -> None:
        """Nothing was in the engine from ``since`` (this clock's time) until now."""
        with self._lock:
            now = self._clock()
            if self._last is None:
                return
            gap = now - max(since, self._last)
            if gap > 0:
                self._queue_empty += gap
                self._idle += gap
            self._last = now

    def now(self) -> float:
        return float(self._clock())

    def snapshot(self) -> OccupancySnapshot:
        with self._lock:
            start, last = self._start, self._last
            span = last - start if start is not None and last is not None else 0.0
            return OccupancySnapshot(
                self._max,
                round(span, 4),
                round(self._running, 4),
                round(self._queue_empty, 4),
                round(self._idle, 4),
                self._steps,
                self._first_output,
                self._first_step,
            )


def scheduler_stats_logger(occupancy: Occupancy) -> type:
    """A vLLM stat logger class (``LLMEngine.from_engine_args(stat_loggers=[...])``) that
    feeds each step's scheduler counts to ``occupancy``."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class SchedulerOccupancy(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            pass

        def record(
            self,
            scheduler_stats: Any,
            iteration_stats: Any,
            mm_cache_stats: Any = None,
            engine_idx: int = 0,
        ) -> None:
            if scheduler_stats is not None:
                occupancy.step(scheduler_stats.num_running_reqs, scheduler_stats.num_waiting_reqs)

        def log_engine_initialized(self) -> None:
            pass

    return SchedulerOccupancy
