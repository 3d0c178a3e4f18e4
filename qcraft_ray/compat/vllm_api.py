"""The vLLM names the engine uses, checked before a replica builds its engine (a clear
error instead of an ImportError deep inside an actor), and in a vLLM release's source
without installing it (``scripts/check_vllm_release.py``: a wheel or a source tree)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from qcraft_ray.compat.versions import VLLM, installed
from qcraft_ray.errors import UnsupportedVersionError

# module -> the names qcraft_ray.stages.engine, .occupancy and .startup take from it
USED: dict[str, tuple[str, ...]] = {
    "vllm.sampling_params": ("SamplingParams", "RequestOutputKind"),
    "vllm.engine.arg_utils": ("EngineArgs",),
    "vllm.usage.usage_lib": ("UsageContext",),
    "vllm.v1.engine.llm_engine": ("LLMEngine",),
    "vllm.v1.metrics.loggers": ("StatLoggerBase",),
    "vllm.renderers.inputs.preprocess": ("parse_model_prompt",),
    "vllm.logger": ("DEFAULT_LOGGING_CONFIG",),
}
# methods of LLMEngine the feeder and the engine call
ENGINE_METHODS = ("from_engine_args", "add_request", "step", "abort_request")


def missing_installed() -> list[str]:
    """The used names the installed vLLM lacks (imports them)."""
    gone = []
    for module, names in USED.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            gone.append(module)
            continue
        gone += [f"{module}.{n}" for n in names if not hasattr(mod, n)]
    engine = getattr(importlib.import_module("vllm.v1.engine.llm_engine"), "LLMEngine", None)
    if engine is not None:
        gone += [f"LLMEngine.{m}" for m in ENGINE_METHODS if not hasattr(engine, m)]
    return gone


def require_vllm() -> None:
    """Raise :class:`UnsupportedVersionError` when the installed vLLM lacks a used name."""
    gone = missing_installed()
    if gone:
        raise UnsupportedVersionError(
            f"vLLM {installed(VLLM)} lacks what the engine uses: {', '.join(gone)}; "
            f"install vllm{VLLM.spec()} (tested: {VLLM.oldest} to {VLLM.newest})"
        )


def _defines(source: str, name: str) -> bool:
    pattern = rf"^\s*(def|class)\s+{name}\b|^\s*{name}\s*[:=]|import[^\n]*\b{name}\b"
    return re.search(pattern, source, re.MULTILINE) is not None


def missing_in_source(root: Path) -> list[str]:
    """The used names a vLLM source tree (the folder holding ``vllm/``) does not define,
    read as text: nothing is imported or installed."""
    gone = []
    for module, names in USED.items():
        base = root.joinpath(*module.split("."))
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if not path.is_file():
            gone.append(module)
            continue
        source = path.read_text(encoding="utf-8")
        gone += [f"{module}.{n}" for n in names if not _defines(source, n)]
    engine = root / "vllm" / "v1" / "engine" / "llm_engine.py"
    if engine.is_file():
        source = engine.read_text(encoding="utf-8")
        gone += [f"LLMEngine.{m}" for m in ENGINE_METHODS if not _defines(source, m)]
    return gone
