"""Passage-stage benchmark: our tokenize/filter/chunk stage vs a raw tokenizer batch encode.

    python bench/passages.py [--docs 5000] [--alternations 3]

Both run on one core (RAYON_NUM_THREADS=1), in this process, on the same documents: the
bundled sample texts repeated (normal passages, long articles that need chunking, short
ones), truncated to 10,000 characters as the stage does. Baseline: the `tokenizers`
`encode_batch` of those texts (no offsets kept, no Python per row). Ours:
`make_passages` (offsets, bounds, chunking, re-counting chunks, rows out). Medians of
alternated runs and the ratio go to bench/RESULTS-passages.md.
"""

from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers is imported: one core
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def documents(n: int):
    import pyarrow as pa

    from qcraft_ray import schema as S
    from qcraft_ray.devtools.sample_corpus import load_passages
    from qcraft_ray.languages import SOURCE_CODE_TO_LANGUAGE

    src = load_passages()
    rows = []
    for i in range(n):
        p = src[i % len(src)]
        rows.append({S.DOC_ID: f"d{i}", S.TEXT: p["text"], S.LANGUAGE:
                     SOURCE_CODE_TO_LANGUAGE[p["lang"]], S.SOURCE_LANGUAGE: p["lang"],
                     S.SOURCE_FILE: "bench.parquet", S.SOURCE_ROW: i})
    return pa.Table.from_pylist(rows, schema=S.DOCUMENT_SCHEMA)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--docs", type=int, default=5000)
    p.add_argument("--alternations", type=int, default=3)
    p.add_argument("--results", default=str(REPO / "bench" / "RESULTS-passages.md"))
    args = p.parse_args()

    from qcraft_ray.config import ModelConfig, PassageConfig
    from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
    from qcraft_ray.stages.passages import make_passages
    from qcraft_ray.tokenization import load_tokenizer

    tok = load_tokenizer(ModelConfig(name=str(tokenizer_files_dir())))
    docs = documents(args.docs)
    texts = [t[:10_000] for t in docs["text"].to_pylist()]
    cfg = PassageConfig()
    tokens = sum(len(e.ids) for e in tok.backend_tokenizer.encode_batch(texts))

    def raw() -> None:
        tok.backend_tokenizer.encode_batch(texts, add_special_tokens=False)

    def ours() -> None:
        make_passages(docs, cfg, tok)

    times: dict[str, list[float]] = {"raw": [], "ours": []}
    raw()  # warm up
    for alt in range(args.alternations):
        for name, fn in ((("raw", raw), ("ours", ours)) if alt % 2 == 0
                         else (("ours", ours), ("raw", raw))):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            print(f"alternation {alt + 1} {name:4s} {times[name][-1]:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = make_passages(docs, cfg, tok)
    passages = sum(1 for s in out["status"].to_pylist() if s == "pending")
    lines = [
        "# Passage-stage benchmark", "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one core "
        f"(RAYON_NUM_THREADS=1); {args.docs} documents (the 74 sample passages repeated: "
        f"{len(texts)} texts, {tokens} tokens after truncation to 10,000 chars) -> "
        f"{passages} passages; medians of {args.alternations} alternations.", "",
        "| | seconds | documents/s | tokens/s |", "| --- | --- | --- | --- |",
    ]
    for name, label in (("raw", "`tokenizers` encode_batch (baseline)"),
                        ("ours", "qcraft passage stage (`make_passages`)")):
        lines.append(f"| {label} | {med[name]:.2f} | {args.docs / med[name]:.0f} | "
                     f"{tokens / med[name]:.0f} |")
    lines += ["", f"Ratio (ours / baseline throughput): **{med['raw'] / med['ours']:.2f}** "
              "(target >= 0.8).", "",
              f"Reproduce: `python bench/passages.py --docs {args.docs} "
              f"--alternations {args.alternations}`", ""]
    Path(args.results).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
