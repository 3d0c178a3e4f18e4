"""Split a long text into passages within token bounds, at natural boundaries.

Pure functions over a text and the character offsets where its tokens start (one
tokenizer pass over the whole text). A cut is placed at a token start; the best cut
balances boundary strength (paragraph > line > sentence > clause > word > anywhere)
against closeness to an even split, so chunks come out similar in size and no tail is
left too short when that can be avoided. Works for every script: sentence and clause
marks include CJK (。！？，、), Arabic/Persian (؟ ، ؛ ۔) and Devanagari-style (। ॥) ones;
CJK sentences need no space after the mark.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

_SENTENCE_END = set(".!?…。！？؟۔।॥")
_NO_SPACE_NEEDED = set("。！？؟۔।॥…")  # marks that end a sentence without a following space
_CLAUSE = set(",;:，；：、،؛")
_CLOSERS = set("\"'”’»)]}）」』】〉》")

# Boundary strength, and how much one max-length of distance from the ideal cut costs.
_WEIGHT = {"paragraph": 3.0, "line": 2.5, "sentence": 2.0, "clause": 1.0, "word": 0.4, "hard": 0.0}
_DISTANCE_COST = 2.0


@dataclass(frozen=True)
class Span:
    """A passage candidate: characters [start, end) holding ``tokens`` tokens."""

    start: int
    end: int
    tokens: int


def boundary_kind(text: str, pos: int) -> str:
    """How strong a boundary a cut at character ``pos`` would be."""
    before = text[max(0, pos - 48):pos]  # a local window is enough and keeps this O(1)
    stripped = before.rstrip(" \t\r\u3000")
    gap = before[len(stripped):]
    if stripped.endswith("\n\n") or (stripped.endswith("\n") and "\n" in gap):
        return "paragraph"
    if stripped.endswith("\n"):
        return "line"
    core = stripped.rstrip("\n")
    trail = core
    while trail and trail[-1] in _CLOSERS:
        trail = trail[:-1]
    last = trail[-1:] if trail else ""
    next_char = text[pos:pos + 1]
    spaced = bool(gap) or next_char.isspace() or not next_char
    if last in _SENTENCE_END and (spaced or last in _NO_SPACE_NEEDED):
        if last == "." and not spaced:
            return "hard"  # 3.14, e.g.x: no space, not a sentence end
        return "sentence"
    if last in _CLAUSE:
        return "clause"
    if spaced or _is_word_boundary(core[-1:], next_char):
        return "word"
    return "hard"


def _is_word_boundary(prev: str, nxt: str) -> bool:
    if not prev or not nxt:
        return True
    # Scripts written without spaces: any character boundary is a word boundary.
    for ch in (prev, nxt):
        name = unicodedata.name(ch, "")
        if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")):
            return True
    return False


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def plan_chunks(
    text: str, token_starts: list[int], min_tokens: int, max_tokens: int
) -> tuple[list[Span], list[Span]]:
    """Split ``text`` into spans of ``min_tokens``..``max_tokens`` tokens.

    ``token_starts[i]`` is the character offset where token ``i`` starts. Returns
    ``(kept, remainders)``: remainders are leftover spans shorter than ``min_tokens``
    (only when no cut could avoid one). Token counts are in the whole-text tokenization;
    the caller re-counts each passage on its own text.
    """
    n = len(token_starts)
    kept: list[Span] = []
    remainders: list[Span] = []
    pos = 0
    while pos < n:
        left = n - pos
        if left <= max_tokens:
            end_tok = n
        else:
            end_tok = _best_cut(text, token_starts, pos, min_tokens, max_tokens)
        start_c = token_starts[pos]
        end_c = token_starts[end_tok] if end_tok < n else len(text)
        a, b = _trim(text, start_c, end_c)
        span = Span(a, b, end_tok - pos)
        if b > a:
            (kept if span.tokens >= min_tokens else remainders).append(span)
        pos = end_tok
    return kept, remainders


def _best_cut(text: str, starts: list[int], pos: int, lo: int, hi: int) -> int:
    n = len(starts)
    left = n - pos
    pieces = math.ceil(left / hi)
    ideal = pos + left / pieces
    first, last = pos + lo, min(pos + hi, n - lo)
    if first > last:  # cannot leave a long-enough tail: take the longest chunk allowed
        first, last = pos + lo, pos + hi
    best, best_score = last, -math.inf
    for cut in range(first, last + 1):
        kind = boundary_kind(text, starts[cut])
        score = _WEIGHT[kind] - _DISTANCE_COST * abs(cut - ideal) / hi
        if score > best_score:
            best, best_score = cut, score
    return best
