"""The run over time, in ``_report.json``'s ``timeline``: what the progress tracker held
at each progress interval, and what happened to the replicas and nodes.

Points are cumulative (outputs and generated tokens so far), so a long run keeps at most
:data:`MAX_POINTS` of them by dropping every other one, doubling the spacing: the rates
between the points left stay exact averages.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

MAX_POINTS = 1000

EventKind = Literal["resume", "replica_started", "replica_ready", "replica_lost", "node_lost"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimelinePoint(_Part):
    t: float  # seconds since the run started
    documents: int  # committed so far
    outputs: int  # generated so far
    output_tokens: int
    replicas: int  # engine replicas up and not lost


class TimelineEvent(_Part):
    t: float  # seconds since the run started (negative: before it, e.g. a replica's start)
    kind: EventKind
    replica: str | None = None
    node: str | None = None  # the node's address


class Timeline(_Part):
    interval_s: float  # between points (doubles each time the points are thinned)
    points: list[TimelinePoint] = []
    events: list[TimelineEvent] = []

    def add(self, point: TimelinePoint) -> None:
        self.points.append(point)
        if len(self.points) > MAX_POINTS:
            last = self.points[-1]
            self.points = self.points[:-1:2] + [last]  # the first and the last kept
            self.interval_s *= 2

    def rates(self) -> list[tuple[float, float, float]]:
        """(t, outputs/s, generated tokens/s) between consecutive points."""
        out = []
        for a, b in zip(self.points, self.points[1:], strict=False):
            dt = b.t - a.t
            if dt > 0:
                out.append(
                    (b.t, (b.outputs - a.outputs) / dt, (b.output_tokens - a.output_tokens) / dt)
                )
        return out
