"""The engine ``generation.engine.backend`` names, built for a replica."""

from __future__ import annotations

from qcraft_ray.config import GenerationConfig, ModelConfig
from qcraft_ray.stages.engine import Engine, VLLMEngine, import_vllm
from qcraft_ray.stages.instant import InstantEngine
from qcraft_ray.stages.paced import PacedEngine


def make_engine(gen: GenerationConfig, model: ModelConfig) -> Engine:
    """The engine ``generation.engine.backend`` names."""
    if gen.engine.backend == "instant":
        return InstantEngine(gen, model)
    if gen.engine.backend == "paced":
        return PacedEngine(gen, model)
    return VLLMEngine(gen, model)


def preload_engine(gen: GenerationConfig) -> None:
    """What the engine ``make_engine`` builds will import, imported now (vLLM's few
    seconds), so that it can run while the replica does something else first."""
    if gen.engine.backend == "vllm":
        import_vllm(gen)
