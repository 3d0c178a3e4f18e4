"""End a replica whose engine call hangs, so Ray restarts it and the batch is retried.

A hung accelerator call (a stuck CUDA kernel, a deadlocked collective) never returns and
never raises: without a limit the batch, and the job, would wait forever. A watchdog
thread beside the engine ends the process when one call runs past
``generation.call_timeout_s``. Ray then restarts the replica and retries its batch; the
attempt ledger (:mod:`qcraft_ray.stages.attempts`) retries an interrupted batch row by
row and turns a row that ends its replica every time into an error row.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

from qcraft_ray.stages.engine import Engine, Generated

EXIT_HUNG = 75  # the replica's exit code when a call hung


def _end_process() -> None:
    sys.stderr.flush()
    os._exit(EXIT_HUNG)


class CallWatchdog:
    """Runs ``on_timeout`` (default: end this process) when a watched call overruns."""

    def __init__(self, timeout_s: float, on_timeout: Callable[[], None] = _end_process) -> None:
        self._timeout_s = timeout_s
        self._on_timeout = on_timeout
        self._deadline: float | None = None
        self._what = ""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="qcraft-watchdog", daemon=True)
        self._thread.start()

    def start(self, what: str) -> None:
        with self._lock:
            self._deadline, self._what = time.monotonic() + self._timeout_s, what

    def stop(self) -> None:
        with self._lock:
            self._deadline = None

    def _watch(self) -> None:
        tick = min(1.0, self._timeout_s / 10)
        while True:
            time.sleep(tick)
            with self._lock:
                overdue = self._deadline is not None and time.monotonic() > self._deadline
                what = self._what
            if overdue:
                # print, not logging: Ray forwards worker stderr to the driver and job log
                print(
                    f"qcraft: {what} ran past generation.call_timeout_s "
                    f"({self._timeout_s:g} s): ending this replica so Ray restarts it",
                    file=sys.stderr,
                    flush=True,
                )
                with self._lock:
                    self._deadline = None
                self._on_timeout()


class WatchedEngine:
    """An engine whose every call is watched by a :class:`CallWatchdog`."""

    def __init__(self, engine: Engine, watchdog: CallWatchdog) -> None:
        self._engine = engine
        self._watchdog = watchdog

    def generate(self, prompts: list[list[int]]) -> list[Generated]:
        self._watchdog.start(f"an engine call of {len(prompts)} prompts")
        try:
            return self._engine.generate(prompts)
        finally:
            self._watchdog.stop()
