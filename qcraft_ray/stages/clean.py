"""Post-processing of raw model text: think blocks, whitespace, NONE and empty."""

from __future__ import annotations

import re

from qcraft_ray import schema as S

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
NONE_LITERAL = "NONE"


def clean_output(raw: str | None) -> tuple[str, str]:
    """Return ``(output, status)`` for one generated text.

    Removes complete ``<think>...</think>`` blocks, then anything up to a stray
    ``</think>``, then an unclosed ``<think>`` and what follows it; strips whitespace.
    ``NONE`` gives status ``none`` (the text is kept as ``NONE``); nothing left gives
    ``empty``; anything else ``ok``.
    """
    text = _THINK_BLOCK.sub("", raw or "")
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        text = text.split("<think>", 1)[0]
    text = text.strip()
    if not text:
        return "", S.STATUS_EMPTY
    if text == NONE_LITERAL:
        return text, S.STATUS_NONE
    return text, S.STATUS_OK


def comparable(text: str) -> str:
    """``text`` with case and whitespace runs folded: how outputs are compared (for
    duplicate samples, and for copies of the passage)."""
    return " ".join(text.casefold().split())
