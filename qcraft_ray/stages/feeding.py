"""Continuous feeding: one thread drives the engine; callers add batches at any time.

``LLM.generate`` takes a batch and returns when its last sequence ends: the engine
runs that batch's tail nearly empty, and waits while the next batch is handed over.
Here a single driver thread owns a vLLM ``LLMEngine`` (its ``add_request``/``step``
API, which is not thread-safe) and loops: admit every batch submitted since the last
step, run one step, hand each finished request to its batch. Several callers (the
replica's concurrent calls) submit and wait, so the scheduler always has the next
batch's requests waiting when a sequence ends.

A request the engine refuses (``ValueError``/``TypeError`` from ``add_request``: a
bad prompt) fails its whole batch with that error, after aborting the batch's other
requests; the caller isolates the bad prompt (one call per prompt). An error from
``step`` (the engine died) fails every batch in flight, and every later one.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any

from qcraft_ray.errors import ROW_ERRORS
from qcraft_ray.stages.occupancy import Occupancy


class _Batch:
    def __init__(self, prompts: list[list[int]]) -> None:
        self.prompts = prompts
        self.results: list[Any] = [None] * len(prompts)
        self.left = len(prompts)
        self.error: BaseException | None = None
        self.done = threading.Event()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


class Feeder:
    """Drives ``engine`` (an ``LLMEngine``) from one daemon thread.

    ``prepare`` turns a batch's token-id prompts into the engine's inputs (vLLM's
    renderer, as ``LLM.generate`` does); ``convert`` turns a finished ``RequestOutput``
    into the caller's result; ``occupancy`` (optional) learns when the engine idles and
    when outputs finish.
    """

    def __init__(
        self,
        engine: Any,
        params: Any,
        convert: Callable[[Any], Any],
        occupancy: Occupancy | None = None,
        prepare: Callable[[list[list[int]]], list[Any]] | None = None,
    ) -> None:
        self._engine = engine
        self._params = params
        self._convert = convert
        self._prepare = prepare or (lambda ps: [{"prompt_token_ids": ids} for ids in ps])
        self._occupancy = occupancy
        self._inbox: queue.SimpleQueue[_Batch] = queue.SimpleQueue()
        self._ids = itertools.count()
        self._owner: dict[str, tuple[_Batch, int]] = {}  # request id -> (batch, position)
        self._dead: BaseException | None = None
        self._thread = threading.Thread(target=self._drive, name="qcraft-feeder", daemon=True)
        self._thread.start()

    def generate(self, prompts: list[list[int]]) -> list[Any]:
        """Results for ``prompts``, in order (blocks; callable from any thread)."""
        if not prompts:
            return []
        if self._dead is not None:
            raise self._dead
        batch = _Batch(prompts)
        self._inbox.put(batch)
        while not batch.done.wait(1.0):
            if self._dead is not None:  # died while this batch was being admitted
                raise self._dead
        if batch.error is not None:
            raise batch.error
        return batch.results

    def _drive(self) -> None:
        try:
            while True:
                if not self._owner:  # the engine is empty: wait for work
                    since = self._occupancy.now() if self._occupancy else 0.0
                    first = self._inbox.get()
                    if self._occupancy:
                        self._occupancy.idle(since)
                    self._admit(first)
                while True:  # everything submitted meanwhile joins the next step
                    try:
                        self._admit(self._inbox.get_nowait())
                    except queue.Empty:
                        break
                if self._owner:
                    self._step()
        except BaseException as e:  # the engine is dead: fail everything, now and later
            self._dead = e
            for batch, _ in list(self._owner.values()):
                batch.fail(e)
            self._owner.clear()
            while True:
                try:
                    self._inbox.get_nowait().fail(e)
                except queue.Empty:
                    break

    def _admit(self, batch: _Batch) -> None:
        added: list[str] = []
        try:
            for position, prompt in enumerate(self._prepare(batch.prompts)):
                rid = str(next(self._ids))
                self._engine.add_request(rid, prompt, self._params)
                added.append(rid)
                self._owner[rid] = (batch, position)
        except ROW_ERRORS as e:
            if added:
                self._engine.abort_request(added)
            for rid in added:
                self._owner.pop(rid, None)
            batch.fail(e)
            return
        if self._occupancy:
            self._occupancy.requested()

    def _step(self) -> None:
        for out in self._engine.step():
            if not out.finished:
                continue
            batch, position = self._owner.pop(out.request_id)
            batch.results[position] = self._convert(out)
            batch.left -= 1
            if self._occupancy:
                self._occupancy.output()
            if batch.left == 0:
                batch.done.set()
