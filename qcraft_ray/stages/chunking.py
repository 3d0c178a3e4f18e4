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

import functools
import math
import re
from dataclasses import dataclass

import numpy as np

_SENTENCE_END = set(".!?…。！？؟۔।॥")
_NO_SPACE_NEEDED = set("。！？؟۔।॥…")  # marks that end a sentence without a following space
_CLAUSE = set(",;:，；：、،؛")
_CLOSERS = set("\"'”’»)]}）」』】〉》")
_SPECIAL = _SENTENCE_END | _CLAUSE | _CLOSERS
# Scripts written without spaces (kana, CJK ideographs, Hangul): every character boundary
# is a word boundary.
_NO_SPACE_SCRIPT = re.compile(
    "[\u1100-\u11ff\u3040-\u30ff\u31f0-\u31ff\u3130-\u318f\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ffff]"
)

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
    before = text[max(0, pos - 48) : pos]  # a local window is enough and keeps this O(1)
    stripped = before.rstrip(" \t\r\u3000")
    gap = before[len(stripped) :]
    if stripped.endswith("\n\n") or (stripped.endswith("\n") and "\n" in gap):
        return "paragraph"
    if stripped.endswith("\n"):
        return "line"
    core = stripped.rstrip("\n")
    trail = core
    while trail and trail[-1] in _CLOSERS:
        trail = trail[:-1]
    last = trail[-1:] if trail else ""
    next_char = text[pos : pos + 1]
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
    return bool(_NO_SPACE_SCRIPT.match(prev) or _NO_SPACE_SCRIPT.match(nxt))


_SPACE, _MARK, _NO_SPACE, _ENDS_SENTENCE, _ENDS_CLAUSE = 1, 2, 4, 8, 16
_ASTRAL, _ASTRAL_CJK = 0x10000, 0x10001  # table slots for code points above the BMP


@functools.lru_cache(maxsize=1)
def _char_flags() -> np.ndarray:
    """Flags per code point of the Basic Multilingual Plane, plus one slot for every
    other code point and one for the astral CJK ideographs: is space, is a boundary mark
    (sentence, clause, closer), is a no-space script, ends a sentence, ends a clause.
    Built once per process (~50 ms)."""

    def flags(ch: str) -> int:
        return (
            (_SPACE if ch.isspace() else 0)
            | (_MARK if ch in _SPECIAL else 0)
            | (_NO_SPACE if _NO_SPACE_SCRIPT.match(ch) else 0)
            | (_ENDS_SENTENCE if ch in _SENTENCE_END else 0)
            | (_ENDS_CLAUSE if ch in _CLAUSE else 0)
        )

    table = np.fromiter((flags(chr(c)) for c in range(0x10000)), np.uint8, 0x10000)
    return np.concatenate([table, np.array([0, _NO_SPACE], np.uint8)])


def _flags_of(cps: np.ndarray) -> np.ndarray:
    slot = np.where(
        cps < 0x10000, cps, np.where((cps >= 0x20000) & (cps <= 0x2FFFF), _ASTRAL_CJK, _ASTRAL)
    )
    return _char_flags()[slot]


class CutWeights:
    """The boundary weight of a cut before each token (see :func:`boundary_kind`).

    Vectorized for the common cases, where only the two characters around the cut
    matter: right after an ordinary character ("word" or "hard"), or a sentence or
    clause mark followed by a space ("sentence", "clause"). The rest (after spaces,
    newlines, closers) start unknown (NaN) and go through :func:`boundary_kind` only
    when a cut search needs them (:func:`_best_cut`).
    """

    def __init__(self, text: str, starts: list[int]) -> None:
        self.text, self.starts = text, starts
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        pos = np.asarray(starts, dtype=np.int64)
        inside = pos > 0
        # the characters before and at each cut; the text's start and end act as spaces
        prev = _flags_of(np.where(inside, cps[np.maximum(pos - 1, 0)], 0x20))
        nxt = _flags_of(np.where(pos < len(cps), cps[np.minimum(pos, len(cps) - 1)], 0x20))
        ordinary = ((prev & (_SPACE | _MARK)) == 0) & inside
        word = ((nxt & (_SPACE | _NO_SPACE)) | (prev & _NO_SPACE)) != 0
        weights = np.where(word | (pos >= len(cps)), _WEIGHT["word"], _WEIGHT["hard"])
        spaced_after = ((nxt & _SPACE) != 0) & inside
        marked_sentence = spaced_after & ((prev & _ENDS_SENTENCE) != 0)
        marked_clause = spaced_after & ((prev & _ENDS_CLAUSE) != 0)
        weights[marked_sentence] = _WEIGHT["sentence"]
        weights[marked_clause] = _WEIGHT["clause"]
        weights[~ordinary & ~marked_sentence & ~marked_clause] = np.nan
        self.weights = weights

    def resolve(self, k: int) -> float:
        """The weight of a cut before token ``k``, computing it if it is unknown."""
        w = self.weights[k]
        if np.isnan(w):
            w = self.weights[k] = _WEIGHT[boundary_kind(self.text, self.starts[k])]
        return float(w)

    def all(self) -> np.ndarray:
        """Every token's cut weight, resolving the unknown ones."""
        for k in np.flatnonzero(np.isnan(self.weights)):
            self.resolve(int(k))
        return self.weights


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def chunk_spans(
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
    weights: CutWeights | None = None  # built on the first cut only
    pos = 0
    while pos < n:
        left = n - pos
        if left <= max_tokens:
            end_tok = n
        else:
            if weights is None:
                weights = CutWeights(text, token_starts)
            end_tok = _best_cut(weights, pos, min_tokens, max_tokens)
        start_c = token_starts[pos]
        end_c = token_starts[end_tok] if end_tok < n else len(text)
        a, b = trim(text, start_c, end_c)
        span = Span(a, b, end_tok - pos)
        if b > a:
            (kept if span.tokens >= min_tokens else remainders).append(span)
        pos = end_tok
    return kept, remainders


_MAX_WEIGHT = max(_WEIGHT.values())


def _best_cut(weights: CutWeights, pos: int, lo: int, hi: int) -> int:
    """The best cut in range: the first with the highest weight minus distance cost.

    Unknown weights count as the highest possible until the winner is one whose weight
    is known; so the result equals scoring every candidate, while :func:`boundary_kind`
    runs only for the few unknown ones that could win.
    """
    n = len(weights.weights)
    left = n - pos
    pieces = math.ceil(left / hi)
    ideal = pos + left / pieces
    first, last = pos + lo, min(pos + hi, n - lo)
    if first > last:  # cannot leave a long-enough tail: take the longest chunk allowed
        first, last = pos + lo, pos + hi
    cuts = np.arange(first, last + 1)
    distance = _DISTANCE_COST * np.abs(cuts - ideal) / hi
    window = weights.weights[first : last + 1]  # a view: resolved weights are cached
    while True:
        i = int(np.argmax(np.where(np.isnan(window), _MAX_WEIGHT, window) - distance))
        if not np.isnan(window[i]):
            return int(cuts[i])
        weights.resolve(first + i)
