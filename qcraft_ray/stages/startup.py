"""Where a replica's start-up goes: seconds per phase, from its process's start to its
engine's first step.

The replica marks what it does itself (:class:`StartupClock`: the constructor, vLLM's
import, the engine's configuration, the engine ready). What happens inside vLLM's engine
core, in the replica's process or in the process vLLM starts for it, is read from vLLM's
own log records as they are emitted, by a logging handler (:class:`Milestones`) that
keeps only when a known record was logged, in which process, and its numeric arguments.
A record that a vLLM version does not log leaves its phase out; the time goes to
``other_s``. Nothing here changes what vLLM does or prints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from typing import Any

from qcraft_ray.telemetry import StartupPhases

# The records that mark a phase, by their message template (vLLM's logger.info format
# strings, which carry the numbers as arguments).
CORE_STARTED = "Initializing a V1 LLM engine (v%s) with config: %s"
LOAD_STARTED = "Starting to load model %s..."
WEIGHTS_LOADED = "Loading weights took %.2f seconds"  # the model loader's, on every device
LOAD_DONE = "Model loading took %s GiB memory and %.6f seconds"  # GPU runners, after it
INIT_ENGINE_PREFIX = "init engine (profile, create kv cache, warmup model) took"
MILESTONES_ENV = "QCRAFT_STARTUP_LOG"
LOGGING_SUFFIX = "-logging.json"


class Milestones(logging.Handler):
    """Appends one JSON line per known vLLM record to the file ``QCRAFT_STARTUP_LOG``
    names: the time, the process, which record, and its numeric arguments."""

    def __init__(self, path: str | None = None) -> None:
        super().__init__(logging.INFO)
        self.path = path or os.environ.get(MILESTONES_ENV)

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg if isinstance(record.msg, str) else ""
        kind = _kind(msg)
        if kind is None or not self.path:
            return
        numbers = [a for a in (record.args or ()) if isinstance(a, (int, float))]
        line = {"t": record.created, "pid": record.process, "kind": kind, "args": numbers}
        if kind == "init_engine":
            line["compile_s"] = numbers[1] if len(numbers) > 1 else 0.0
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        except OSError:  # telemetry never breaks the engine
            pass


def _kind(msg: str) -> str | None:
    if msg == CORE_STARTED:
        return "core_started"
    if msg == LOAD_STARTED:
        return "load_started"
    if msg == WEIGHTS_LOADED:
        return "weights_loaded"
    if msg == LOAD_DONE:
        return "load_done"
    if msg.startswith(INIT_ENGINE_PREFIX):
        return "init_engine"
    return None


def milestones_logging_config(path: str) -> dict[str, Any]:
    """vLLM's default logging config plus :class:`Milestones` on the ``vllm`` logger,
    for ``VLLM_LOGGING_CONFIG_PATH``: the engine-core process vLLM starts applies it too."""
    from vllm.logger import DEFAULT_LOGGING_CONFIG

    config = json.loads(json.dumps(DEFAULT_LOGGING_CONFIG))
    config["handlers"]["qcraft_startup"] = {
        "()": f"{__name__}.Milestones",
        "path": path,
    }
    config["loggers"]["vllm"]["handlers"].append("qcraft_startup")
    return config


def watch_milestones() -> str:
    """Have :class:`Milestones` record vLLM's start-up records, in this process and in
    the engine-core process vLLM starts from it (through ``VLLM_LOGGING_CONFIG_PATH``,
    unless the user set their own logging config); returns the file they go to. Call
    after importing vLLM, before building its engine."""
    fd, path = tempfile.mkstemp(prefix="qcraft-startup-", suffix=".jsonl")
    os.close(fd)
    os.environ[MILESTONES_ENV] = path
    logging.getLogger("vllm").addHandler(Milestones(path))
    own_config = os.environ.get("VLLM_LOGGING_CONFIG_PATH")
    if not own_config and os.environ.get("VLLM_CONFIGURE_LOGGING", "1") != "0":
        try:
            config = milestones_logging_config(path)
        except (ImportError, AttributeError, KeyError, TypeError):  # another vLLM's logging
            return path  # the core process's phases stay unknown; the engine is untouched
        config_path = path[: -len(".jsonl")] + LOGGING_SUFFIX
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        os.environ["VLLM_LOGGING_CONFIG_PATH"] = config_path  # read by the core process
    return path


def stop_watching(path: str) -> None:
    """Once the engine is up: this process's handler for ``path`` goes (another engine
    built in the process adds its own), processes vLLM starts from now on log as vLLM
    would, and the logging config :func:`watch_milestones` wrote is removed."""
    vllm_log = logging.getLogger("vllm")
    for h in list(vllm_log.handlers):
        if isinstance(h, Milestones) and h.path == path:
            vllm_log.removeHandler(h)
    config_path = path[: -len(".jsonl")] + LOGGING_SUFFIX
    if os.environ.get("VLLM_LOGGING_CONFIG_PATH") == config_path:
        del os.environ["VLLM_LOGGING_CONFIG_PATH"]
    with contextlib.suppress(OSError):
        os.unlink(config_path)


class StartupClock:
    """Marks (epoch seconds) of a replica's start-up, in its own process."""

    def __init__(self, process_started: float | None = None) -> None:
        self.marks: dict[str, float] = {"constructor": time.time()}
        self.process_started = process_started if process_started is not None else _started()


def _started() -> float | None:
    """When this process started (epoch seconds), if psutil (a Ray dependency) says."""
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # no psutil, or no permission: the process phase is unknown
        return None


def read_milestones(path: str, remove: bool = False) -> list[dict[str, Any]]:
    """The milestones in ``path`` (none when it is missing); ``remove``: then delete it."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        if remove:
            os.unlink(path)
        return lines
    except OSError:
        return []


def phases(clock: StartupClock, milestones: list[dict[str, Any]]) -> StartupPhases:
    """Seconds per phase (pure): ``clock``'s marks and vLLM's milestones. The phases but
    ``process_s`` are spans of the constructor-to-ready time (``load_s``), ``other_s``
    what none of them covers; ``process_s`` comes before it (the first step, after it,
    is timed by the engine's occupancy). ``warmup_s`` runs from the model's load to the
    end of vLLM's engine initialisation, less its compile time."""
    m = clock.marks
    ready = m.get("engine_ready", m["constructor"])
    load_s = ready - m["constructor"]
    first: dict[str, dict[str, Any]] = {}
    for line in milestones:  # the first of each kind
        first.setdefault(line["kind"], line)

    def at(kind: str) -> float | None:
        return first[kind]["t"] if kind in first else None

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(max(0.0, b - a), 3)

    load_done = at("load_done") or at("weights_loaded")  # the later one where both are
    init = first.get("init_engine")
    compile_s = warmup_s = None
    if init is not None:
        compile_s = round(float(init.get("compile_s", 0.0)), 3)
        elapsed = float(init["args"][0]) if init["args"] else 0.0
        since = init["t"] - load_done if load_done is not None else elapsed
        warmup_s = round(max(0.0, since - compile_s), 3)
    out = StartupPhases(
        process_s=span(clock.process_started, m["constructor"]),
        staging_s=span(m.get("staging_started"), m.get("staged")),
        imports_s=span(m.get("imports_started"), m.get("imported")),
        configure_s=span(m.get("imported"), m.get("configured")),
        engine_core_start_s=span(m.get("configured"), at("core_started")),
        executor_init_s=span(at("core_started"), at("load_started")),
        weights_s=span(at("load_started"), load_done),
        compile_s=compile_s,
        warmup_s=warmup_s,
    )
    named = sum(
        v
        for v in (
            out.staging_s,
            out.imports_s,
            out.configure_s,
            out.engine_core_start_s,
            out.executor_init_s,
            out.weights_s,
            out.compile_s,
            out.warmup_s,
        )
        if v is not None
    )
    return out.model_copy(update={"other_s": round(max(0.0, load_s - named), 3)})
