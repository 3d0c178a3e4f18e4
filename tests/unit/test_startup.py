"""A replica's start-up phases: its own marks and vLLM's milestone records."""

from __future__ import annotations

import json
import logging
import os

from qcraft_ray.stages.startup import (
    CORE_STARTED,
    INIT_ENGINE_PREFIX,
    LOAD_DONE,
    LOAD_STARTED,
    Milestones,
    StartupClock,
    phases,
    read_milestones,
)
from qcraft_ray.telemetry import OccupancySnapshot, ReplicaReady, replica_summary


def clock_at(**marks: float) -> StartupClock:
    clock = StartupClock(process_started=marks.pop("process"))
    clock.marks = dict(marks)
    return clock


def test_phases_from_marks_and_a_spawned_core():
    clock = clock_at(process=95.0, constructor=100.0, imports_started=100.5, imported=108.0,
                     configured=110.0, engine_ready=160.0)
    core = os.getpid() + 1  # another process: vLLM's engine core
    milestones = [
        {"t": 119.0, "pid": core, "kind": "core_started", "args": []},
        {"t": 121.0, "pid": core, "kind": "load_started", "args": []},
        {"t": 130.0, "pid": core, "kind": "weights_loaded", "args": [8.0]},
        {"t": 131.0, "pid": core, "kind": "load_done", "args": [3.4, 9.9]},
        {"t": 158.0, "pid": core, "kind": "init_engine", "args": [27.0, 12.0],
         "compile_s": 12.0},
    ]
    got = phases(clock, milestones)
    assert (got.process_s, got.imports_s, got.configure_s) == (5.0, 7.5, 2.0)
    assert (got.engine_core_start_s, got.executor_init_s) == (9.0, 2.0)
    assert (got.weights_s, got.compile_s) == (10.0, 12.0)  # to the end of the model's load
    assert got.warmup_s == 15.0  # the model loaded -> init engine's end, less the compile
    named = 7.5 + 2.0 + 9.0 + 2.0 + 10.0 + 12.0 + 15.0
    assert got.other_s == 60.0 - named  # the rest of load_s: 60 s from the constructor


def test_an_in_process_core_and_missing_records():
    clock = clock_at(process=99.0, constructor=100.0, engine_ready=103.0)
    own = [{"t": 101.0, "pid": os.getpid(), "kind": "core_started", "args": []},
           {"t": 101.5, "pid": os.getpid(), "kind": "load_started", "args": []},
           {"t": 102.0, "pid": os.getpid(), "kind": "weights_loaded", "args": [0.2]}]
    got = phases(clock, own)
    assert got.engine_core_start_s is None  # no "configured" mark: not a vLLM engine
    assert (got.executor_init_s, got.weights_s) == (0.5, 0.5)  # the CPU loader's record
    assert got.compile_s is None and got.warmup_s is None and got.other_s == 2.0


def test_milestones_handler_keeps_known_records_and_their_numbers(tmp_path):
    path = str(tmp_path / "m.jsonl")
    log = logging.getLogger("vllm.test-startup")
    log.setLevel(logging.INFO)
    handler = Milestones(path)
    log.addHandler(handler)
    try:
        log.info(LOAD_STARTED, "/models/x")
        log.info("something else %d", 3)
        log.info(LOAD_DONE, "3.2", 8.5)
        log.info(INIT_ENGINE_PREFIX + " %.2f s (compilation: %.2f s)", 20.0, 6.5)
        log.info(CORE_STARTED, "0.1", "{...}")
    finally:
        log.removeHandler(handler)
    got = read_milestones(path)
    assert [m["kind"] for m in got] == ["load_started", "load_done", "init_engine",
                                        "core_started"]
    assert got[1]["args"] == [8.5] and got[2]["compile_s"] == 6.5
    assert all(m["pid"] == os.getpid() for m in got)
    assert json.loads(open(path).readline())["kind"] == "load_started"
    assert read_milestones(str(tmp_path / "missing.jsonl")) == []


def test_the_first_step_joins_the_phases_in_the_summary():
    clock = clock_at(process=9.0, constructor=10.0, engine_ready=14.0)
    ready = ReplicaReady("r", 4.0, 10.0, startup=phases(clock, []))
    occ = OccupancySnapshot(8, 5.0, 20.0, 1.0, 0.0, 10, 19.5, first_step_at=16.5)
    summary = replica_summary(ready, occ)
    assert summary.startup is not None and summary.startup.first_step_s == 2.5
    assert summary.startup.process_s == 1.0 and summary.startup.other_s == 4.0


def test_read_milestones_can_remove_the_file(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"t": 1.0, "pid": 1, "kind": "load_started", "args": []}\n')
    assert read_milestones(str(path), remove=True)[0]["kind"] == "load_started"
    assert not path.exists()


def test_watching_vllms_logging_ends_when_the_engine_is_up(monkeypatch):
    """The engine core's process reads the logging config while it starts; afterwards
    the replica's environment is as it was and the config file is gone."""
    from qcraft_ray.stages.startup import stop_watching, watch_milestones

    monkeypatch.delenv("VLLM_LOGGING_CONFIG_PATH", raising=False)
    monkeypatch.delenv("VLLM_CONFIGURE_LOGGING", raising=False)
    monkeypatch.setenv("QCRAFT_STARTUP_LOG", "")  # restored after the test
    path = watch_milestones()
    config = os.environ["VLLM_LOGGING_CONFIG_PATH"]
    handlers = json.load(open(config))["loggers"]["vllm"]["handlers"]
    assert "qcraft_startup" in handlers and "vllm" in handlers  # vLLM's own output stays
    assert any(isinstance(h, Milestones) and h.path == path
               for h in logging.getLogger("vllm").handlers)
    stop_watching(path)
    assert "VLLM_LOGGING_CONFIG_PATH" not in os.environ and not os.path.exists(config)
    assert not any(isinstance(h, Milestones) and h.path == path  # nor its handler
                   for h in logging.getLogger("vllm").handlers)
    os.unlink(path)
