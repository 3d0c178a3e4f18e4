"""What every stage shares: timing its work into progress, and running in Ray Data tasks.

:func:`timed` times a stage's call and sends its counters with the seconds spent
(``seconds_<stage>``) to the progress tracker in one message.

Ray Data runs a callable class only in an actor pool. The CPU stages (passages,
prompts) run as tasks instead, so they fuse with the read and scale with the cluster's
CPUs without a pool to size; :class:`TaskStage` gives them what an actor would: the
stage is constructed (tokenizer loaded, templates rendered) on the first block a worker
process sees, and reused for the blocks that follow.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import pyarrow as pa


class Progress(Protocol):
    """Where stages send counters (:class:`~qcraft_ray.progress.RemoteProgress`)."""

    def add(self, counters: dict[str, float], once: str | None = None) -> None: ...


@contextmanager
def timed(
    progress: Progress | None, stage: str, once: str | None = None
) -> Iterator[dict[str, float]]:
    """Time the block; when it ends without an error, send the counters it put in the
    yielded dict and ``seconds_<stage>`` to ``progress`` (nothing without one). ``once``:
    what the counters count, so a task Ray runs again is counted once."""
    counters: dict[str, float] = {}
    t0 = time.perf_counter()
    yield counters
    if progress is not None:
        progress.add({**counters, f"seconds_{stage}": time.perf_counter() - t0}, once=once)


class Stage(Protocol):
    def __call__(self, block: pa.Table) -> pa.Table: ...


_BUILT: OrderedDict[str, Stage] = OrderedDict()  # this process's stages, newest last
_KEEP = 4


class TaskStage:
    """A stage class with its constructor arguments (picklable; ``kwargs`` must be)."""

    def __init__(self, cls: type, **kwargs: Any) -> None:
        self.cls = cls
        self.kwargs = kwargs
        self.key = f"{cls.__qualname__}-{uuid.uuid4().hex}"  # one per pipeline

    def instance(self) -> Stage:
        """This process's instance of the stage, built on first use."""
        stage = _BUILT.get(self.key)
        if stage is None:
            stage = self.cls(**self.kwargs)
            _BUILT[self.key] = stage
            while len(_BUILT) > _KEEP:
                _BUILT.popitem(last=False)
        return stage


def run_task_stage(block: pa.Table, stage: TaskStage) -> pa.Table:
    """The Ray Data task function: ``map_batches(partial(run_task_stage, stage=...))``."""
    return stage.instance()(block)
