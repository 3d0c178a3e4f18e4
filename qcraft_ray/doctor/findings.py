"""One line per check: what was checked, OK / WARN / FAIL, and the fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qcraft_ray.compat.versions import Verdict


@dataclass(frozen=True)
class Finding:
    check: str  # what was checked: "ray", "output", "gpus"...
    verdict: Verdict
    detail: str  # what was found (never a credential)
    fix: str = ""  # what to do about a WARN or a FAIL

    def line(self) -> str:
        fix = f" -> {self.fix}" if self.fix and self.verdict != Verdict.OK else ""
        return f"{self.verdict.value:<4}  {self.check:<12} {self.detail}{fix}"


def ok(check: str, detail: str, fix: str = "") -> Finding:
    """``fix``: kept for the line a WARN or FAIL of the same check would print."""
    return Finding(check, Verdict.OK, detail, fix)


def warn(check: str, detail: str, fix: str = "") -> Finding:
    return Finding(check, Verdict.WARN, detail, fix)


def fail(check: str, detail: str, fix: str = "") -> Finding:
    return Finding(check, Verdict.FAIL, detail, fix)


def guarded(check: str, fn: Callable[[], list[Finding]]) -> list[Finding]:
    """``fn``'s findings; an exception it raises is this check's FAIL, with its type and
    message (a check never stops the others)."""
    try:
        return fn()
    except Exception as e:  # a check's failure is a finding, whatever raised it
        return [fail(check, f"{type(e).__name__}: {e}")]


def failed(findings: list[Finding]) -> bool:
    return any(f.verdict == Verdict.FAIL for f in findings)


def render(findings: list[Finding]) -> str:
    counts = {v: sum(f.verdict == v for f in findings) for v in Verdict}
    summary = ", ".join(f"{n} {v.value}" for v, n in counts.items())
    return "\n".join([*(f.line() for f in findings), f"qcraft doctor: {summary}"])
