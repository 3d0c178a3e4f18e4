"""The terminal around one ``qcraft run``: the progress view it asked for, messages
filtered into a log file (unless ``--verbose``), and that log copied beside the output
(``_logs/``) at the end."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO, Literal

from qcraft_ray.progress import LogLines, ProgressView, Silent
from qcraft_ray.store import LOG_DIR, SUCCESS_FILE, TEMP_DIR, OutputFolder
from qcraft_ray.terminal.noise import Filtered

Choice = Literal["auto", "bar", "plain", "none"]
log = logging.getLogger("qcraft")


@dataclass
class Session:
    view: ProgressView
    log_path: str | None = None  # the local log file, while the run goes

    def keep_log(self, folder: OutputFolder) -> str | None:
        """Copy the log file to ``_logs/`` in ``folder``; where it went (None: no log)."""
        if self.log_path is None or not os.path.exists(self.log_path):
            return None
        rel = f"{LOG_DIR}/driver-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log"
        try:
            with open(self.log_path, "rb") as f:
                folder.write_bytes(rel, f.read())
        except Exception as e:  # the log must never fail the run
            log.warning("could not copy the log to %s (%s); it is at %s", rel, e, self.log_path)
            return self.log_path
        os.unlink(self.log_path)
        if folder.exists(SUCCESS_FILE):  # done: no writer is left to need _temporary/
            folder.delete_dir(TEMP_DIR)
        return folder.display(rel)


def choose(choice: Choice, stream: IO[str]) -> Literal["bar", "plain", "none"]:
    """``auto``: a bar on a terminal, plain lines otherwise (a log, a file, a CI job)."""
    if choice != "auto":
        return choice
    return "bar" if stream.isatty() else "plain"


@contextmanager
def terminal(choice: Choice, verbose: bool) -> Iterator[Session]:
    """The session: with ``verbose``, everything reaches the terminal as before."""
    kind = choose(choice, sys.stderr)
    if verbose:
        yield Session(Silent() if kind == "none" else LogLines())
        return
    fd, path = tempfile.mkstemp(prefix="qcraft-", suffix=".log")
    with ExitStack() as stack:
        log_file = stack.enter_context(os.fdopen(fd, "wb"))
        bar = None
        if kind == "bar":
            from qcraft_ray.terminal.bar import Bar

            # the bar writes to the terminal itself; lines that pass print above it
            term = stack.enter_context(os.fdopen(os.dup(sys.stderr.fileno()), "w"))
            bar = Bar(term)
        above = (lambda fd, data: bar.print(data.decode("utf-8", "replace"))) if bar else None
        stack.enter_context(Filtered(log_file, above))
        view: ProgressView = bar or (Silent() if kind == "none" else LogLines())
        try:
            yield Session(view, path)
        finally:
            if bar is not None:
                bar.stop()
