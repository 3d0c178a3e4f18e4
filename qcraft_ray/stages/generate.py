"""The engine replica: one vLLM engine per Ray actor, fed continuously.

``__call__`` is a coroutine, so Ray Data runs several batches of a replica at once,
from one task's block as from several tasks (a synchronous UDF would go through a
block's batches one by one, and a large block would feed the engine one batch at a
time). Each call hands its batch to one of ``batches_in_flight`` threads, which gives
every pending prompt (as token ids: nothing is tokenized twice) to the one engine,
whose driver thread admits them as they come (:mod:`qcraft_ray.stages.feeding`): while
one batch's last sequences run, the next batch's prompts already fill the freed slots,
so no batch leaves a tail.

Errors: a batch that fails with an input error (``ValueError``/``TypeError``, what vLLM
raises for a bad request) is retried prompt by prompt and only the failing rows get
status ``error`` with the exception; anything else (engine death, CUDA errors, OOM) is
re-raised so Ray Data retries or fails the job loudly. Errors are classified by type,
never by message text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa

from qcraft_ray import schema as S
from qcraft_ray.compat.ray_data import give_thread_an_event_loop
from qcraft_ray.compile_cache import (
    Fetched,
    SharedCompileCache,
    fetch_quietly,
    inductor_lookups,
    publish_quietly,
    shared_for,
)
from qcraft_ray.config import GenerationConfig, ModelConfig, StorageConfig
from qcraft_ray.errors import ROW_ERRORS
from qcraft_ray.model_cache import needs_staging, staged
from qcraft_ray.progress import RemoteProgress
from qcraft_ray.stages.backends import make_engine, preload_engine
from qcraft_ray.stages.base import timed
from qcraft_ray.stages.deaths import (
    RemoteRowDeaths,
    ReplicaDiedOnRow,
    RowDeaths,
    batch_digest,
)
from qcraft_ray.stages.engine import Engine, Generated
from qcraft_ray.stages.generated import generated_table
from qcraft_ray.stages.isolation import IsolationGate
from qcraft_ray.stages.startup import StartupClock, phases, read_milestones
from qcraft_ray.stages.watchdog import CallWatchdog, WatchedEngine
from qcraft_ray.telemetry import CompileCacheUse, EngineReport, ReplicaReady, StartupPhases

NEEDED = (S.STATUS, S.PROMPT_TOKEN_IDS)
T = TypeVar("T")


def _generate_rows(engine: Engine, prompts: list[list[int]]) -> list[Generated | BaseException]:
    """Generate for ``prompts``; on an input error, isolate the failing prompts."""
    try:
        return list(engine.generate(prompts))
    except ROW_ERRORS as batch_error:
        if len(prompts) == 1:
            return [batch_error]
        out: list[Generated | BaseException] = []
        for p in prompts:
            try:
                out.extend(engine.generate([p]))
            except ROW_ERRORS as e:
                out.append(e)
        return out


def node_identity() -> tuple[str | None, str | None]:
    """(Ray node id, node IP address) of this process; (None, None) outside Ray."""
    import ray

    if not ray.is_initialized():
        return None, None
    return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()


def row_key(row: dict) -> str:
    return "\x1f".join(str(row.get(c)) for c in S.ROW_IDENTITY)


@dataclass(frozen=True)
class BatchResult:
    """A batch's results (a :class:`Generated` or the row's error, in order), and how
    it came to be generated."""

    results: list[Generated | BaseException]
    retried: bool = False  # a replica died on this batch before: it went row by row
    repeated: bool = False  # finished before (its result was lost and Ray re-ran it)


def row_keys(batch: pa.Table, rows: list[int]) -> list[str]:
    """:func:`row_key` of ``rows`` of ``batch``, read column by column."""
    take = pa.array(rows, pa.int64())
    columns = [batch[c].take(take).to_pylist() for c in S.ROW_IDENTITY]
    return ["\x1f".join(str(v) for v in values) for values in zip(*columns, strict=True)]


def staged_beside(
    preload: Callable[[GenerationConfig], None],
    gen: GenerationConfig,
    stage: Callable[[], T],
    clock: StartupClock,
) -> T:
    """``stage()`` (copies from object storage: network and disk), with ``preload(gen)``
    (vLLM's import: seconds of CPU) running in a thread beside it; both done on return.
    The clock marks ``staging_started`` and ``staged``. A preload that fails is left for
    the engine's own import to meet (with its own error)."""
    clock.marks["staging_started"] = time.time()

    def quietly() -> None:
        with contextlib.suppress(Exception):
            preload(gen)

    beside = threading.Thread(target=quietly, name="qcraft-engine-preload", daemon=True)
    beside.start()
    try:
        return stage()
    finally:
        beside.join()  # one import at a time: the engine's finds it done
        clock.marks["staged"] = time.time()


def stage_for_engine(
    model: ModelConfig, storage: StorageConfig, shared: SharedCompileCache | None
) -> tuple[ModelConfig, Fetched | str | None]:
    """``model`` staged to this node, and the shared compile caches fetched."""
    model = staged(model, storage) if needs_staging(model) else model
    return model, fetch_quietly(shared) if shared is not None else None


def compile_cache_use(fetched: Fetched | str | None) -> CompileCacheUse:
    """What the replica took from the shared compile caches (or why it took nothing),
    and its lookups in them."""
    hits, misses = inductor_lookups()
    if not isinstance(fetched, Fetched):  # the fetch failed (logged)
        return CompileCacheUse(hits=hits, misses=misses, fetch_error=fetched)
    return CompileCacheUse(
        fetched_files=fetched.files,
        fetched_bytes=fetched.bytes,
        publishes=fetched.publishes,
        hits=hits,
        misses=misses,
    )


class Replica:
    """Ray Data UDF (actor): generate for pending rows, pass the others through.

    With ``deaths`` (see :mod:`qcraft_ray.stages.deaths`), a row whose replica died
    ``max_deaths`` times while generating it becomes an error row instead of being
    retried forever.
    """

    def __init__(
        self,
        gen: GenerationConfig,
        model: ModelConfig,
        engine_factory: Callable[[GenerationConfig, ModelConfig], Engine] = make_engine,
        engine_preload: Callable[[GenerationConfig], None] = preload_engine,
        deaths: RowDeaths | RemoteRowDeaths | None = None,
        max_deaths: int = 3,
        progress: RemoteProgress | None = None,
        storage: StorageConfig | None = None,
    ) -> None:
        """``storage``: how to reach a model on object storage (staged to this node,
        while ``engine_preload`` imports what ``engine_factory``'s engine needs)."""
        t0, clock = time.monotonic(), StartupClock()
        give_thread_an_event_loop()  # Ray Data < 2.55 runs this async UDF on it
        self._started_at = clock.marks["constructor"]
        self._progress = progress
        self._name = f"{socket.gethostname()}:{os.getpid()}"
        if progress:
            progress.replica_starting(self._name)
        self._deaths = deaths
        self._max_deaths = max_deaths
        shared = shared_for(gen, model, storage) if storage is not None else None
        fetched = None
        if storage is not None and (needs_staging(model) or shared is not None):
            model, fetched = staged_beside(
                engine_preload, gen, lambda: stage_for_engine(model, storage, shared), clock
            )
        self._engine = engine_factory(gen, model)
        self._samples = gen.samples_per_prompt
        # every engine call is watched: one that hangs ends this replica (Ray restarts it)
        self._calls: Engine = WatchedEngine(self._engine, CallWatchdog(gen.call_timeout_s))
        self._gate = IsolationGate()
        self._pool = ThreadPoolExecutor(gen.batches_in_flight, thread_name_prefix="qcraft-batch")
        self._incarnation = f"{self._name}@{self._started_at}"  # this process's replica
        self._node = node_identity()
        load_s = time.monotonic() - t0
        startup = self._startup(clock)
        compiled = compile_cache_use(fetched) if shared is not None else None
        if shared is not None:  # what this engine compiled, for the replicas after it
            ready_at = self._started_at + load_s
            threading.Thread(  # not a daemon: a graceful exit waits for the publish
                target=publish_quietly, args=(shared, ready_at), name="qcraft-compile-publish"
            ).start()
        if progress:
            progress.replica_ready(
                ReplicaReady(self._name, load_s, self._started_at, *self._node, startup, compiled)
            )
        # print, not logging: Ray forwards worker stderr to the driver and the job log
        torch = sys.modules.get("torch")  # loaded by vLLM; its threads run the CPU engine
        threads = f", {torch.get_num_threads()} torch threads" if torch else ""
        print(
            f"qcraft: engine replica {self._name} ready ({load_s:.1f} s{threads})",
            file=sys.stderr,
            flush=True,
        )

    def _startup(self, clock: StartupClock) -> StartupPhases:
        """Where the start-up went: the engine's marks and vLLM's milestones."""
        clock.marks.update(getattr(self._engine, "startup_marks", {}))
        clock.marks.setdefault("engine_ready", time.time())
        path = getattr(self._engine, "milestones", None)
        return phases(clock, read_milestones(path, remove=True) if path else [])

    async def __call__(self, batch: pa.Table) -> pa.Table:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.process, batch)

    def process(self, batch: pa.Table) -> pa.Table:
        """Generate for the pending rows of ``batch`` (blocks until their outputs are in)."""
        S.require_columns("generate", NEEDED, batch.column_names)
        if batch.schema != S.STREAM_SCHEMA:
            batch = S.to_stream(batch)
        todo = [i for i, s in enumerate(batch[S.STATUS].to_pylist()) if s == S.STATUS_PENDING]
        prompts = batch[S.PROMPT_TOKEN_IDS].take(pa.array(todo, pa.int64())).to_pylist()
        keys = row_keys(batch, todo)
        progress = self._progress if todo else None
        # the effort, every time: time in calls, and work done twice counted apart
        with timed(progress, "generate") as effort:
            done = self._generate(prompts, keys) if todo else BatchResult([])
            effort.update(
                prompts_retried=len(todo) if done.retried else 0,
                prompts_repeated=len(todo) if done.repeated else 0,
            )
            if progress:
                # the work, counted once per batch however often it was generated (the
                # tracker drops a key it has seen, in the same call that counts it)
                progress.add(
                    {
                        "prompts_done": len(todo),
                        "prompt_tokens": sum(len(p) for p in prompts),
                        "outputs": len(todo) * self._samples,
                        "output_tokens": sum(
                            r.tokens for r in done.results if isinstance(r, Generated)
                        ),
                    },
                    once=f"batch:{batch_digest(keys)}",
                )
        if progress:
            occupancy = getattr(self._engine, "occupancy", None)
            progress.engine(EngineReport(self._name, occupancy.snapshot() if occupancy else None))
        return generated_table(
            batch, dict(zip(todo, done.results, strict=True)), self._samples, self._name
        )

    def _generate(self, prompts: list[list[int]], keys: list[str]) -> BatchResult:
        deaths = self._deaths
        if deaths is None:
            with self._gate.shared():
                return BatchResult(_generate_rows(self._calls, prompts))
        with self._gate.shared():  # marked only once in the engine's company
            before = deaths.begin(keys, self._incarnation)
            if not any(before):  # the usual case: one engine call for the whole batch
                results = _generate_rows(self._calls, prompts)
        if not any(before):
            return BatchResult(results, repeated=deaths.clear(keys, batch_digest(keys)))
        if self._progress:  # the replicas that were generating this batch died
            for lost in deaths.marked_by(keys):  # each counted once, however many batches
                self._progress.add({"replicas_lost": 1}, once=f"lost:{lost}")
                self._progress.replica_lost(lost.rsplit("@", 1)[0])  # its name: see __init__
        # alone in the engine: a row that ends the process charges no other batch's rows
        with self._gate.exclusive():
            return BatchResult(self._generate_rows_apart(prompts, keys, before), retried=True)

    def _generate_rows_apart(
        self, prompts: list[list[int]], keys: list[str], before: list[int]
    ) -> list[Generated | BaseException]:
        """A replica died on this batch before: go row by row, so only the row that
        kills the process is charged for it."""
        deaths = self._deaths
        assert deaths is not None
        out: list[Generated | BaseException] = []
        for prompt, key, died in zip(prompts, keys, before, strict=True):
            if died >= self._max_deaths:
                out.append(
                    ReplicaDiedOnRow(
                        f"the engine replica died {died} times while generating this row"
                    )
                )
                continue
            deaths.mark([key], self._incarnation)
            out.extend(_generate_rows(self._calls, [prompt]))
            deaths.clear([key])
        deaths.clear([], batch_digest(keys))
        return out
