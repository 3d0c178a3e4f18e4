"""Python, Ray, vLLM, torch and CUDA against the supported ranges (no import of Ray or
vLLM: their versions come from package metadata)."""

from __future__ import annotations

from importlib import metadata

from qcraft_ray.compat.versions import RAY, VLLM, Verdict, installed, judge_python
from qcraft_ray.config import RunConfig
from qcraft_ray.doctor.findings import Finding, ok, warn

_INSTALL_FIX = "install a release in the supported range (README: Compatibility)"


def _judged(check: str, verdict: Verdict, detail: str) -> Finding:
    return Finding(check, verdict, detail, "" if verdict == Verdict.OK else _INSTALL_FIX)


def version_findings(cfg: RunConfig) -> list[Finding]:
    """The cheap checks ``qcraft run`` makes before anything else."""
    out = [_judged("python", *judge_python()), _judged("ray", *RAY.judge(installed(RAY)))]
    if cfg.generation.engine.backend == "vllm":
        found = installed(VLLM)
        if found is None:
            out.append(
                warn(
                    "vllm",
                    "vLLM is not installed in this driver's environment",
                    "the engine replicas import it on the nodes they run on: install "
                    f"vllm{VLLM.spec()} there (the GPU image), or here for a local run",
                )
            )
        else:
            out.append(_judged("vllm", *VLLM.judge(found)))
    return out


def torch_findings(cfg: RunConfig) -> list[Finding]:
    """torch's build and, where the engine runs on CUDA, whether this machine sees a GPU."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return [warn("torch", "torch is not installed here", "vLLM brings it on the GPU nodes")]
    import torch

    cuda = torch.version.cuda
    build = f"torch {version}" + (f", CUDA {cuda}" if cuda else ", no CUDA")
    if cfg.generation.device != "cuda":
        return [ok("torch", build)]
    if not cuda:
        return [
            warn(
                "torch",
                f"{build}: this environment cannot drive a GPU",
                "fine on a CPU head node; the GPU nodes need a CUDA build of torch",
            )
        ]
    if not torch.cuda.is_available():
        return [warn("torch", f"{build}, but no GPU is visible on this machine")]
    return [ok("torch", f"{build}, {torch.cuda.device_count()} GPU(s) visible here")]


def preflight(cfg: RunConfig) -> list[Finding]:
    """:func:`version_findings` (what ``qcraft run`` checks first)."""
    return version_findings(cfg)
