"""Write the bundled sample corpus: FineWeb-style Parquet in all three layouts.

Built from ``passages.json`` (74 original passages: two normal and one long article per
model language, plus short, boilerplate, mixed-script, poetic, code and emoji cases) and
one Korean document, a language the model does not support. Layouts and columns follow
the public datasets (see MODEL.md):

- ``fineweb-edu/sample/10BT/000_00000.parquet``: English, FineWeb-Edu columns;
- ``fineweb2/data/{code}/train/000_00000.parquet``: FineWeb2 columns, for a few languages;
- ``fineweb2-hq/{code}/000_00000.parquet``: FineWeb2-HQ columns (+ quality_score).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FINEWEB2_PLAIN = ("jpn_Jpan", "deu_Latn", "rus_Cyrl", "ell_Grek", "arb_Arab", "kor_Hang")
KOREAN = (
    "한글은 1443년 세종대왕이 백성들이 쉽게 글을 배우고 쓸 수 있도록 만든 문자이다. "
    "처음에는 훈민정음이라는 이름으로 반포되었으며, 자음과 모음을 조합하여 음절을 이루는 "
    "과학적인 구조로 널리 알려져 있다. 오늘날 한국에서는 10월 9일을 한글날로 정하여 "
    "그 창제를 기념하고 있으며, 많은 언어학자들이 한글의 체계성과 배우기 쉬운 점을 높이 평가한다."
)


def load_passages() -> list[dict]:
    path = Path(__file__).with_name("passages.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _doc_id(code: str, i: int, text: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{code}/{i}/{text[:64]}')}>"


def _common(code: str, i: int, text: str) -> dict:
    return {
        "text": text,
        "id": _doc_id(code, i, text),
        "dump": "CC-MAIN-2024-10",
        "url": f"https://example.org/{code}/{i}",
        "file_path": f"s3://commoncrawl/crawl-data/CC-MAIN-2024-10/segments/{i:05d}.warc.gz",
        "language_score": 0.95,
    }


def _edu_rows(texts: list[str]) -> pa.Table:
    rows = [
        {
            **_common("eng_Latn", i, t),
            "language": "en",
            "token_count": len(t) // 4,
            "score": 3.1 + (i % 5) / 10,
            "int_score": 3,
        }
        for i, t in enumerate(texts)
    ]
    return pa.Table.from_pylist(rows)


def _fw2_rows(code: str, texts: list[str], hq: bool) -> pa.Table:
    iso, script = code.split("_")
    rows = []
    for i, t in enumerate(texts):
        row = {
            **_common(code, i, t),
            "date": "2024-02-21T10:00:00Z",
            "language": iso,
            "language_script": script,
            "minhash_cluster_size": 1 + i,
            "top_langs": json.dumps({f"{code}_score": 0.95}),
        }
        if hq:
            row["quality_score"] = round(0.5 + i / 100, 3)
        rows.append(row)
    return pa.Table.from_pylist(rows)


def write_sample_corpus(root: str | Path) -> list[Path]:
    """Write the sample corpus under ``root``; returns the files written."""
    root = Path(root)
    by_code: dict[str, list[str]] = {}
    for p in load_passages():
        by_code.setdefault(p["lang"], []).append(p["text"])
    by_code["kor_Hang"] = [KOREAN]
    written = []
    for code, texts in sorted(by_code.items()):
        if code == "eng_Latn":
            path = root / "fineweb-edu/sample/10BT/000_00000.parquet"
            table = _edu_rows(texts)
        elif code in FINEWEB2_PLAIN:
            path = root / f"fineweb2/data/{code}/train/000_00000.parquet"
            table = _fw2_rows(code, texts, hq=False)
        else:
            path = root / f"fineweb2-hq/{code}/000_00000.parquet"
            table = _fw2_rows(code, texts, hq=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")
        written.append(path)
    return written
