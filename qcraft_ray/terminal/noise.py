"""Known-harmless messages, kept off the terminal and in the run's log file.

The driver's standard output and error are read line by line (a pipe in place of each
file descriptor, so the C++ core worker's lines and the workers' lines Ray forwards
pass too). A line is *noise* when it is an INFO line of Ray, Ray Data or vLLM, or one of
the warnings listed in :data:`HARMLESS` (each seen on the sample job, each harmless
there: see the README's list); every other line reaches the terminal as it came, and
every line, noise or not, goes to the log file.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import BinaryIO

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Ray's prefix on a worker's line: "(MapWorker(MapBatches(Replica)) pid=1, ip=...) "
WORKER_PREFIX = re.compile(r"^\((?:[^()]|\([^()]*(?:\([^()]*\))?[^()]*\))*\)\s?")
INFO_LINE = re.compile(
    r"^\S+ \S+\s+INFO \S+\.py:\d+ -- "  # Ray and Ray Data: "2026-12-05 03:19 INFO x.py:1 -- "
    r"|^(?:\(\S+ pid=\d+\) )?(?:INFO|DEBUG) \d\d-\d\d [\d:]+ \[\S+\.py:\d+\]"  # vLLM
)
HARMLESS: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern)
    for name, pattern in {
        # Ray's driver warns that Ray Data's actor pool passes an argument by reference
        # (ray-project/ray#57733); the pool's actors do not rely on restarts with it
        "actor arguments in the object store": r"has constructor arguments in the object store",
        "Ray token authentication notice": r"Token authentication is enabled for this Ray",
        "Ray Data progress UI notices": r"A new progress UI is available|Progress bars disabled"
        r"|Progress will be logged because",
        "torch FutureWarnings": r"FutureWarning: `torch\.",
        "no Triton on a CPU build": r"Triton (is )?not (installed|available)|requires Triton",
        "NUMA binding": r"NUMA binding",
        "vLLM CPU allocator hints": r"is not found in LD_PRELOAD",
        "vLLM CPU threads": r"OMP_NUM_THREADS=\d+ is set",
        "vLLM seed notice": r"The global random seed is set",
        "vLLM SSM cache notice": r"Reset SSM cache type",
        "weights loading bar": r"Loading safetensors checkpoint shards",
    }.items()
}


def body(line: str) -> str:
    """The line without colour codes, its end and Ray's worker prefix (its indent kept)."""
    plain = ANSI.sub("", line).rstrip("\r\n")
    return WORKER_PREFIX.sub("", plain, count=1) if plain.startswith("(") else plain


class Classifier:
    """Noise or not, line by line; a Python warning's source line (the indented line
    after it) goes with it."""

    def __init__(self) -> None:
        self._after_warning = False

    def is_noise(self, line: str) -> bool:
        after_warning, self._after_warning = self._after_warning, False
        rest = body(line)
        text = rest.strip()
        if not text:  # a worker's empty line, or a blank one
            return bool(ANSI.sub("", line).strip())
        if after_warning and rest[:1].isspace():
            return True
        if INFO_LINE.search(text):
            return True
        for pattern in HARMLESS.values():
            if pattern.search(text):
                self._after_warning = "Warning:" in text
                return True
        return False


class Filtered:
    """Standard output and error read through the classifier while open: noise to the
    log only, the rest also to ``show(fd, line)`` (default: the original standard error,
    whichever descriptor it came from: while a run goes, standard output carries nothing,
    so that the command's result, printed after, is all it holds: ``--json`` stays JSON
    whatever Ray forwards to the driver's standard output)."""

    def __init__(self, log: BinaryIO, show: Callable[[int, bytes], None] | None = None) -> None:
        self._log, self._lock = log, threading.Lock()
        self._show = show or (lambda fd, data: os.write(self.original[2], data))
        self.original: dict[int, int] = {}
        self._threads: list[threading.Thread] = []
        self._end = f"\x00qcraft-end-{os.getpid()}-{id(self)}\n".encode()

    def __enter__(self) -> Filtered:
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stream.flush()
            self.original[fd] = os.dup(fd)
            read, write = os.pipe()
            os.dup2(write, fd)
            os.close(write)
            thread = threading.Thread(target=self._pump, args=(fd, read), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _pump(self, fd: int, read: int) -> None:
        classifier = Classifier()
        with os.fdopen(read, "rb") as pipe:
            for raw in pipe:
                if raw == self._end:
                    return
                with self._lock:
                    self._log.write(raw)
                    self._log.flush()
                if not classifier.is_noise(raw.decode("utf-8", "replace")):
                    self._show(fd, raw)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stream.flush()
            os.write(fd, self._end)  # the pipe may outlive us: child processes hold it
        for thread in self._threads:
            thread.join(timeout=5)
        for fd, original in self.original.items():
            os.dup2(original, fd)
            os.close(original)
