"""What a finished output holds, read back from its Parquet files (streaming, a few
columns at a time, so memory does not grow with the output).

:func:`summarize` feeds ``qcraft report``'s table and HTML page: outputs per language
and type by status, NONE and empty rates per language, output and passage token length
histograms, rejections by reason, and score statistics when a ``score`` column exists.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from qcraft_ray import schema as S
from qcraft_ray.io import filesystems
from qcraft_ray.io.commit import REJECTED_DIR

SCORE = "score"
OUTPUT_TOKEN_BINS = (0, 1, 5, 10, 20, 40, 80, 160)
PASSAGE_TOKEN_BINS = (0, 70, 100, 200, 300, 400, 500, 600, 700, 1000, 2000)
SCORE_BINS = tuple(round(-0.2 + 0.1 * i, 1) for i in range(13))  # -0.2 .. 1.0


def _bin(value: float, edges: tuple) -> str:
    """The histogram bin label of ``value``: '[a, b)' or '>= last'."""
    for lo, hi in zip(edges, edges[1:]):
        if lo <= value < hi:
            return f"{lo}-{hi}"
    return f">={edges[-1]}" if value >= edges[-1] else f"<{edges[0]}"


def _dataset(fs: pafs.FileSystem, path: str) -> pads.Dataset | None:
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return None
    return pads.dataset(path, filesystem=fs, format="parquet")


def summarize(path: str, fs: pafs.FileSystem, root: str, first_type: str | None
              ) -> dict[str, Any]:
    """Counts and histograms over ``root``'s output and ``_rejected/`` files.
    ``first_type``: the run's first type; its rows count each passage once."""
    by_lang_type: dict[str, Counter] = defaultdict(Counter)
    by_lang: dict[str, Counter] = defaultdict(Counter)
    out_len: dict[str, Counter] = defaultdict(Counter)
    passage_len: Counter = Counter()
    scores: dict[str, list[float]] = defaultdict(list)
    data = _dataset(fs, root)
    has_score = data is not None and SCORE in data.schema.names
    cols = [S.LANGUAGE, S.TYPE, S.STATUS, S.OUTPUT_TOKENS, S.PASSAGE_TOKENS] + (
        [SCORE] if has_score else [])
    passages = 0
    for batch in (data.to_batches(columns=cols) if data is not None else []):
        for r in batch.to_pylist():
            lang, type_, status = r[S.LANGUAGE], r[S.TYPE], r[S.STATUS]
            by_lang_type[f"{lang}/{type_}"][status] += 1
            by_lang[lang][status] += 1
            if status != S.STATUS_ERROR:
                out_len[type_][_bin(r[S.OUTPUT_TOKENS] or 0, OUTPUT_TOKEN_BINS)] += 1
            if type_ == first_type:  # one count per passage, not per type
                passages += 1
                passage_len[_bin(r[S.PASSAGE_TOKENS], PASSAGE_TOKEN_BINS)] += 1
            if has_score and r[SCORE] is not None:
                scores[f"{lang}/{type_}"].append(r[SCORE])
    rejected: Counter = Counter()
    rej = _dataset(fs, filesystems.join(root, REJECTED_DIR))
    for batch in (rej.to_batches(columns=[S.REASON]) if rej is not None else []):
        for d in pc.value_counts(batch.column(0)).to_pylist():
            rejected[d["values"]] += d["counts"]
    rates = {lang: {"rows": sum(c.values()),
                    "none_rate": round(c[S.STATUS_NONE] / max(sum(c.values()), 1), 4),
                    "empty_rate": round(c[S.STATUS_EMPTY] / max(sum(c.values()), 1), 4)}
             for lang, c in sorted(by_lang.items())}
    return {
        "path": path,
        "rows": sum(sum(c.values()) for c in by_lang.values()),
        "passages": passages,
        "by_language_type": {k: dict(v) for k, v in sorted(by_lang_type.items())},
        "language_rates": rates,
        "output_tokens_histogram": {t: _ordered(c, OUTPUT_TOKEN_BINS)
                                    for t, c in sorted(out_len.items())},
        "passage_tokens_histogram": _ordered(passage_len, PASSAGE_TOKEN_BINS),
        "rejected": dict(sorted(rejected.items())),
        "scores": {k: _score_stats(v) for k, v in sorted(scores.items())},
    }


def _ordered(counts: Counter, edges: tuple) -> dict[str, int]:
    labels = [f"<{edges[0]}", *(f"{a}-{b}" for a, b in zip(edges, edges[1:])),
              f">={edges[-1]}"]
    return {label: counts[label] for label in labels if counts[label]}


def _score_stats(values: list[float]) -> dict[str, Any]:
    hist = Counter(_bin(v, SCORE_BINS) for v in values)
    return {"n": len(values), "mean": round(sum(values) / len(values), 4),
            "histogram": _ordered(hist, SCORE_BINS)}
