"""Running a stage class in Ray Data *tasks*, built once per worker process.

Ray Data runs a callable class only in an actor pool. The CPU stages (passages,
prompts) run as tasks instead, so they fuse with the read and scale with the cluster's
CPUs without a pool to size; :class:`TaskStage` gives them what an actor would: the
stage is constructed (tokenizer loaded, templates rendered) on the first block a worker
process sees, and reused for the blocks that follow.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any, Protocol

import pyarrow as pa


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
