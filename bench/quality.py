"""The language check on query-length text: how often it is wrong, and how fast.

The bundled sample's passages are real text in 21 languages; their first N words stand
in for outputs (the tiny test model writes noise, and the real model cannot run here).
Each snippet is in its passage's language, so any ``wrong_language`` flag is a false
alarm; ``unsure`` is how often the checker abstains. Throughput is one core, one
process, the stage's own code path (QualityChecker), against the baseline of lingua's
bare ``detect_language_of`` on the same snippets (the check's cost on top of lingua).

    python bench/quality.py [--repeat 5]

With ``--first-block``, instead: what loading lingua's models costs the first block.
Each of ``--repeat`` rounds runs two fresh processes, alternated: the detector as
``LanguageIdentifier`` builds it by default (lingua loads a language's models the first
time a text needs them) and with ``preload`` (what the quality actors use); each builds
the checker, then runs it twice over one block of the 74 five-word snippets in 21
languages, timing CPU (all threads) and wall time of each step.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qcraft_ray import schema as S  # noqa: E402
from qcraft_ray.config import ModelConfig, QualityConfig  # noqa: E402
from qcraft_ray.devtools.sample_corpus import load_passages  # noqa: E402
from qcraft_ray.devtools.tiny_model import tokenizer_files_dir  # noqa: E402
from qcraft_ray.languages import SOURCE_CODE_TO_LANGUAGE  # noqa: E402
from qcraft_ray.stages.quality import LanguageIdentifier, QualityChecker  # noqa: E402
from qcraft_ray.tokenization import load_backend_tokenizer  # noqa: E402

WORDS = (3, 5, 8)
CJK = {"japanese", "chinese"}


def snippets(words: int) -> list[tuple[str, str, str]]:
    """(language, snippet, passage): the first ``words`` words (CJK: 3 chars a word)."""
    out = []
    for p in load_passages():
        lang = SOURCE_CODE_TO_LANGUAGE[p["lang"]]
        text = " ".join(p["text"].split())
        snippet = text[: words * 3] if lang in CJK else " ".join(text.split()[:words])
        out.append((lang, snippet, p["text"]))
    return out


def table(items: list[tuple[str, str, str]]):
    return S.stream_table([
        {S.LANGUAGE: lang, S.OUTPUT: snip, S.PASSAGE: passage, S.STATUS: "ok", S.TYPE: "query",
         S.SOURCE_FILE: "f", S.SOURCE_ROW: i, S.DOC_ID: f"d{i}", S.CHUNK_INDEX: 0}
        for i, (lang, snip, passage) in enumerate(items)])


def first_block_child(preload: bool) -> None:
    """One fresh process: build, then two passes over one block; prints JSON."""
    cfg = QualityConfig()
    tokenizer = load_backend_tokenizer(ModelConfig(name=str(tokenizer_files_dir())))
    batch = table(snippets(5))
    found = {}
    for step in ("build", "first block", "second block"):
        cpu, wall = time.process_time(), time.perf_counter()
        if step == "build":
            checker = QualityChecker(cfg, tokenizer, LanguageIdentifier(cfg.language_margin, preload))
        else:
            checker(batch)
        found[step] = (time.process_time() - cpu, time.perf_counter() - wall)
    print(json.dumps(found))


def first_block(repeat: int) -> None:
    runs: dict[str, list[dict]] = {"lazy (lingua's default)": [], "preload": []}
    for _ in range(repeat):
        for name, flag in (("lazy (lingua's default)", "lazy"), ("preload", "preload")):
            out = subprocess.run([sys.executable, __file__, "--first-block-child", flag],
                                 capture_output=True, text=True, check=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    print(f"| detector | step | CPU s (median of {repeat}) | wall s | CPU s range |")
    print("| --- | --- | --- | --- | --- |")
    for name, found in runs.items():
        for step in found[0]:
            cpu = [f[step][0] for f in found]
            wall = statistics.median(f[step][1] for f in found)
            print(f"| {name} | {step} | {statistics.median(cpu):.2f} | {wall:.2f} "
                  f"| {min(cpu):.2f}-{max(cpu):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--first-block", action="store_true")
    ap.add_argument("--first-block-child", choices=("lazy", "preload"))
    args = ap.parse_args()
    if args.first_block_child:
        return first_block_child(args.first_block_child == "preload")
    if args.first_block:
        return first_block(args.repeat)
    cfg = QualityConfig()
    tokenizer = load_backend_tokenizer(ModelConfig(name=str(tokenizer_files_dir())))
    identifier = LanguageIdentifier(cfg.language_margin)
    checker = QualityChecker(cfg, tokenizer, identifier)
    print("| words | snippets | wrong_language (false alarms) | unsure | identified right |")
    print("| --- | --- | --- | --- | --- |")
    wrong_by_lang: collections.Counter = collections.Counter()
    for words in WORDS:
        items = snippets(words)
        out = checker(table(items))
        detected = out[S.DETECTED_LANGUAGE].to_pylist()
        wrong = sum(out[S.WRONG_LANGUAGE].to_pylist())
        unsure = detected.count(None)
        right = sum(d == lang for d, (lang, _, _) in zip(detected, items, strict=True))
        for d, (lang, _, _) in zip(detected, items, strict=True):
            if d is not None and d != lang:
                wrong_by_lang[f"{lang}->{d}"] += 1
        n = len(items)
        print(f"| {words} | {n} | {wrong} ({wrong / n:.1%}) | {unsure} ({unsure / n:.1%}) "
              f"| {right} ({right / n:.1%}) |")
    print("\nfalse alarms by language:", dict(wrong_by_lang))
    # throughput, one core: the checker (language + copy) vs bare lingua, alternated
    items = snippets(5) * 40  # 2,960 outputs
    batch = table(items)
    bare = identifier._detector  # the same detector, called directly
    times: dict[str, list[float]] = {"bare lingua detect_language_of": [], "QualityChecker": [],
                                     "QualityChecker, language only": []}
    lang_only = QualityChecker(QualityConfig(copy_check=False), tokenizer, identifier)
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for _, snip, _ in items:
            bare.detect_language_of(snip)
        times["bare lingua detect_language_of"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        checker(batch)
        times["QualityChecker"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        lang_only(batch)
        times["QualityChecker, language only"].append(time.perf_counter() - t0)
    base = statistics.median(times["bare lingua detect_language_of"])
    print(f"\n| path | outputs/s per core (median of {args.repeat}) | spread | time vs bare |")
    print("| --- | --- | --- | --- |")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {len(items) / med:,.0f} | {len(items) / max(ts):,.0f}-"
              f"{len(items) / min(ts):,.0f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
