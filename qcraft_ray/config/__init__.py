"""Typed run configuration: pydantic models, every field documented.

Loading from YAML with dotted overrides lives in :mod:`qcraft_ray.config_loader`; the
README's reference table is generated from these models
(:mod:`qcraft_ray.config_reference`), so the two cannot drift.
"""

from qcraft_ray.config.base import DEFAULT_MODEL, MAY_CHANGE, Section
from qcraft_ray.config.data import InputConfig, OutputConfig, StorageConfig
from qcraft_ray.config.generation import EngineConfig, GenerationConfig, PacedConfig
from qcraft_ray.config.model import ModelConfig, PassageConfig
from qcraft_ray.config.quality import QualityConfig
from qcraft_ray.config.run import (
    EstimateConfig,
    RayConfig,
    ReportConfig,
    RunConfig,
    ScoreConfig,
)

__all__ = [
    "DEFAULT_MODEL",
    "MAY_CHANGE",
    "EngineConfig",
    "EstimateConfig",
    "GenerationConfig",
    "InputConfig",
    "ModelConfig",
    "OutputConfig",
    "PacedConfig",
    "PassageConfig",
    "QualityConfig",
    "RayConfig",
    "ReportConfig",
    "RunConfig",
    "ScoreConfig",
    "Section",
    "StorageConfig",
]
