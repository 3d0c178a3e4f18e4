"""What the run's engines cost, against what ``qcraft plan`` would have said, in
``_report.json``'s ``cost``: engine-hours used (each replica's load and span: from its
actor's start to its engine being ready, then from its first request to its last step),
GPU-hours by replica size, the plan's estimate for the prompts this attempt generated
(:func:`qcraft_ray.estimate.estimate` at the configured rate, handed in by the caller),
and money when ``estimate.gpu_hour_price`` is set."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from qcraft_ray.config import RunConfig
from qcraft_ray.telemetry import EngineOccupancy


class Cost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engine_hours: float  # summed over replicas: load + span
    gpu_hours: float
    engine_hours_by_gpus: dict[str, float]  # GPUs a replica -> engine-hours
    estimated_engine_hours: float | None  # the plan's, for this attempt's prompts
    ratio: float | None  # used / estimated
    gpu_hour_price: float | None = None
    money: float | None = None  # gpu_hours x gpu_hour_price
    estimated_money: float | None = None


def run_cost(engine: EngineOccupancy, cfg: RunConfig, est: dict[str, Any] | None) -> Cost:
    """``est``: the plan's estimate (``estimate``'s answer) for the same prompts, or None
    when the attempt generated nothing."""
    seconds = sum((r.load_s or 0.0) + (r.span_s or 0.0) for r in engine.replicas.values())
    hours = seconds / 3600
    gpus = cfg.generation.gpus_per_replica
    est_hours = est["engine_hours"] if est else None
    price = cfg.estimate.gpu_hour_price
    gpu_hours = hours * gpus
    return Cost(
        engine_hours=round(hours, 4),
        gpu_hours=round(gpu_hours, 4),
        engine_hours_by_gpus={f"{gpus:g}": round(hours, 4)} if engine.replicas else {},
        estimated_engine_hours=est_hours,
        ratio=round(hours / est_hours, 3) if est_hours else None,
        gpu_hour_price=price,
        money=round(gpu_hours * price, 2) if price is not None else None,
        estimated_money=est.get("cost") if est else None,
    )
