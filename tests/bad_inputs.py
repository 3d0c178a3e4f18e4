"""Bad inputs for tests: each builder writes one kind of broken or awkward Parquet file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from qcraft_ray.devtools.sample_corpus import load_passages

INVALID_UTF8 = b"caf\xc3 \xed\xa0\x80 surrogate bytes"  # a cut sequence and a CESU surrogate
CONTROL = "Control\x00 and \x07bell \x1b[31m characters. "


def unchecked_strings(values: list[bytes | None]) -> pa.Array:
    """A string array holding arbitrary bytes (Arrow does not check them here)."""
    data = b"".join(v or b"" for v in values)
    offsets = np.cumsum([0] + [len(v or b"") for v in values]).astype(np.int32)
    valid = pa.array([v is not None for v in values]).buffers()[1]
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [valid, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)])


def english(n: int) -> list[str]:
    texts = [p["text"] for p in load_passages() if p["lang"] == "eng_Latn"]
    return [texts[i % len(texts)] for i in range(n)]


def mixed_rows_file(path: Path) -> dict[str, str]:
    """One FineWeb2-style file with awkward rows; returns doc id -> expected outcome."""
    good = english(3)
    rows: list[tuple[str, bytes | None, str, str]] = [
        ("dup", good[0].encode(), "eng", "Latn"),
        ("dup", good[1].encode(), "eng", "Latn"),  # the same id again: a second document
        ("control", (CONTROL + good[2]).encode(), "eng", "Latn"),
        ("null", None, "eng", "Latn"),
        ("empty", b"", "eng", "Latn"),
        ("blank", b" \n\t ", "eng", "Latn"),
        ("klingon", good[0].encode(), "tlh", "Latn"),
        ("utf8", INVALID_UTF8 + good[1].encode(), "eng", "Latn"),
        ("huge", (good[2] * (10_000_000 // len(good[2]) + 1)).encode(), "eng", "Latn"),
    ]
    table = pa.table({
        "id": [r[0] for r in rows],
        "text": unchecked_strings([r[1] for r in rows]),
        "language": [r[2] for r in rows],
        "language_script": [r[3] for r in rows],
        "url": [f"https://e.org/{i}" for i in range(len(rows))],
    })
    pq.write_table(table, path)
    return {"dup": "ok", "control": "ok", "null": "missing_text", "empty": "missing_text",
            "blank": "missing_text", "klingon": "unsupported_language",
            "utf8": "invalid_text", "huge": "truncated"}


def zero_rows_file(path: Path) -> None:
    pq.write_table(pa.table({"id": pa.array([], pa.string()),
                             "text": pa.array([], pa.string())}), path)


def other_schema_file(path: Path) -> None:
    """No language columns, no url, an extra column, an integer id."""
    pq.write_table(pa.table({"id": [7, 8], "text": english(2), "extra": [1.5, 2.5]}), path)


def corrupt_file(path: Path, rows: int = 40, groups: int = 4) -> int:
    """A file with a valid footer whose third row group's page header is garbage.
    Returns the first bad row."""
    texts = english(rows)
    pq.write_table(pa.table({"id": [f"c{i}" for i in range(rows)], "text": texts,
                             "language": ["en"] * rows}), path,
                   row_group_size=rows // groups, compression="zstd", use_dictionary=False)
    meta = pq.ParquetFile(path).metadata
    offset = meta.row_group(2).column(1).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset:offset + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))
    return 2 * rows // groups


def truncated_file(path: Path) -> None:
    pq.write_table(pa.table({"text": english(3)}), path)
    path.write_bytes(path.read_bytes()[:-40])
