"""Counters by reason, language and type; the run report written next to the output.

Counts are plain nested dicts of ints so write tasks can return them and the driver
can merge them (datatrove-style stats, without global state). Every document is
counted once, on its anchor row: chunk 0, and either no type (rejected before the
type fan-out) or the first configured type.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.stages.units import is_anchor

Counts = dict[str, Any]

# The columns count_rows reads; `qcraft plan` projects to these before counting.
COUNTED_COLUMNS = [S.STATUS, S.REASON, S.LANGUAGE, S.SOURCE_LANGUAGE, S.TYPE, S.CHUNK_INDEX,
                   S.PROMPT_TOKENS, S.OUTPUT_TOKENS, S.REPLICA, S.SCORE]


def count_rows(table: pa.Table, first_type: str | None) -> Counts:
    """Counters for one block of stream rows (after generation, before writing).

    ``first_type`` is the first configured type, or None for passage rows (no types).
    """
    status: Counter = Counter()
    rejected: Counter = Counter()
    by_language: dict[str, Counter] = {}
    by_type: dict[str, Counter] = {}
    by_replica: Counter = Counter()
    scores: dict[str, dict[str, dict[str, float]]] = {"by_language": {}, "by_type": {}}
    prompt_tokens = output_tokens = 0
    documents = (pc.sum(is_anchor(table, first_type)).as_py() or 0) if table.num_rows else 0
    cols = table.select(COUNTED_COLUMNS).to_pylist()
    for r in cols:
        outcome = r[S.REASON] if r[S.STATUS] == S.STATUS_REJECTED else r[S.STATUS]
        if r[S.STATUS] == S.STATUS_REJECTED:
            rejected[outcome] += 1
        else:
            status[outcome] += 1
            prompt_tokens += r[S.PROMPT_TOKENS] or 0
            output_tokens += r[S.OUTPUT_TOKENS] or 0
        lang = r[S.LANGUAGE] or f"unsupported:{r[S.SOURCE_LANGUAGE]}"
        by_language.setdefault(lang, Counter())[outcome] += 1
        if r[S.TYPE] is not None:
            by_type.setdefault(r[S.TYPE], Counter())[outcome] += 1
        if r[S.REPLICA] is not None:
            by_replica[r[S.REPLICA]] += 1
        if r[S.SCORE] is not None:
            for group, key in (("by_language", lang), ("by_type", r[S.TYPE])):
                acc = scores[group].setdefault(key, {"sum": 0.0, "n": 0})
                acc["sum"] += r[S.SCORE]
                acc["n"] += 1
    return {
        "documents": documents,
        "outputs": dict(status),
        "rejected": dict(rejected),
        "by_language": {k: dict(v) for k, v in by_language.items()},
        "by_type": {k: dict(v) for k, v in by_type.items()},
        "by_replica": dict(by_replica),
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "score_sums": scores,
    }


def mean_scores(counts: Counts) -> dict[str, dict[str, float]]:
    """Mean score per language and per type, from merged ``score_sums``."""
    return {group: {k: round(v["sum"] / v["n"], 4) for k, v in sorted(sums.items()) if v["n"]}
            for group, sums in counts.get("score_sums", {}).items()}


def merge_counts(parts: list[Counts]) -> Counts:
    """Add counters from several blocks (nested dicts of ints)."""

    def add(a: Any, b: Any) -> Any:
        if isinstance(a, dict):
            out = dict(a)
            for k, v in b.items():
                out[k] = add(out[k], v) if k in out else v
            return out
        return a + b

    total: Counts = {}
    for p in parts:
        total = add(total, p) if total else p
    return total or count_rows(S.empty_stream_table(), None)
