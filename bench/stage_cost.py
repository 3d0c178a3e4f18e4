"""What the CPU stages cost on their own, in one process, without Ray: the floor under
the pipeline's ceiling (bench/ceiling.py).

    python bench/stage_cost.py [--docs 3000] [--repeat 3]

On the first ``--docs`` documents of the ceiling corpus (bench/corpus.py, 95 copies of
the sample, one type), in blocks of 1,000 documents: the prompt stage (tokenize, chunk,
exact ids, render prompts) and, on its prompts answered by the instant engine, the
quality checks (lingua + copy check). Each is timed in CPU seconds per 1,000 prompts
(all threads; the tokenizer runs on one here), once warm (tokenizer loaded, lingua's
models preloaded), medians of ``--repeat``. Beside each, the share that is the library
alone: ``encode_batch`` of the same document texts, and lingua's
``compute_language_confidence_values`` on the same outputs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from qcraft_ray import schema as S  # noqa: E402
from qcraft_ray.config_loader import load_config  # noqa: E402
from qcraft_ray.io.documents import to_documents  # noqa: E402
from qcraft_ray.io.plan import InputFile  # noqa: E402
from qcraft_ray.stages.backends import make_engine  # noqa: E402
from qcraft_ray.stages.prompts import PromptStage, TypeDraw  # noqa: E402
from qcraft_ray.stages.quality import LanguageIdentifier, QualityChecker  # noqa: E402
from qcraft_ray.tokenization import load_backend_tokenizer  # noqa: E402

CORPUS = REPO / ".cache" / "bench-ceiling" / "big"


def cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from corpus import write_corpus

    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3

    model = build_tiny_qwen3(REPO / ".cache" / "tiny-qwen3")
    if not (CORPUS / "corpus.parquet").exists():
        write_corpus(CORPUS, 95)
    cfg = load_config(REPO / "configs/local.yaml", [
        f"model.name={model}", "generation.engine.backend=instant",
        f"generation.types={json.dumps(['query'])}"])
    raw = pq.read_table(CORPUS / "corpus.parquet").slice(0, args.docs)
    file = InputFile(path="corpus.parquet", display="corpus.parquet", num_rows=raw.num_rows,
                     row_groups=(raw.num_rows,), columns=tuple(raw.column_names),
                     path_code=None, text_bytes=0)
    docs = to_documents(raw, file, 0, cfg.input)
    blocks = [docs.slice(i, 1000) for i in range(0, docs.num_rows, 1000)]
    gen = cfg.generation
    stage = PromptStage(cfg.passages, cfg.model, TypeDraw.of(gen),
                        gen.engine.max_model_len - gen.max_new_tokens)
    tokenizer = load_backend_tokenizer(cfg.model)
    identifier = LanguageIdentifier(cfg.quality.language_margin, preload=True)
    checker = QualityChecker(cfg.quality, tokenizer, identifier)

    rows = pa.concat_tables([stage(b) for b in blocks])  # warm, and the prompts to check
    pending = rows.filter(pc.equal(rows[S.STATUS], S.STATUS_PENDING))
    n = pending.num_rows
    made = make_engine(gen, cfg.model).generate(pending[S.PROMPT_TOKEN_IDS].to_pylist())
    outputs = [g.text for g in made]
    answered = pending.drop_columns([S.PROMPT_TOKEN_IDS])
    for name, values in ((S.OUTPUT, outputs), (S.STATUS, [S.STATUS_OK] * n)):
        answered = answered.set_column(answered.column_names.index(name), name,
                                       pa.array(values, pa.string()))
    checked = [answered.slice(i, 256) for i in range(0, n, 256)]
    texts = [t for t in docs[S.TEXT].to_pylist() if t]

    found: dict[str, list[float]] = {k: [] for k in (
        "prompt stage", "  of it: encode_batch of the documents",
        "quality checks", "  of it: lingua on the outputs")}
    for _ in range(args.repeat):
        found["prompt stage"].append(cpu(lambda: [stage(b) for b in blocks]))
        found["  of it: encode_batch of the documents"].append(
            cpu(lambda: tokenizer.encode_batch(texts, add_special_tokens=False)))
        found["quality checks"].append(cpu(lambda: [checker(b) for b in checked]))
        found["  of it: lingua on the outputs"].append(cpu(
            lambda: [identifier._detector.compute_language_confidence_values(o)
                     for o in outputs]))
    print(f"{len(texts):,} documents, {n:,} prompts (one type), medians of {args.repeat}\n")
    print("| step | CPU s / 1,000 prompts | range |")
    print("| --- | --- | --- |")
    for name, ts in found.items():
        per = [t / n * 1000 for t in ts]
        print(f"| {name} | {statistics.median(per):.3f} | {min(per):.3f}-{max(per):.3f} |")


if __name__ == "__main__":
    main()
