"""A paced engine: a GPU engine's scheduler and timing, without a model or a GPU.

``generation.engine.backend: paced`` stands in for vLLM on a GPU under load, so that
feeding at GPU rates can be run and measured on a machine without one. Its core runs in
a thread of its own, as vLLM's engine core runs in a process of its own, and steps as
vLLM's V1 scheduler does:

* at most ``engine.max_num_seqs`` requests run; the others wait, first come first served;
* each step has a budget of ``max_num_batched_tokens`` tokens: one for each running
  request past its prefill, then prompt tokens (chunked) for requests still prefilling,
  then for waiting requests admitted while a slot and budget are left;
* a step lasts ``prefill tokens / paced.prefill_tokens_per_s + paced.decode_step_ms``
  (the thread sleeps, as a host thread waits on its GPU), and a request's prefill step
  yields its first output token;
* a request ends after its output length (the instant engine's: seeded, mean 20 tokens,
  at most ``max_new_tokens``).

The replica drives it through the same :class:`~qcraft_ray.stages.feeding.Feeder` as the
vLLM engine, and each step's running and waiting counts go to the same
:class:`~qcraft_ray.stages.occupancy.Occupancy`, when the frontend takes the step's
outputs, as vLLM's stat loggers get them.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qcraft_ray.config import GenerationConfig, ModelConfig
from qcraft_ray.stages.engine import Generated
from qcraft_ray.stages.feeding import Feeder
from qcraft_ray.stages.instant import InstantEngine
from qcraft_ray.stages.occupancy import Occupancy

# vLLM's default step budget for offline batches on 70+ GB GPUs (engine/arg_utils.py)
DEFAULT_BATCHED_TOKENS = 16384


@dataclass
class _Request:
    request_id: str
    prompt: list[int]
    lengths: tuple[int, ...]  # output tokens of each sample
    prefilled: int = 0
    generated: int = 0

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt)

    @property
    def seqs(self) -> int:
        return len(self.lengths)

    @property
    def done(self) -> bool:
        return self.prefilled == self.prompt_tokens and self.generated >= max(self.lengths)


@dataclass(frozen=True)
class PacedOutput:
    """A finished request, as the feeder sees vLLM's ``RequestOutput``."""

    request_id: str
    prompt: list[int]
    lengths: tuple[int, ...]
    finished: bool = True


@dataclass
class _Step:
    """What one core step finished, and the scheduler's counts after it."""

    outputs: list[PacedOutput] = field(default_factory=list)
    running: int = 0
    waiting: int = 0


@dataclass(frozen=True)
class StepPlan:
    """What the scheduler gave one step: prompt tokens, and sequences decoding."""

    prefill_tokens: int
    decode_seqs: int


class PacedScheduler:
    """The step rule alone (no threads, no clock): unit-tested on its own."""

    def __init__(self, max_num_seqs: int, max_num_batched_tokens: int) -> None:
        self.max_num_seqs = max_num_seqs
        self.budget = max_num_batched_tokens
        self.running: list[_Request] = []
        self.waiting: collections.deque[_Request] = collections.deque()
        self.running_seqs = 0  # sequences (samples) of the running requests
        self.waiting_seqs = 0

    def add(self, request: _Request) -> None:
        self.waiting.append(request)
        self.waiting_seqs += request.seqs

    def abort(self, ids: set[str]) -> None:
        self.running = [r for r in self.running if r.request_id not in ids]
        self.waiting = collections.deque(r for r in self.waiting if r.request_id not in ids)
        self.running_seqs = sum(r.seqs for r in self.running)
        self.waiting_seqs = sum(r.seqs for r in self.waiting)

    def _fits(self, r: _Request) -> bool:
        """A slot for each of its samples (one request alone always fits)."""
        return not self.running or self.running_seqs + r.seqs <= self.max_num_seqs

    def step(self) -> tuple[StepPlan, list[_Request]]:
        """Schedule and run one step: (what it held, the requests it finished)."""
        budget, prefill, decode = self.budget, 0, 0
        for r in self.running:  # running requests first: decodes, then prefill chunks
            if r.prefilled == r.prompt_tokens and budget >= r.seqs:
                budget -= r.seqs
                decode += r.seqs
                r.generated += 1
        for r in self.running:
            if r.prefilled < r.prompt_tokens and budget > 0:
                chunk = min(budget, r.prompt_tokens - r.prefilled)
                budget -= chunk
                prefill += chunk
                r.prefilled += chunk
                if r.prefilled == r.prompt_tokens:
                    r.generated = 1  # the prefill step samples the first token
        while self.waiting and budget > 0 and self._fits(self.waiting[0]):
            r = self.waiting.popleft()
            self.waiting_seqs -= r.seqs
            self.running_seqs += r.seqs
            chunk = min(budget, r.prompt_tokens)
            budget -= chunk
            prefill += chunk
            r.prefilled = chunk
            if r.prefilled == r.prompt_tokens:
                r.generated = 1
            self.running.append(r)
        finished = [r for r in self.running if r.done]
        if finished:
            self.running = [r for r in self.running if not r.done]
            self.running_seqs -= sum(r.seqs for r in finished)
        return StepPlan(prefill, decode), finished


class PacedCore:
    """The scheduler run in real time by a thread of its own; ``add_request``,
    ``abort_request`` and ``step`` as the feeder calls vLLM's ``LLMEngine``."""

    def __init__(
        self,
        scheduler: PacedScheduler,
        step_seconds: Callable[[StepPlan], float],
        lengths: Callable[[list[int]], tuple[int, ...]],
        max_prompt_tokens: int,
        stats: Callable[[int, int], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._scheduler = scheduler
        self._step_seconds = step_seconds
        self._lengths = lengths
        self._max_prompt = max_prompt_tokens
        self._stats = stats
        self._sleep = sleep
        self._lock = threading.Condition()
        self._inbox: list[_Request] = []
        self._aborted: set[str] = set()
        self._outbox: queue.SimpleQueue[_Step] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="qcraft-paced-core", daemon=True)
        self._thread.start()

    def add_request(self, request_id: str, prompt: Any, params: Any) -> None:
        ids = list(prompt["prompt_token_ids"])
        if not ids:
            raise ValueError("the prompt is empty")
        if len(ids) > self._max_prompt:
            raise ValueError(
                f"the prompt has {len(ids)} tokens; at most {self._max_prompt} fit the context"
            )
        request = _Request(request_id, ids, self._lengths(ids))
        with self._lock:
            self._inbox.append(request)
            self._lock.notify()

    def abort_request(self, request_ids: list[str]) -> None:
        with self._lock:
            self._aborted.update(request_ids)
            self._lock.notify()

    def step(self) -> list[PacedOutput]:
        """The outputs of the core's next step (blocks until it ends)."""
        done = self._outbox.get()
        if self._stats is not None:
            self._stats(done.running, done.waiting)
        return done.outputs

    def _run(self) -> None:
        sched = self._scheduler
        while True:
            with self._lock:
                while not (self._inbox or self._aborted or sched.running or sched.waiting):
                    self._lock.wait()
                for r in self._inbox:
                    sched.add(r)
                self._inbox.clear()
                if self._aborted:
                    sched.abort(self._aborted)
                    self._aborted.clear()
            if not (sched.running or sched.waiting):
                continue
            plan, finished = sched.step()
            self._sleep(self._step_seconds(plan))
            self._outbox.put(
                _Step(
                    [PacedOutput(r.request_id, r.prompt, r.lengths) for r in finished],
                    sched.running_seqs,
                    sched.waiting_seqs,
                )
            )


class PacedEngine:
    """A GPU engine's pace without a model (module docstring); texts are spans of the
    prompt, as the instant engine's."""

    def __init__(
        self, gen: GenerationConfig, model: ModelConfig, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        eng, paced = gen.engine, gen.engine.paced
        self._instant = InstantEngine(gen, model)
        self.occupancy = Occupancy(eng.max_num_seqs)
        scheduler = PacedScheduler(
            eng.max_num_seqs, eng.max_num_batched_tokens or DEFAULT_BATCHED_TOKENS
        )
        prefill_rate, decode_s = paced.prefill_tokens_per_s, paced.decode_step_ms / 1000

        def step_seconds(plan: StepPlan) -> float:
            return plan.prefill_tokens / prefill_rate + (decode_s if plan.decode_seqs else 0.0)

        core = PacedCore(
            scheduler,
            step_seconds,
            self._instant.lengths,
            eng.max_model_len - gen.max_new_tokens,
            stats=self.occupancy.step,
            sleep=sleep,
        )
        # outputs are made in the feeder's thread, as vLLM detokenizes in its frontend
        self._feeder = Feeder(
            core, None, lambda out: self._instant.answer(out.prompt, out.lengths), self.occupancy
        )

    def generate(self, prompts: list[list[int]]) -> list[Generated]:
        return list(self._feeder.generate(prompts))
