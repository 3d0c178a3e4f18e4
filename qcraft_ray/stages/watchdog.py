"""End a replica whose engine call hangs, so Ray restarts it and the batch is retried.

A hung accelerator call (a stuck CUDA kernel, a deadlocked collective) never returns and
never raises: without a limit the batch, and the job, would wait forever. A watchdog
thread beside the engine ends the process when one call runs past
``generation.call_timeout_s``. Ray then restarts the replica and retries its batch; the
replica death counts (:mod:`qcraft_ray.stages.deaths`) retry an interrupted batch row by
row and turn a row that ends its replica every time into an error row.
"""

from __future__ import annotations

import itertools
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
    """Runs ``on_timeout`` (default: end this process) when a watched call overruns.
    Calls may overlap (a replica's concurrent batches): each has its own deadline."""

    def __init__(self, timeout_s: float, on_timeout: Callable[[], None] = _end_process) -> None:
        self._timeout_s = timeout_s
        self._on_timeout = on_timeout
        self._calls: dict[int, tuple[float, str]] = {}  # token -> (deadline, what)
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="qcraft-watchdog", daemon=True)
        self._thread.start()

    def start(self, what: str) -> int:
        """Watch a call from now; returns the token to :meth:`stop` it with."""
        with self._lock:
            token = next(self._tokens)
            self._calls[token] = (time.monotonic() + self._timeout_s, what)
            return token

    def stop(self, token: int) -> None:
        with self._lock:
            self._calls.pop(token, None)

    def _watch(self) -> None:
        tick = min(1.0, self._timeout_s / 10)
        while True:
            time.sleep(tick)
            now = time.monotonic()
            with self._lock:
                overdue = [(t, what) for t, (due, what) in self._calls.items() if now > due]
                for t, _ in overdue:
                    del self._calls[t]
            if overdue:
                # print, not logging: Ray forwards worker stderr to the driver and job log
                print(
                    f"qcraft: {overdue[0][1]} ran past generation.call_timeout_s "
                    f"({self._timeout_s:g} s): ending this replica so Ray restarts it",
                    file=sys.stderr,
                    flush=True,
                )
                self._on_timeout()


class WatchedEngine:
    """An engine whose every call is watched by a :class:`CallWatchdog`."""

    def __init__(self, engine: Engine, watchdog: CallWatchdog) -> None:
        self._engine = engine
        self._watchdog = watchdog

    def generate(self, prompts: list[list[int]]) -> list[Generated]:
        token = self._watchdog.start(f"an engine call of {len(prompts)} prompts")
        try:
            return self._engine.generate(prompts)
        finally:
            self._watchdog.stop(token)
