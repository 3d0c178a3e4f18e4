"""Batches share a replica's engine; a suspect batch has it to itself.

A replica runs several batches at once in one engine. When the process dies, every row
in the engine is charged a death (:mod:`qcraft_ray.stages.deaths`). A batch that
finds its rows charged goes row by row, and must do so alone: otherwise the row that
kills the process would charge the rows of whatever batch shares the engine with it,
and an innocent row could reach the limit of deaths. :class:`IsolationGate` is a
readers-writer lock that favours the writer: ordinary batches share the engine; a
suspect batch waits for them to finish, holds back new ones, and runs alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class IsolationGate:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._sharing = 0  # ordinary batches in the engine
        self._alone = False  # a suspect batch is in the engine
        self._waiting_alone = 0  # suspect batches waiting for their turn

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._sharing += 1
        try:
            yield
        finally:
            with self._cond:
                self._sharing -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting_alone += 1
            self._cond.wait_for(lambda: not self._alone and self._sharing == 0)
            self._waiting_alone -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()
