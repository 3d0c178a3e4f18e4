"""Examples to look at: per language, the lowest-scoring outputs, NONE answers and
outputs in the wrong language (and a few plain outputs where a language has none of
these), each with its type and a passage excerpt.

Picked by one columnar pass over the data files (language, type, status, score and
wrong_language only: small, dictionary-encoded columns), then the text of the few rows
picked is read. The run report looks at up to :data:`REPORT_FILES` files spread evenly
over the output, so its cost stays bounded at any scale; ``qcraft inspect`` looks at
every file. The choice is deterministic: lowest scores first, otherwise by a hash of
the row's place (file and row), so a re-run picks the same rows.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from qcraft_ray import schema as S
from qcraft_ray.store import OutputFolder

KINDS = ("lowest_score", "none", "wrong_language", "sample")
EXCERPT_CHARS = 300
REPORT_FILES = 200
_SCAN = [S.LANGUAGE, S.TYPE, S.STATUS, S.SCORE, S.WRONG_LANGUAGE]
_TEXT = [
    S.DOC_ID,
    S.CHUNK_INDEX,
    S.OUTPUT,
    S.PASSAGE,
    S.DETECTED_LANGUAGE,
    S.SOURCE_FILE,
    S.SOURCE_ROW,
]


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str
    language: str
    type: str
    doc_id: str
    chunk_index: int
    score: float | None = None
    detected_language: str | None = None
    output: str
    passage: str  # the passage's first EXCERPT_CHARS characters
    source_file: str | None = None
    source_row: int | None = None


# Characters that change how text around them is shown (bidi overrides and isolates,
# C0/C1 controls but newline and tab): shown as visible code points instead.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def inert(text: str) -> str:
    """``text`` with every character that could reorder or restyle what surrounds it
    (terminal escapes, bidi controls) replaced by ``<U+XXXX>``."""
    return _UNSAFE.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "…"


def _hash(rel: str, row: int) -> float:
    key = f"{rel}\x00{row}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def spread(files: list[str], most: int) -> list[str]:
    """At most ``most`` of ``files``, evenly spaced in name order."""
    ordered = sorted(files)
    if len(ordered) <= most:
        return ordered
    step = len(ordered) / most
    return [ordered[int(i * step)] for i in range(most)]


def _kinds(row: dict, h: float, wanted: tuple[str, ...]) -> Iterable[tuple[str, float]]:
    """The kinds a row is an example of, with its rank (smaller is picked first)."""
    status = row[S.STATUS]
    if "lowest_score" in wanted and status == S.STATUS_OK and row.get(S.SCORE) is not None:
        yield "lowest_score", row[S.SCORE]
    if "none" in wanted and status == S.STATUS_NONE:
        yield "none", h
    if "wrong_language" in wanted and row.get(S.WRONG_LANGUAGE):
        yield "wrong_language", h
    if "sample" in wanted and status == S.STATUS_OK:
        yield "sample", h


def pick(
    folder: OutputFolder,
    files: list[str],
    k: int,
    kinds: tuple[str, ...] = KINDS,
    language: str | None = None,
    type_: str | None = None,
) -> dict[str, dict[str, list[Example]]]:
    """language -> kind -> up to ``k`` examples from ``files`` (data files, relative)."""
    best: dict[tuple[str, str], list[tuple[float, str, int]]] = {}
    scans = _scan(folder, files)
    for rel, table in zip(files, scans, strict=True):
        for i, row in enumerate(table.to_pylist()):
            if (language and row[S.LANGUAGE] != language) or (type_ and row[S.TYPE] != type_):
                continue
            for kind, rank in _kinds(row, _hash(rel, i), kinds):
                heap = best.setdefault((row[S.LANGUAGE], kind), [])
                item = (-rank, rel, i)  # a max-heap of the k smallest ranks
                if len(heap) < k:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
    rows = _read_rows(folder, {(rel, i) for heap in best.values() for _, rel, i in heap})
    out: dict[str, dict[str, list[Example]]] = {}
    for (lang, kind), heap in sorted(best.items()):
        picked = sorted(heap, key=lambda item: (-item[0], item[1], item[2]))
        out.setdefault(lang, {})[kind] = [_example(kind, rows[(rel, i)]) for _, rel, i in picked]
    for by_kind in out.values():  # plain outputs only where nothing else is shown
        if any(kind != "sample" for kind in by_kind):
            by_kind.pop("sample", None)
    return {lang: by_kind for lang, by_kind in out.items() if by_kind}


def _scan(folder: OutputFolder, files: list[str]) -> list[pa.Table]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda rel: folder.read_parquet(rel, columns=_SCAN), files))


def _read_rows(folder: OutputFolder, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    by_file: dict[str, list[int]] = {}
    for rel, i in wanted:
        by_file.setdefault(rel, []).append(i)
    out = {}
    for rel, indices in sorted(by_file.items()):
        table = folder.read_parquet(rel, columns=_SCAN + _TEXT)
        for i, row in zip(indices, table.take(indices).to_pylist(), strict=True):
            out[(rel, i)] = row
    return out


def _example(kind: str, row: dict) -> Example:
    return Example(
        kind=kind,
        language=row[S.LANGUAGE],
        type=row[S.TYPE],
        doc_id=row[S.DOC_ID],
        chunk_index=row[S.CHUNK_INDEX],
        score=row.get(S.SCORE),
        detected_language=row.get(S.DETECTED_LANGUAGE),
        output=excerpt(row.get(S.OUTPUT)),
        passage=excerpt(row.get(S.PASSAGE)),
        source_file=row.get(S.SOURCE_FILE),
        source_row=row.get(S.SOURCE_ROW),
    )
