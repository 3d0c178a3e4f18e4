"""The engine ``generation.engine.backend`` names, built for a replica."""

from __future__ import annotations

from qcraft_ray.config import GenerationConfig, ModelConfig
from qcraft_ray.stages.engine import Engine, VLLMEngine
from qcraft_ray.stages.instant import InstantEngine
from qcraft_ray.stages.paced import PacedEngine


def make_engine(gen: GenerationConfig, model: ModelConfig) -> Engine:
    """The engine ``generation.engine.backend`` names."""
    if gen.engine.backend == "instant":
        return InstantEngine(gen, model)
    if gen.engine.backend == "paced":
        return PacedEngine(gen, model)
    return VLLMEngine(gen, model)
