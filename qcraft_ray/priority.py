"""The CPU stages run at a lower OS scheduling priority than the engines.

On a node where the CPU stages (tokenize, prompts, quality checks, write) share cores
with engine replicas, the engine's process (its scheduler, sampler and detokenizer on a
GPU node; the whole model on a CPU engine) should get a core first: the stages only have
to stay ahead of it. A stage's worker process raises its own nice value once, when it
builds its stage. An engine's actor gets a runtime_env of its own
(:func:`engine_runtime_env`), so Ray never starts it in a worker process a stage lowered
(Ray reuses idle workers with the same runtime_env), and such a process never lowers
itself.
"""

from __future__ import annotations

import os
from typing import Any

ENGINE_PROCESS = "QCRAFT_ENGINE_PROCESS"  # set in the processes of engine actors


def engine_runtime_env(env: dict[str, str]) -> dict[str, Any]:
    """The runtime_env of an actor that must keep the cluster's priority (an engine
    replica, an embedding model): ``env`` plus a marker, which also keeps Ray from
    reusing a CPU stage's worker process for it."""
    return {"env_vars": {**env, ENGINE_PROCESS: "1"}}


def nice_value() -> int:
    """This process's nice value."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def _threads() -> list[int]:
    """This process's thread ids (Linux keeps a nice value per thread), else [0]."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def yield_to_engines(nice: int) -> int:
    """Raise this process's nice value to ``nice`` (every thread of it), unless it is
    already at least that; returns the nice value it has now. Never lowers it (an
    unprivileged process could not raise it back), nor in an engine's process. Threads
    started later inherit it."""
    current = nice_value()
    if nice <= current or os.environ.get(ENGINE_PROCESS):
        return current
    for tid in _threads():
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    return nice_value()
