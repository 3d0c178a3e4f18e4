"""Benchmark corpora where no passage or chunk repeats.

Repeated text hands prefix caching free hits (a copy that differs only in a marker at
its start still repeats the later chunks of long documents). So each copy of the
bundled sample corpus gets every document's words in another seeded order; text
without spaces (Chinese, Japanese) is permuted character by character. Copy 0 is the
sample as it is (the "small held-out corpus").
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def sample_documents() -> list[dict]:
    """Every document of ``data/sample`` as FineWeb2-style rows (text, id, language,
    language_script), through the job's own reader."""
    import pyarrow as pa

    from qcraft_ray import schema as S
    from qcraft_ray.config import InputConfig, StorageConfig
    from qcraft_ray.io.discover import discover
    from qcraft_ray.io.read import fragments_to_read, read_fragment
    from qcraft_ray.languages import LANGUAGE_TO_SOURCE_CODE

    cfg = InputConfig(paths=[str(REPO / "data/sample")])
    plan = discover(cfg, StorageConfig())
    docs = pa.concat_tables(
        t for f in fragments_to_read(plan, 1000) for t in read_fragment(f, cfg, StorageConfig())
    ).to_pylist()
    out = []
    for d in docs:
        code = LANGUAGE_TO_SOURCE_CODE.get(d[S.LANGUAGE] or "", "kor_Hang")
        iso, script = code.split("_")
        out.append({"text": d[S.TEXT], "id": d[S.DOC_ID], "language": iso,
                    "language_script": script})
    return out


def permuted(text: str, rng: random.Random) -> str:
    words = re.findall(r"\S+", text)
    if len(words) * 20 < len(text):  # hardly any spaces: permute characters
        chars = [c for c in text if not c.isspace()]
        rng.shuffle(chars)
        return "".join(chars)
    rng.shuffle(words)
    return " ".join(words)


def write_corpus(target: Path, copies: int, seed: int = 0) -> dict:
    """``copies`` copies of the sample corpus (copy 0 unchanged) as one Parquet file in
    ``target``; returns its size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = sample_documents()
    rows = []
    for c in range(copies):
        for d in docs:
            text = d["text"] if c == 0 else permuted(d["text"], random.Random(f"{seed}/{c}/{d['id']}"))
            rows.append({**d, "text": text, "id": f"{d['id']}~{c}"})
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.parquet"):
        old.unlink()
    pq.write_table(pa.Table.from_pylist(rows), target / "corpus.parquet")
    return {"documents": len(rows), "copies": copies}
