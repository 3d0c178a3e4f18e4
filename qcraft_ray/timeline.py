"""The run over time, in ``_report.json``'s ``timeline``: what the progress tracker held
at each progress interval, and what happened to the replicas and nodes.

:class:`TimelineRecorder` is the driver's side: it turns the tracker's samples and events
into a :class:`Timeline`, and watches the cluster's nodes. Points are cumulative
(outputs and generated tokens so far), so a long run keeps at most
:data:`MAX_POINTS` of them by dropping every other one, doubling the spacing: the rates
between the points left stay exact averages.
"""

from __future__ import annotations

import time
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


class TimelineRecorder:
    """The driver's side of the timeline: points from the tracker's samples, nodes that
    left the cluster, and the tracker's events, in seconds since ``start`` (epoch)."""

    def __init__(self, interval_s: float, start: float, resumed: bool) -> None:
        self.start, self.timeline = start, Timeline(interval_s=interval_s)
        self._alive: dict[str, str] | None = None  # node id -> address
        if resumed:
            self.timeline.events.append(TimelineEvent(t=0.0, kind="resume"))

    def point(self, counters: dict[str, float], replicas: int, now: float | None = None) -> None:
        get = lambda k: int(counters.get(k, 0))  # noqa: E731
        self.timeline.add(
            TimelinePoint(
                t=round((time.time() if now is None else now) - self.start, 2),
                documents=get("documents_done"),
                outputs=get("outputs"),
                output_tokens=get("output_tokens"),
                replicas=replicas,
            )
        )

    def watch_nodes(self) -> None:
        import ray

        alive = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
        for node_id in set(self._alive or {}) - set(alive):
            address = (self._alive or {})[node_id]
            t = round(time.time() - self.start, 2)
            self.timeline.events.append(TimelineEvent(t=t, kind="node_lost", node=address))
        self._alive = alive

    def finish(self, events: list[tuple[float, str, str | None, str | None]]) -> Timeline:
        for at, kind, replica, node in events:
            self.timeline.events.append(
                TimelineEvent(t=round(at - self.start, 2), kind=kind, replica=replica, node=node)
            )
        self.timeline.events.sort(key=lambda e: e.t)
        return self.timeline
